-- Campaigns and their contacts: the tables (with every setting the engine reads: calling window,
-- limits, retry delays, the failure breaker, the abandonment cap, the caller-number pool), the
-- do-not-call list, the state machine, calling-window arithmetic in the callee's time zone, the
-- one import path (numbers normalised with the campaign's default country, de-duplicated, checked
-- against the do-not-call list and the destination allowlist, scheduled into the window), pausing
-- and completion. Dialing them is 20261202000600_dialing.sql.

-- Types ---------------------------------------------------------------------------------
create type public.campaign_status as enum
  ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled');
create type public.campaign_call_status as enum
  ('queued', 'dialing', 'in_progress', 'completed', 'busy', 'no_answer', 'failed', 'skipped', 'cancelled');

-- Tables ------------------------------------------------------------------------------------
create table public.campaigns (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null constraint "name must be 1 to 200 characters" check (length(name) between 1 and 200),
  assistant_id uuid not null,
  phone_number_id uuid,
  status public.campaign_status not null default 'draft',
  status_reason text,
  starts_at timestamptz,
  ends_at timestamptz,
  window_start time not null default '09:00',
  window_end time not null default '20:00',
  weekdays smallint[] not null default '{1,2,3,4,5}'
    constraint "weekdays must be ISO days 1 (Mon) to 7 (Sun), at least one"
    check (weekdays <@ '{1,2,3,4,5,6,7}'::smallint[] and cardinality(weekdays) > 0),
  default_timezone text not null default 'UTC'
    constraint "default_timezone must be a time zone name such as Europe/Paris"
    check (internal.is_timezone(default_timezone)),
  default_country text not null default 'US'
    constraint "default_country must be a two-letter code such as US" check (default_country ~ '^[A-Z]{2}$'),
  allowed_countries text[] not null default '{US,CA}'
    constraint "allowed_countries must be two-letter codes, at least one"
    check (cardinality(allowed_countries) > 0 and array_to_string(allowed_countries, ',') ~ '^[A-Z]{2}(,[A-Z]{2})*$'),
  max_concurrent integer not null default 5
    constraint "max_concurrent must be between 1 and 1000" check (max_concurrent between 1 and 1000),
  max_attempts integer not null default 3
    constraint "max_attempts must be between 1 and 10" check (max_attempts between 1 and 10),
  retry_busy_sec integer not null default 600
    constraint "retry_busy_sec must be between 0 and 604800 (7 days)" check (retry_busy_sec between 0 and 604800),
  retry_no_answer_sec integer not null default 1800
    constraint "retry_no_answer_sec must be between 0 and 604800 (7 days)"
    check (retry_no_answer_sec between 0 and 604800),
  retry_failed_sec integer not null default 900
    constraint "retry_failed_sec must be between 0 and 604800 (7 days)" check (retry_failed_sec between 0 and 604800),
  retry_backoff numeric(4, 2) not null default 2
    constraint "retry_backoff must be between 1 and 10" check (retry_backoff between 1 and 10),
  ringing_timeout_sec integer not null default 30
    constraint "ringing_timeout_sec must be between 5 and 80" check (ringing_timeout_sec between 5 and 80),
  max_call_duration_sec integer not null default 1800
    constraint "max_call_duration_sec must be between 10 and 86400"
    check (max_call_duration_sec between 10 and 86400),
  failure_threshold numeric(3, 2) not null default 0.5
    constraint "failure_threshold must be above 0 and at most 1"
    check (failure_threshold > 0 and failure_threshold <= 1),
  failure_window_sec integer not null default 120
    constraint "failure_window_sec must be between 10 and 3600" check (failure_window_sec between 10 and 3600),
  failure_min_calls integer not null default 10
    constraint "failure_min_calls must be between 1 and 10000" check (failure_min_calls between 1 and 10000),
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  agent_limit integer constraint "agent_limit must be at least 1" check (agent_limit is null or agent_limit >= 1),
  agent_limit_until timestamptz,
  agent_timeouts integer not null default 0,
  throttle_reason text,
  abandon_cap numeric(4, 3) not null default 0.03
    constraint "abandon_cap must be above 0 and at most 1" check (abandon_cap > 0 and abandon_cap <= 1),
  abandon_slowed_at timestamptz,
  account_limit_reason text,
  account_limited_at timestamptz,
  retry_voicemail_sec integer not null default 7200
    constraint "retry_voicemail_sec must be between 0 and 604800 (7 days)"
    check (retry_voicemail_sec between 0 and 604800),
  caller_number_ids uuid[] constraint "caller_number_ids must hold at most 1000 numbers"
    check (caller_number_ids is null or cardinality(caller_number_ids) <= 1000),
  caller_id_strategy text not null default 'fixed'
    constraint "caller_id_strategy must be fixed or local_presence"
    check (caller_id_strategy in ('fixed', 'local_presence')),
  unique (id, owner_id),
  -- Check constraints are named in plain words: PostgreSQL's refusal (and PostgREST's message,
  -- which passes it through) quotes the name, so it says which columns and what is expected.
  constraint "window_end must be after window_start" check (window_start < window_end),
  constraint "ends_at must be after starts_at" check (ends_at is null or starts_at is null or starts_at < ends_at),
  foreign key (assistant_id, owner_id) references public.assistant (id, owner_id),
  foreign key (phone_number_id, owner_id) references public.phone_number (id, owner_id)
);
comment on table public.campaigns is 'A list of people an assistant calls, with its calling window, limits and retry rules.';
comment on column public.campaigns.weekdays is 'ISO weekdays (1 = Monday .. 7 = Sunday) on which calls may be placed, in the callee''s time zone.';
comment on column public.campaigns.account_limit_reason is 'Why the last claim held this campaign back at an operator''s per-account limit (internal.platform_settings); shown as throttle_reason for 30 s after account_limited_at.';
comment on column public.campaigns.agent_limit is 'Effective concurrency while agent_limit_until: lowered when no agent joined in time (the agent pool is saturated) or abandoned calls pass abandon_cap; throttle_reason says why.';
comment on column public.campaigns.abandon_cap is 'The most abandoned calls per answered call over 30 days (FTC: 3 %); past it the campaign slows down, then pauses.';
comment on column public.campaigns.retry_voicemail_sec is 'Delay before calling a callee again whose call reached a voicemail greeting (disposition voicemail), multiplied by retry_backoff per attempt like the other retry delays.';
comment on column public.campaigns.caller_number_ids is 'The numbers this campaign may dial from (the owner''s ready numbers of the campaign''s assistant). Null: the one phone_number_id, else the assistant''s first ready number.';
comment on column public.campaigns.caller_id_strategy is 'fixed: the first usable number of caller_number_ids; local_presence: per callee, a number with the callee''s area code, else the same state or region, else the same country, else any, the least recently used among equals.';

create table public.campaign_calls (
  id uuid primary key default gen_random_uuid(),
  campaign_id uuid not null,
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  e164 public.e164 not null,
  name text constraint "name must be at most 200 characters" check (length(name) <= 200),
  variables jsonb not null default '{}'::jsonb
    constraint "variables must be a JSON object of at most 8 KiB"
    check (jsonb_typeof(variables) = 'object' and pg_column_size(variables) <= 8192),
  timezone text constraint "timezone must be a time zone name such as Europe/Paris"
    check (timezone is null or internal.is_timezone(timezone)),
  status public.campaign_call_status not null default 'queued',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  lease_until timestamptz,
  lease_owner uuid,
  last_outcome text,
  last_error text,
  last_sip_status integer,
  current_call_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  dials integer not null default 0,
  caller_number_id uuid references public.phone_number (id) on delete set null,
  unique (campaign_id, e164),
  foreign key (campaign_id, owner_id) references public.campaigns (id, owner_id) on delete cascade
);
comment on table public.campaign_calls is 'One callee of a campaign; queued until its attempts end in a final state.';
comment on column public.campaign_calls.lease_until is 'A tick that claimed this call owns it until then; an expired lease gives it back.';
comment on column public.campaign_calls.dials is 'How many times this callee was claimed for a dial; names each dial''s room (cc-<id>-<dials>), so a requeued attempt that did not count still gets a room of its own, and a dial is never sent twice.';
comment on column public.campaign_calls.caller_number_id is 'The number this callee is dialed from; retries keep it unless it rests or leaves the pool.';

create table public.do_not_call (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  e164 public.e164 not null,
  reason text constraint "reason must be at most 500 characters" check (length(reason) <= 500),
  created_at timestamptz not null default now(),
  call_id uuid,
  unique (owner_id, e164)
);
comment on table public.do_not_call is 'Numbers an owner must never call; checked on import and before every dial.';
comment on column public.do_not_call.call_id is 'The call on which the callee opted out (set by call-report); null for numbers added otherwise.';

-- Indexes -------------------------------------------------------------------------------------
create index campaigns_owner on public.campaigns (owner_id);
create index campaigns_active on public.campaigns (id) where status in ('scheduled', 'running');
create index campaigns_caller_numbers on public.campaigns using gin (caller_number_ids);
create index campaign_calls_owner on public.campaign_calls (owner_id);
create index campaign_calls_due on public.campaign_calls (campaign_id, next_attempt_at) where status = 'queued';
create index campaign_calls_live on public.campaign_calls (campaign_id, lease_until)
  where status in ('dialing', 'in_progress');

-- The one name of a contact's dial: its room (the SIP participant's identity is 'sip-' and the
-- same). Deterministic, so a second send of the same dial is refused by the room's uniqueness;
-- a call is the contact's current dial when its room is internal.dial_room(id, dials).
create function internal.dial_room(campaign_call uuid, dial integer) returns text
language sql immutable parallel safe set search_path = '' as $$
  select format('cc-%s-%s', campaign_call, dial)
$$;
comment on function internal.dial_room is 'The room of a campaign contact''s n-th dial; its current dial is internal.dial_room(id, dials).';

-- Calling windows, in the callee's time zone ---------------------------------------------
create function internal.in_window(at timestamptz, tz text, window_start time, window_end time,
  weekdays smallint[]) returns boolean
language sql immutable set search_path = '' as $$
  select extract(isodow from l.t)::smallint = any (in_window.weekdays)
    and l.t::time >= in_window.window_start
    and l.t::time < in_window.window_end
  from (select in_window.at at time zone in_window.tz as t) l
$$;
comment on function internal.in_window is
  'True when the instant, read as local time in tz, falls on one of the ISO weekdays (1 = Monday .. 7 = Sunday) '
  'within [window_start, window_end). The campaign tick asks it before every dial.';

create function internal.next_window_start(at timestamptz, tz text, window_start time, window_end time,
  weekdays smallint[]) returns timestamptz
language plpgsql immutable set search_path = '' as $$
declare
  local_day date;
  offsets interval[];
  candidates timestamptz[] := '{}';
  prev interval;
  cur interval;
  lo timestamptz;
  hi timestamptz;
  mid timestamptz;
  candidate timestamptz;
  best timestamptz;
begin
  if internal.in_window(at, tz, window_start, window_end, weekdays) then
    return at;
  end if;
  -- A window that is never open (no weekday, or start not before end) has no next start.
  if at is null or tz is null or coalesce(cardinality(weekdays), 0) = 0
     or coalesce(window_start >= window_end, true) then
    return null;
  end if;

  -- The UTC offsets in force over the coming days and the instants they change (DST),
  -- each change found by halving the day in which it happens.
  prev := (at at time zone tz) - (at at time zone 'UTC');
  offsets := array[prev];
  for k in 1..10 loop
    hi := at + make_interval(hours => 24 * k);
    cur := (hi at time zone tz) - (hi at time zone 'UTC');
    if cur <> prev then
      lo := hi - interval '24 hours';
      while hi - lo > interval '1 microsecond' loop
        mid := lo + (hi - lo) / 2;
        if (mid at time zone tz) - (mid at time zone 'UTC') = prev then lo := mid; else hi := mid; end if;
      end loop;
      candidates := candidates || hi;
      offsets := offsets || cur;
      prev := cur;
    end if;
  end loop;

  -- The window opens either at window_start wall time on an allowed day (under whichever
  -- offset is in force then: a time repeated by a fall-back happens twice) or at a DST change
  -- (a start time skipped by spring-forward opens at the jump). The earliest open one wins.
  local_day := (at at time zone tz)::date;
  for i in 0..8 loop
    foreach cur in array offsets loop
      candidates := candidates || (((local_day + i) + window_start - cur) at time zone 'UTC');
    end loop;
  end loop;
  foreach candidate in array candidates loop
    if candidate > at and (best is null or candidate < best)
       and internal.in_window(candidate, tz, window_start, window_end, weekdays) then
      best := candidate;
    end if;
  end loop;
  return best;
end $$;
comment on function internal.next_window_start is
  'The instant itself when inside the calling window, else the first later instant the window is open in tz '
  '(up to 8 days ahead, DST changes included); null when it never opens. The campaign tick sets a callee''s '
  'next attempt to it.';

-- The state machine and what follows a change ------------------------------------------------
create function internal.campaign_transition_allowed(old_status public.campaign_status, new_status public.campaign_status)
returns boolean language sql immutable set search_path = '' as $$
  select old_status = new_status or (old_status, new_status) in (
    ('draft', 'scheduled'), ('draft', 'running'), ('draft', 'cancelled'),
    ('scheduled', 'draft'), ('scheduled', 'running'), ('scheduled', 'paused'), ('scheduled', 'cancelled'),
    ('running', 'paused'), ('running', 'completed'), ('running', 'cancelled'),
    ('paused', 'running'), ('paused', 'scheduled'), ('paused', 'cancelled'),
    ('completed', 'running')
  )
$$;
comment on function internal.campaign_transition_allowed is 'The campaign state machine: which status may follow which.';

create function internal.campaign_status_change() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  -- Refusals a user meets through REST carry a SQLSTATE PostgREST maps to the same 4xx the
  -- functions answer (23514 check_violation: 400; 42501: 403 signed in), and name the column.
  if tg_op = 'INSERT' then
    if new.status not in ('draft', 'scheduled', 'running') then
      raise exception 'a campaign starts as draft, scheduled or running, not %', new.status
        using errcode = '23514', column = 'status', table = 'campaigns',
          hint = 'Insert it as draft (the default), scheduled or running.';
    end if;
  elsif new.status <> old.status then
    if not internal.campaign_transition_allowed(old.status, new.status) then
      raise exception 'campaign % cannot go from % to %', old.id, old.status, new.status
        using errcode = '23514', column = 'status', table = 'campaigns',
          hint = coalesce('From ' || old.status || ' it can go to: ' || (
            select string_agg(s::text, ', ' order by s) from unnest(enum_range(null::public.campaign_status)) s
            where s <> old.status and s <> 'completed' and internal.campaign_transition_allowed(old.status, s)) || '.',
            'A ' || old.status || ' campaign cannot change status.');
    end if;
    -- Only the engine completes a campaign; a user cancels it.
    if new.status = 'completed' and coalesce(auth.role(), '') in ('authenticated', 'anon') then
      raise exception 'a campaign completes by itself when every call has ended' using errcode = '42501',
        column = 'status', table = 'campaigns', hint = 'Set status to cancelled to stop it now.';
    end if;
    if new.status in ('running', 'paused', 'cancelled', 'draft', 'scheduled')
       and coalesce(auth.role(), '') in ('authenticated', 'anon') then
      new.status_reason := null;
    end if;
  end if;
  if new.status = 'running' and new.started_at is null then
    new.started_at := now();
  end if;
  if new.status in ('completed', 'cancelled') then
    new.completed_at := coalesce(new.completed_at, now());
  elsif new.status = 'running' then
    new.completed_at := null;
  end if;
  return new;
end $$;
comment on function internal.campaign_status_change is 'Enforces legal campaign transitions and stamps start/completion times.';

create function internal.campaign_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.status = 'cancelled' and old.status <> 'cancelled' then
    update public.campaign_calls set status = 'cancelled', completed_at = now(), lease_until = null
    where campaign_id = new.id and status = 'queued';
  end if;
  -- A new calling window or start time reschedules what is queued.
  if (new.window_start, new.window_end, new.weekdays, new.starts_at, new.default_timezone)
     is distinct from (old.window_start, old.window_end, old.weekdays, old.starts_at, old.default_timezone) then
    update public.campaign_calls cc
    set next_attempt_at = coalesce(internal.next_window_start(
          greatest(now(), coalesce(new.starts_at, now())),
          cc.timezone, new.window_start, new.window_end, new.weekdays), 'infinity')
    where cc.campaign_id = new.id and cc.status = 'queued' and cc.attempts = 0;
  end if;
  if new.status = 'running' and old.status <> 'running' then
    perform internal.call_function('campaign-tick', jsonb_build_object('campaignId', new.id));
  end if;
  return null;
end $$;
comment on function internal.campaign_changed is 'Cancelling drops queued calls; a new window reschedules them; starting pokes the tick.';

-- Import: one path for the RPC and import-contacts ----------------------------------------
create function internal.prepare_campaign_call() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  country text;
begin
  select * into c from public.campaigns where id = new.campaign_id;
  new.timezone := coalesce(new.timezone, internal.number_timezone(new.e164), c.default_timezone);
  country := internal.number_country(new.e164);
  if exists (select from public.do_not_call d where d.owner_id = new.owner_id and d.e164 = new.e164) then
    new.status := 'skipped';
    new.last_outcome := 'do_not_call';
    new.last_error := 'on the do-not-call list';
  elsif country is null or not (country = any (c.allowed_countries)) then
    new.status := 'skipped';
    new.last_outcome := 'destination_not_allowed';
    new.last_error := format('calls to %s are not allowed by this campaign', coalesce(country, 'an unknown country'));
  end if;
  if new.status = 'skipped' then
    new.completed_at := now();
  else
    new.status := 'queued';
    new.next_attempt_at := coalesce(internal.next_window_start(greatest(now(), coalesce(c.starts_at, now())),
      new.timezone, c.window_start, c.window_end, c.weekdays), 'infinity');
  end if;
  new.attempts := 0;
  return new;
end $$;
comment on function internal.prepare_campaign_call is 'On import: the callee''s time zone (explicit, else from the number), do-not-call and destination checks, and the first time it may be dialed.';

-- One import path: normalisation (default country), de-duplication, do-not-call, destination
-- and time zone (the prepare trigger), per-contact variables; runs under the caller's RLS.
create function internal.import_contacts(campaign uuid, contacts jsonb) returns jsonb
language plpgsql security invoker set search_path = '' as $$
declare
  c public.campaigns;
  result jsonb;
begin
  if contacts is null or jsonb_typeof(contacts) <> 'array' then
    raise exception 'contacts must be a JSON array' using errcode = '22023',
      hint = 'Pass contacts as [{"phoneNumber": "+12125550100", "name": "Ada"}, ...].';
  end if;
  select * into c from public.campaigns x where x.id = campaign;
  if c.id is null then
    -- Not found for this caller (RLS hides other owners' campaigns): PT404 is PostgREST's
    -- HTTP 404, the status import-contacts answers for the same mistake.
    raise sqlstate 'PT404' using message = format('campaign %s does not exist', campaign),
      detail = 'No campaign with this id is visible to the caller; campaigns are visible to their owner only.',
      hint = 'Check campaign_id.';
  end if;
  with items as (
    select (t.ord - 1)::integer as idx, jsonb_typeof(t.item) = 'object' as is_object,
      case when jsonb_typeof(t.item) = 'object' then t.item else '{}'::jsonb end as o
    from jsonb_array_elements(contacts) with ordinality t(item, ord)
  ), parsed as (
    select i.idx, i.is_object,
      case when i.o ->> 'row' ~ '^[0-9]{1,9}$' then (i.o ->> 'row')::integer else i.idx + 1 end as rownum,
      nullif(btrim(coalesce(i.o ->> 'phoneNumber', i.o ->> 'phone_number', '')), '') as raw,
      nullif(btrim(i.o ->> 'timezone'), '') as tz,
      left(nullif(btrim(i.o ->> 'name'), ''), 200) as name,
      case when jsonb_typeof(i.o -> 'metadata') = 'object' then i.o -> 'metadata' else '{}'::jsonb end
        || case when jsonb_typeof(i.o -> 'variables') = 'object' then i.o -> 'variables' else '{}'::jsonb end as vars
    from items i
  ), judged as (
    select p.*, n.number, case
      when not p.is_object then 'not a JSON object'
      when p.raw is null then 'no phone number'
      when n.number is null then 'not a valid phone number'
      when p.tz is not null and not internal.is_timezone(p.tz) then 'unknown time zone'
      when pg_column_size(p.vars) > 8192 then 'its variables take more than 8 KiB'
    end as reason
    from parsed p, lateral (select internal.normalise_number(p.raw, c.default_country) as number) n
  ), inserted as (
    insert into public.campaign_calls (campaign_id, owner_id, e164, name, variables, timezone)
    select c.id, c.owner_id, j.number, j.name, j.vars, j.tz from judged j where j.reason is null order by j.idx
    on conflict on constraint campaign_calls_campaign_id_e164_key do nothing
    returning status
  )
  select jsonb_build_object(
    'added', (select count(*) from inserted where status <> 'skipped'),
    'duplicates', (select count(*) from judged where reason is null) - (select count(*) from inserted),
    'skipped', (select count(*) from inserted where status = 'skipped'),
    'rejected', coalesce((select jsonb_agg(jsonb_build_object('index', idx, 'row', rownum,
        'phoneNumber', coalesce(number, raw), 'reason', reason) order by idx)
      from judged where reason is not null), '[]'::jsonb))
  into result;
  return result;
end $$;
comment on function internal.import_contacts is 'The one contact import path (add_campaign_calls and import-contacts): [{phoneNumber, name?, timezone?, variables? (metadata, its older name, is still read), row?}] -> {added, duplicates, skipped, rejected: [{index, row, phoneNumber, reason}]}, under the caller''s RLS.';

create function public.add_campaign_calls(campaign_id uuid, contacts jsonb)
returns jsonb
language plpgsql security invoker set search_path = '' as $$
begin
  -- 22023 invalid_parameter_value: PostgREST's 400, as the functions answer bad input.
  if contacts is null or jsonb_typeof(contacts) <> 'array' then
    raise exception 'contacts must be a JSON array' using errcode = '22023',
      hint = 'Pass contacts as [{"phoneNumber": "+12125550100", "name": "Ada"}, ...].';
  end if;
  if jsonb_array_length(contacts) > 10000 then
    raise exception 'at most 10000 contacts per call' using errcode = '22023',
      detail = format('%s contacts were given.', jsonb_array_length(contacts)),
      hint = 'Split the list, or send it to import-contacts, which takes more.';
  end if;
  return internal.import_contacts(add_campaign_calls.campaign_id, contacts);
end $$;
comment on function public.add_campaign_calls is 'Bulk import of callees (RPC, runs under the caller''s RLS; at most 10,000 per call, import-contacts takes more): numbers normalised to E.164 with the campaign''s default country, de-duplicated, checked, scheduled; per-contact variables reach the agent.';

-- The caller number, pausing and completion ----------------------------------------------------
create function internal.campaign_caller(c public.campaigns) returns public.phone_number
language sql stable security definer set search_path = '' as $$
  select p.* from public.phone_number p
  where p.owner_id = c.owner_id and p.assistant_id = c.assistant_id
    and (c.phone_number_id is null or p.id = c.phone_number_id)
  order by (p.trunk_status = 'ready') desc, p.e164
  limit 1
$$;
comment on function internal.campaign_caller is 'The number a campaign dials from: its chosen number, else the assistant''s first ready one.';

create function internal.pause_campaign(campaign uuid, reason text) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  update public.campaigns set status = 'paused', status_reason = reason where id = campaign and status = 'running';
  return found;
end $$;
comment on function internal.pause_campaign is 'Pauses a running campaign with a reason its owner sees.';

-- The one completion rule, asked by the claim, by every settled contact and by the tick.
create function internal.maybe_complete(campaign uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  cut integer;
begin
  -- Calls ending at once each see the others still live; taking turns, the last one sees
  -- every other end committed and completes the campaign.
  perform pg_advisory_xact_lock(hashtext('complete:' || campaign::text));
  select * into c from public.campaigns where id = campaign;
  -- Nothing completes before it starts: a campaign waiting for starts_at waits, contacts or not.
  if c.status is distinct from 'running' or c.starts_at > now() then
    return false;
  end if;
  if c.ends_at <= now() then
    -- Past its end nothing more is dialed: contacts still waiting end here with the reason (never
    -- called: skipped; waiting for a retry or callback: their last call's status); calls still
    -- live finish normally and settle without a retry. A contact another transaction holds (a
    -- late report settling it) is left to that transaction, which asks this rule again.
    update public.campaign_calls cc set
      status = case when cc.attempts = 0 then 'skipped'::public.campaign_call_status
        else coalesce((select r.call_status::text from internal.call_outcome r where r.outcome = cc.last_outcome),
                      'failed')::public.campaign_call_status end,
      last_outcome = case when cc.attempts = 0 then 'campaign_ended' else cc.last_outcome end,
      last_error = case when cc.attempts = 0 then 'not called: the campaign ended'
                        else 'not called again: the campaign ended' end,
      completed_at = now(), lease_until = null, lease_owner = null
    where cc.campaign_id = campaign and cc.status = 'queued'
      and cc.id in (select x.id from public.campaign_calls x where x.campaign_id = campaign and x.status = 'queued'
                    for update skip locked);
  end if;
  if exists (select from public.campaign_calls where campaign_id = campaign and status in ('queued', 'dialing', 'in_progress')) then
    return false;
  end if;
  -- Completed; when its end cut contacts off, status_reason says so (campaign_progress and the
  -- campaign.completed event show it).
  if c.ends_at <= now() then
    select count(*) into cut from public.campaign_calls x
    where x.campaign_id = campaign
      and x.last_error in ('not called: the campaign ended', 'not called again: the campaign ended')
      and x.completed_at >= c.ends_at;
  end if;
  update public.campaigns set status = 'completed', status_reason = case when cut > 0 then format(
      'ended at its end time (ends_at %s): %s %s still waiting %s not called',
      to_char(c.ends_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'), cut,
      case when cut = 1 then 'contact' else 'contacts' end, case when cut = 1 then 'was' else 'were' end) end
  where id = campaign and status = 'running';
  return found;
end $$;
comment on function internal.maybe_complete is
  'Completes a running campaign that has started when nothing is queued and nothing is live. Past ends_at it '
  'first ends what is still queued (skipped, or the last call''s status for a contact awaiting a retry or '
  'callback; last_error says the campaign ended) and, when that cut contacts off, gives the completion a '
  'status_reason. Called by the claim, by every settled contact and by the tick.';

-- Triggers -----------------------------------------------------------------------------------
create trigger touch before update on public.campaigns for each row execute function internal.touch();
create trigger touch before update on public.campaign_calls for each row execute function internal.touch();
create trigger status_change before insert or update of status on public.campaigns
  for each row execute function internal.campaign_status_change();
create trigger changed after update on public.campaigns
  for each row execute function internal.campaign_changed();
create trigger prepare before insert on public.campaign_calls
  for each row execute function internal.prepare_campaign_call();

-- Policies -----------------------------------------------------------------------------------------
alter table public.campaigns enable row level security;
alter table public.campaign_calls enable row level security;
alter table public.do_not_call enable row level security;

create policy owner_all on public.campaigns for all to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));
create policy owner_all on public.campaign_calls for all to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));
create policy owner_all on public.do_not_call for all to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));

-- Grants -------------------------------------------------------------------------------------------
revoke all on public.campaigns, public.campaign_calls, public.do_not_call from anon, authenticated;
grant select, delete on public.campaigns to authenticated;
grant insert (name, assistant_id, phone_number_id, status, starts_at, ends_at, window_start, window_end,
  weekdays, default_timezone, default_country, allowed_countries, max_concurrent, max_attempts,
  retry_busy_sec, retry_no_answer_sec, retry_failed_sec, retry_backoff, ringing_timeout_sec,
  max_call_duration_sec, failure_threshold, failure_window_sec, failure_min_calls, abandon_cap,
  retry_voicemail_sec, caller_number_ids, caller_id_strategy)
  on public.campaigns to authenticated;
grant update (name, phone_number_id, status, starts_at, ends_at, window_start, window_end, weekdays,
  default_timezone, default_country, allowed_countries, max_concurrent, max_attempts, retry_busy_sec,
  retry_no_answer_sec, retry_failed_sec, retry_backoff, ringing_timeout_sec, max_call_duration_sec,
  failure_threshold, failure_window_sec, failure_min_calls, abandon_cap, retry_voicemail_sec,
  caller_number_ids, caller_id_strategy)
  on public.campaigns to authenticated;
grant select, delete on public.campaign_calls to authenticated;
grant insert (campaign_id, owner_id, e164, name, variables, timezone) on public.campaign_calls to authenticated;
grant update (name, variables, timezone) on public.campaign_calls to authenticated;
grant select, insert, delete on public.do_not_call to authenticated;
grant all on public.campaigns, public.campaign_calls, public.do_not_call to service_role;

revoke all on function internal.in_window, internal.next_window_start from public;
grant execute on function internal.in_window, internal.next_window_start to authenticated, service_role;
revoke all on function internal.campaign_transition_allowed, internal.campaign_status_change,
  internal.campaign_changed, internal.prepare_campaign_call, internal.import_contacts,
  internal.campaign_caller, internal.pause_campaign, internal.maybe_complete from public;
grant execute on function internal.import_contacts to authenticated, service_role;
revoke all on function public.add_campaign_calls from public, anon;
grant execute on function public.add_campaign_calls to authenticated, service_role;
