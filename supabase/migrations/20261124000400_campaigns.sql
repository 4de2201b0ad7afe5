-- The campaign engine's database half: legal status transitions, callee preparation on
-- import (time zone, do-not-call, destination, first dial time), claiming due calls with
-- SKIP LOCKED and a lease within every limit, per-trunk pacing, retries by outcome,
-- completion, the failure breaker, and progress counts.

-- Tables -------------------------------------------------------------------------------------
create table internal.trunk_pacing (
  phone_number_id uuid primary key references public.phone_number (id) on delete cascade,
  second_start timestamptz not null default 'epoch',
  used integer not null default 0,
  last_slot timestamptz not null default 'epoch'
);
create table internal.tick_poke (
  campaign_id uuid primary key references public.campaigns (id) on delete cascade,
  poked_at timestamptz not null
);
comment on table internal.tick_poke is 'When a finished call last poked the tick for its campaign (pokes are debounced).';
alter table internal.tick_poke enable row level security;

comment on table internal.trunk_pacing is 'Calls-per-second budget of each caller number: the slots handed out in the current second. Locked by the claim, shared by every campaign and tick dialing from the number.';
alter table internal.trunk_pacing enable row level security;

-- Functions ----------------------------------------------------------------------------------
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
  if tg_op = 'INSERT' then
    if new.status not in ('draft', 'scheduled', 'running') then
      raise exception 'a campaign starts as draft, scheduled or running, not %', new.status using errcode = '23514';
    end if;
  elsif new.status <> old.status then
    if not internal.campaign_transition_allowed(old.status, new.status) then
      raise exception 'campaign % cannot go from % to %', old.id, old.status, new.status using errcode = '23514';
    end if;
    -- Only the engine completes a campaign; a user cancels it.
    if new.status = 'completed' and coalesce(auth.role(), '') in ('authenticated', 'anon') then
      raise exception 'a campaign completes by itself when every call has ended' using errcode = '42501';
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

create function public.add_campaign_calls(campaign_id uuid, contacts jsonb)
returns jsonb
language plpgsql security invoker set search_path = '' as $$
declare
  c public.campaigns;
  item jsonb;
  idx integer := 0;
  number text;
  tz text;
  added integer := 0;
  duplicates integer := 0;
  skipped integer := 0;
  rejected jsonb := '[]'::jsonb;
  inserted public.campaign_calls;
begin
  if jsonb_typeof(contacts) <> 'array' then
    raise exception 'contacts must be a JSON array' using errcode = '22023';
  end if;
  if jsonb_array_length(contacts) > 10000 then
    raise exception 'at most 10000 contacts per call' using errcode = '22023';
  end if;
  select * into c from public.campaigns where id = campaign_id;
  if c.id is null then
    raise exception 'campaign % does not exist', campaign_id using errcode = 'P0002';
  end if;
  for item in select value from jsonb_array_elements(contacts) loop
    idx := idx + 1;
    number := internal.normalise_number(coalesce(item ->> 'phoneNumber', item ->> 'phone_number', ''), c.default_country);
    tz := item ->> 'timezone';
    if number is null then
      rejected := rejected || jsonb_build_object('index', idx - 1, 'phoneNumber', item ->> 'phoneNumber', 'reason', 'not a valid phone number');
      continue;
    end if;
    if tz is not null and not internal.is_timezone(tz) then
      rejected := rejected || jsonb_build_object('index', idx - 1, 'phoneNumber', number, 'reason', 'unknown time zone');
      continue;
    end if;
    insert into public.campaign_calls (campaign_id, owner_id, e164, name, metadata, timezone)
    values (c.id, c.owner_id, number, left(item ->> 'name', 200),
            case when jsonb_typeof(item -> 'metadata') = 'object' then item -> 'metadata' else '{}'::jsonb end, tz)
    on conflict on constraint campaign_calls_campaign_id_e164_key do nothing
    returning * into inserted;
    if inserted.id is null then
      duplicates := duplicates + 1;
    elsif inserted.status = 'skipped' then
      skipped := skipped + 1;
    else
      added := added + 1;
    end if;
    inserted := null;
  end loop;
  return jsonb_build_object('added', added, 'duplicates', duplicates, 'skipped', skipped, 'rejected', rejected);
end $$;
comment on function public.add_campaign_calls is 'Bulk import of callees (RPC, runs under the caller''s RLS): numbers normalised to E.164 with the campaign''s default country, de-duplicated, checked, scheduled.';

create function internal.campaign_caller(c public.campaigns) returns public.phone_number
language sql stable security definer set search_path = '' as $$
  select p.* from public.phone_number p
  where p.owner_id = c.owner_id and p.assistant_id = c.assistant_id
    and (c.phone_number_id is null or p.id = c.phone_number_id)
  order by (p.trunk_status = 'ready') desc, p.e164
  limit 1
$$;
comment on function internal.campaign_caller is 'The number a campaign dials from: its chosen number, else the assistant''s first ready one.';

-- Pacing: at most floor(cps) send slots in each wall-clock second, spread over its first
-- 90% so a send never slips into the next second; below 1 cps, one slot every 1/cps
-- seconds, each on a whole second.
create function internal.next_slots(
  pace internal.trunk_pacing, cps numeric, n integer, horizon_sec numeric,
  out slots timestamptz[], out state internal.trunk_pacing
)
language plpgsql stable set search_path = '' as $$
declare
  per_second integer := greatest(1, floor(cps))::integer;
  gap interval := case when cps < 1 then make_interval(secs => 1 / cps)
                       else make_interval(secs => 0.9 / greatest(1, floor(cps))) end;
  slot timestamptz;
begin
  slots := '{}';
  state := pace;
  while cardinality(slots) < n loop
    if cps < 1 then
      slot := greatest(now(), state.last_slot + gap);
      if slot > date_trunc('second', slot) then
        slot := date_trunc('second', slot) + interval '1 second';
      end if;
      exit when slot > now() + make_interval(secs => horizon_sec);
      state.last_slot := slot;
    else
      if state.second_start < date_trunc('second', now()) then
        state.second_start := date_trunc('second', now());
        state.used := 0;
      end if;
      loop
        if state.used >= per_second then
          state.second_start := state.second_start + interval '1 second';
          state.used := 0;
        end if;
        slot := state.second_start + gap * state.used;
        -- Positions already past are lost, not crammed in later.
        exit when slot >= now() - interval '50 milliseconds';
        state.used := state.used + 1;
      end loop;
      slot := greatest(slot, now());
      exit when slot > now() + make_interval(secs => horizon_sec);
      state.used := state.used + 1;
      state.last_slot := slot;
    end if;
    slots := slots || slot;
  end loop;
end $$;
comment on function internal.next_slots is 'The next n send slots of a caller number within its calls-per-second budget (pure; the caller holds the pacing lock).';

-- The claim: under the campaign's row lock (SKIP LOCKED: concurrent ticks take other
-- campaigns) and the caller number's pacing lock, hands out up to the free concurrency
-- of due calls, each with a send slot inside the number's calls-per-second budget.
create function internal.claim_calls(
  only_campaign uuid, max_calls integer, tick_id uuid, horizon_sec numeric default 5, lease_sec integer default 120
) returns table (
  campaign_call_id uuid, campaign_id uuid, owner_id uuid, assistant_id uuid, phone_number_id uuid,
  e164 text, attempt integer, send_at timestamptz, room_name text, participant_identity text,
  ringing_timeout_sec integer, max_call_duration_sec integer, allowed_countries text[], metadata jsonb, name text
)
language plpgsql security definer set search_path = '' as $$
#variable_conflict use_column
declare
  c public.campaigns;
  caller public.phone_number;
  pace internal.trunk_pacing;
  planned record;
  live integer;
  free integer;
  budget integer := max_calls;
  claimed integer;
  cc record;
begin
  for c in
    select * from public.campaigns
    where status = 'running' and (only_campaign is null or id = only_campaign)
      and (starts_at is null or starts_at <= now())
    order by random()
    for update skip locked
  loop
    exit when budget <= 0;
    caller := internal.campaign_caller(c);
    if caller.id is null or caller.trunk_status <> 'ready' or caller.outbound_trunk_id is null then
      update public.campaigns set status = 'paused',
        status_reason = 'no ready outbound trunk: assign a number to the assistant (map-number), then resume'
      where id = c.id;
      continue;
    end if;
    select count(*) into live from public.campaign_calls x
    where x.campaign_id = c.id and x.status in ('dialing', 'in_progress');
    free := least(c.max_concurrent - live, budget);
    continue when free <= 0;

    insert into internal.trunk_pacing as t (phone_number_id) values (caller.id) on conflict do nothing;
    select * into pace from internal.trunk_pacing t where t.phone_number_id = caller.id for update;
    select * into planned from internal.next_slots(pace, caller.calls_per_second, free, horizon_sec);
    continue when cardinality(planned.slots) = 0;

    claimed := 0;
    for cc in
      select x.* from public.campaign_calls x
      where x.campaign_id = c.id and x.status = 'queued' and x.next_attempt_at <= now()
      order by x.next_attempt_at
      limit cardinality(planned.slots)
      for update skip locked
    loop
      -- The window is checked again at claim time, in the callee's zone.
      if not internal.in_window(now(), cc.timezone, c.window_start, c.window_end, c.weekdays)
         or (c.ends_at is not null and now() >= c.ends_at) then
        update public.campaign_calls x set next_attempt_at = coalesce(
          internal.next_window_start(now(), cc.timezone, c.window_start, c.window_end, c.weekdays), 'infinity')
        where x.id = cc.id;
        continue;
      end if;
      claimed := claimed + 1;
      update public.campaign_calls x set status = 'dialing', attempts = cc.attempts + 1,
        lease_until = planned.slots[claimed] + make_interval(secs => lease_sec), lease_owner = tick_id,
        last_error = null
      where x.id = cc.id;
      campaign_call_id := cc.id;
      campaign_id := c.id;
      owner_id := c.owner_id;
      assistant_id := c.assistant_id;
      phone_number_id := caller.id;
      e164 := cc.e164;
      attempt := cc.attempts + 1;
      send_at := planned.slots[claimed];
      -- Deterministic per attempt: a re-dial of the same attempt is refused by the room's uniqueness.
      room_name := format('cc-%s-%s', cc.id, cc.attempts + 1);
      participant_identity := format('sip-cc-%s-%s', cc.id, cc.attempts + 1);
      ringing_timeout_sec := c.ringing_timeout_sec;
      max_call_duration_sec := c.max_call_duration_sec;
      allowed_countries := c.allowed_countries;
      metadata := cc.metadata;
      name := cc.name;
      return next;
    end loop;
    continue when claimed = 0;
    -- Only the slots used are taken from the budget.
    select * into planned from internal.next_slots(pace, caller.calls_per_second, claimed, horizon_sec);
    update internal.trunk_pacing t set second_start = (planned.state).second_start, used = (planned.state).used,
      last_slot = (planned.state).last_slot
    where t.phone_number_id = caller.id;
    budget := budget - claimed;
  end loop;
end $$;
comment on function internal.claim_calls is 'campaign-tick: claims due calls (FOR UPDATE SKIP LOCKED + lease) within concurrency, window and the number''s calls-per-second budget.';

-- Give back claims whose tick died before dialing; a dialed attempt is never dialed again.
create function internal.release_expired_leases() returns integer
language plpgsql security definer set search_path = '' as $$
declare
  cc record;
  released integer := 0;
  call public.outbound_calls;
  c public.campaigns;
begin
  for cc in
    select x.* from public.campaign_calls x
    where x.status in ('dialing', 'in_progress') and x.lease_until < now()
    order by x.lease_until limit 500
    for update skip locked
  loop
    select * into c from public.campaigns where id = cc.campaign_id;
    select * into call from public.outbound_calls o
    where o.room_name = format('cc-%s-%s', cc.id, cc.attempts);
    if call.id is null then
      -- Never dialed: the attempt does not count.
      update public.campaign_calls set status = 'queued', attempts = greatest(cc.attempts - 1, 0),
        lease_until = null, lease_owner = null, next_attempt_at = now()
      where id = cc.id;
      released := released + 1;
    elsif call.status in ('completed', 'busy', 'no_answer', 'failed') then
      perform internal.call_finished(call.id, null);
    elsif call.created_at > now() - make_interval(secs => c.ringing_timeout_sec + c.max_call_duration_sec + 120) then
      -- Dialed by a tick that died: the call may still be live, and its webhooks will end it.
      update public.campaign_calls set current_call_id = call.id,
        lease_until = call.created_at + make_interval(secs => c.ringing_timeout_sec + c.max_call_duration_sec + 120)
      where id = cc.id;
    else
      -- Dialed but silent past its lease (no webhook came): the call is written off as
      -- failed; a later attempt, if any, gets a new room.
      update public.outbound_calls set status = 'failed', outcome = coalesce(outcome, 'lost'),
        error = coalesce(error, 'no outcome reported before the lease expired'), ended_at = coalesce(ended_at, now())
      where id = call.id;
      perform internal.call_finished(call.id, true);
      released := released + 1;
    end if;
  end loop;
  return released;
end $$;
comment on function internal.release_expired_leases is 'campaign-tick: returns claimed-but-undialed calls to the queue and settles dialed ones whose lease ran out.';

-- A campaign call's attempt ended: retry by outcome (with backoff, inside the window) or finish.
create function internal.call_finished(call_id uuid, retryable boolean) returns void
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
  cc public.campaign_calls;
  c public.campaigns;
  delay numeric;
  final_status public.campaign_call_status;
begin
  select * into call from public.outbound_calls where id = call_id;
  if call.campaign_call_id is null then
    return;
  end if;
  select * into cc from public.campaign_calls where id = call.campaign_call_id for update;
  select * into c from public.campaigns where id = cc.campaign_id;
  -- Only the current attempt may settle the campaign call, once.
  if cc.status not in ('dialing', 'in_progress') or call.attempt is distinct from cc.attempts then
    return;
  end if;
  final_status := case call.status
    when 'completed' then 'completed' when 'busy' then 'busy' when 'no_answer' then 'no_answer'
    else 'failed' end;
  retryable := coalesce(retryable, call.status in ('busy', 'no_answer') or call.outcome in ('livekit_error', 'carrier_error', 'cps_limited', 'lost'));
  if final_status <> 'completed' and retryable and cc.attempts < c.max_attempts and c.status <> 'cancelled' then
    delay := case final_status when 'busy' then c.retry_busy_sec when 'no_answer' then c.retry_no_answer_sec
             else c.retry_failed_sec end * power(c.retry_backoff, cc.attempts - 1);
    -- Carrier throttling is not the callee's doing: try again as soon as pacing allows.
    if call.outcome = 'cps_limited' then
      delay := 1;
    end if;
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null,
      last_outcome = call.outcome, last_sip_status = call.sip_status_code, last_error = call.error,
      current_call_id = call.id,
      next_attempt_at = coalesce(internal.next_window_start(now() + make_interval(secs => delay), cc.timezone,
        c.window_start, c.window_end, c.weekdays), 'infinity')
    where id = cc.id;
  else
    update public.campaign_calls set status = final_status, lease_until = null, lease_owner = null,
      last_outcome = call.outcome, last_sip_status = call.sip_status_code, last_error = call.error,
      current_call_id = call.id, completed_at = now()
    where id = cc.id;
  end if;
  perform internal.check_breaker(c.id);
  perform internal.maybe_complete(c.id);
  -- A free slot is refilled at once rather than at the next cron run (at most twice a second).
  if c.status = 'running' then
    insert into internal.tick_poke as t (campaign_id, poked_at) values (c.id, clock_timestamp())
    on conflict (campaign_id) do update set poked_at = clock_timestamp()
      where t.poked_at < clock_timestamp() - interval '500 milliseconds';
    if found then
      perform internal.call_function('campaign-tick', jsonb_build_object('campaignId', c.id));
    end if;
  end if;
end $$;
comment on function internal.call_finished is 'Called when a campaign call''s attempt ends (create-participant error, webhook, or lease expiry).';

create function internal.check_breaker(campaign uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  total integer;
  failed integer;
begin
  select * into c from public.campaigns where id = campaign;
  if c.status <> 'running' then
    return false;
  end if;
  select count(*), count(*) filter (where o.status = 'failed' and o.outcome in ('livekit_error', 'carrier_error', 'failed', 'lost', 'rejected', 'not_found'))
  into total, failed
  from public.outbound_calls o
  where o.campaign_id = campaign and o.ended_at > now() - make_interval(secs => c.failure_window_sec);
  if total >= c.failure_min_calls and failed::numeric / total >= c.failure_threshold then
    update public.campaigns set status = 'paused',
      status_reason = format('paused by the failure breaker: %s of the last %s calls failed within %s s; fix the cause and resume',
                             failed, total, c.failure_window_sec)
    where id = campaign;
    return true;
  end if;
  return false;
end $$;
comment on function internal.check_breaker is 'Pauses a running campaign, with a visible reason, when failures burst.';

create function internal.maybe_complete(campaign uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  -- Calls ending at once each see the others still live; taking turns, the last one sees
  -- every other end committed and completes the campaign.
  perform pg_advisory_xact_lock(hashtext('complete:' || campaign::text));
  if exists (select from public.campaign_calls where campaign_id = campaign and status in ('queued', 'dialing', 'in_progress')) then
    return false;
  end if;
  update public.campaigns set status = 'completed', status_reason = null where id = campaign and status = 'running';
  return found;
end $$;
comment on function internal.maybe_complete is 'Completes a running campaign when nothing is queued and nothing is live.';

create function internal.tick_campaigns() returns bigint
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (select from public.campaigns where status = 'running')
     and not exists (select from public.campaign_calls where status in ('dialing', 'in_progress') and lease_until < now()) then
    return null;
  end if;
  return internal.call_function('campaign-tick', '{}'::jsonb);
end $$;
comment on function internal.tick_campaigns is 'pg_cron: pokes campaign-tick when any campaign is running (or a lease needs rescue).';

-- Triggers -----------------------------------------------------------------------------------
create trigger status_change before insert or update of status on public.campaigns
  for each row execute function internal.campaign_status_change();
create trigger changed after update on public.campaigns
  for each row execute function internal.campaign_changed();
create trigger prepare before insert on public.campaign_calls
  for each row execute function internal.prepare_campaign_call();

-- Views ------------------------------------------------------------------------------------------
create view public.campaign_progress with (security_invoker = true) as
select c.id as campaign_id, c.owner_id, c.name, c.status, c.status_reason,
  count(cc.id)::integer as total,
  count(cc.id) filter (where cc.status = 'queued' and cc.attempts = 0)::integer as queued,
  count(cc.id) filter (where cc.status = 'queued' and cc.attempts > 0)::integer as retrying,
  count(cc.id) filter (where cc.status = 'dialing')::integer as dialing,
  count(cc.id) filter (where cc.status = 'in_progress')::integer as in_progress,
  count(cc.id) filter (where cc.status = 'completed')::integer as completed,
  count(cc.id) filter (where cc.status = 'busy')::integer as busy,
  count(cc.id) filter (where cc.status = 'no_answer')::integer as no_answer,
  count(cc.id) filter (where cc.status = 'failed')::integer as failed,
  count(cc.id) filter (where cc.status = 'skipped')::integer as skipped,
  count(cc.id) filter (where cc.status = 'cancelled')::integer as cancelled,
  coalesce(sum(cc.attempts), 0)::integer as attempts
from public.campaigns c left join public.campaign_calls cc on cc.campaign_id = c.id
group by c.id;
comment on view public.campaign_progress is 'Per-campaign counts by state; the owner reads their own (security invoker, RLS applies).';

-- Grants -------------------------------------------------------------------------------------
revoke all on table internal.trunk_pacing, internal.tick_poke from public, anon, authenticated;
grant all on table internal.trunk_pacing, internal.tick_poke to service_role;
revoke all on public.campaign_progress from anon;
grant select on public.campaign_progress to authenticated, service_role;
revoke all on function internal.campaign_transition_allowed, internal.campaign_status_change, internal.campaign_changed,
  internal.prepare_campaign_call, internal.campaign_caller, internal.next_slots, internal.claim_calls, internal.release_expired_leases,
  internal.call_finished, internal.check_breaker, internal.maybe_complete, internal.tick_campaigns from public;
revoke all on function public.add_campaign_calls from public, anon;
grant execute on function public.add_campaign_calls to authenticated, service_role;
