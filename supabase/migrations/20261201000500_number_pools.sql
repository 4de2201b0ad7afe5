-- Number pools: a campaign dials from a set of its owner's ready numbers, chosen per callee
-- (local presence: the callee's area code, else state or region, else country, else any; the
-- least recently used among equals), kept across a contact's retries. Each number's health is
-- kept as its calls end (answer rate, share of very short calls, carrier rejections); a number
-- past a threshold rests, and no campaign dials from it until the rest ends. Pacing stays per
-- carrier trunk, concurrency per campaign.

-- Tables -------------------------------------------------------------------------------------
alter table public.campaigns
  add column caller_number_ids uuid[] check (caller_number_ids is null or cardinality(caller_number_ids) <= 1000),
  add column caller_id_strategy text not null default 'fixed'
    check (caller_id_strategy in ('fixed', 'local_presence'));
comment on column public.campaigns.caller_number_ids is 'The numbers this campaign may dial from (the owner''s ready numbers of the campaign''s assistant). Null: the one phone_number_id, else the assistant''s first ready number.';
comment on column public.campaigns.caller_id_strategy is 'fixed: the first usable number of caller_number_ids; local_presence: per callee, a number with the callee''s area code, else the same state or region, else the same country, else any, the least recently used among equals.';
create index campaigns_caller_numbers on public.campaigns using gin (caller_number_ids);

alter table public.campaign_calls add column caller_number_id uuid references public.phone_number (id) on delete set null;
comment on column public.campaign_calls.caller_number_id is 'The number this callee is dialed from; retries keep it unless it rests or leaves the pool.';

alter table public.phone_number
  add column rest_until timestamptz,
  add column rest_reason text check (length(rest_reason) <= 500);
comment on column public.phone_number.rest_until is 'A number rested for poor health is skipped by every campaign until then; its owner may clear it (set null).';
comment on column public.phone_number.rest_reason is 'Why the number rests: the health measure, its value and the threshold.';

create table internal.number_health_settings (
  id boolean primary key default true check (id),
  window_calls integer not null default 50 check (window_calls between 1 and 1000),
  window_sec integer not null default 86400 check (window_sec between 60 and 2592000),
  min_sample integer not null default 20 check (min_sample >= 1),
  min_answered integer not null default 10 check (min_answered >= 1),
  min_answer_rate numeric(4, 3) not null default 0.10 check (min_answer_rate between 0 and 1),
  short_call_sec numeric(8, 3) not null default 12 check (short_call_sec >= 0),
  max_short_share numeric(4, 3) not null default 0.5 check (max_short_share between 0 and 1),
  max_rejection_share numeric(4, 3) not null default 0.2 check (max_rejection_share between 0 and 1),
  rest_sec integer not null default 86400 check (rest_sec between 60 and 2592000)
);
comment on table internal.number_health_settings is 'Thresholds of number health (one row). A number is judged over its last window_calls calls ended within window_sec: rested for rest_sec when the answer rate is under min_answer_rate or carrier rejections pass max_rejection_share (both once min_sample calls ended), or when more than max_short_share of its answered calls ended under short_call_sec (once min_answered were answered; 0 turns that rule off).';
insert into internal.number_health_settings default values;
alter table internal.number_health_settings enable row level security;

create table public.phone_number_health (
  phone_number_id uuid primary key references public.phone_number (id) on delete cascade,
  calls integer not null default 0,
  answered integer not null default 0,
  short_calls integer not null default 0,
  carrier_rejections integer not null default 0,
  answer_rate numeric(5, 4),
  short_share numeric(5, 4),
  rejection_share numeric(5, 4),
  since timestamptz not null default '-infinity',
  last_call_at timestamptz,
  rested_at timestamptz,
  rests integer not null default 0
);
comment on table public.phone_number_health is 'Each number''s health over its recent calls (internal.number_health_settings), updated as each call ends (of calls ending at the same moment, one writes); calls ended before since (a rest''s end, or when its owner cleared it) are not judged again.';

create table internal.number_usage (
  phone_number_id uuid primary key references public.phone_number (id) on delete cascade,
  last_used_at timestamptz not null default '-infinity'
);
comment on table internal.number_usage is 'When each number was last given to a callee, by any campaign: local presence takes the least recently used among equals. Written only by the claim, never waited on (a row another claim holds is skipped).';
alter table internal.number_usage enable row level security;

create index outbound_calls_number_ended on public.outbound_calls (phone_number_id, ended_at desc)
  where ended_at is not null and phone_number_id is not null;

-- The state, province or territory each NANP area code serves, kept from the area-code table of
-- 20261124000200_callee_time.sql (time zones may come from elsewhere later; states stay here).
create table internal.nanp_state (
  area_code text primary key check (area_code ~ '^[2-9][0-9]{2}$'),
  region text not null
);
comment on table internal.nanp_state is 'NANP area code -> the state, province or territory it serves (local presence: a 646 callee is in the same state as a 212 number).';
insert into internal.nanp_state (area_code, region) select a.area_code, a.region from internal.nanp_area_code a;
alter table internal.nanp_state enable row level security;

-- Functions ----------------------------------------------------------------------------------
create function internal.number_region(e164 text) returns text
language sql stable security definer set search_path = '' as $$
  select coalesce(
    (select s.region from internal.nanp_state s
     where number_region.e164 like '+1%' and s.area_code = substr(number_region.e164, 3, 3)),
    internal.number_timezone(number_region.e164))
$$;
comment on function internal.number_region is 'The region a number rings in, for local presence: the state, province or territory of a NANP area code, else the number''s time zone (the mapping that gives callees theirs); null when unknown.';

-- Only the owner's ready numbers of the campaign's assistant may join a pool.
create function internal.check_caller_numbers() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  bad uuid;
  before uuid[] := '{}';
  same_assistant boolean := false;
begin
  if tg_op = 'UPDATE' then
    before := coalesce(old.caller_number_ids, '{}');
    same_assistant := new.assistant_id = old.assistant_id;
  end if;
  if new.caller_number_ids is not null then
    -- Duplicates dropped, order kept (fixed dials from the first usable one).
    select array_agg(u.id order by u.ord) into new.caller_number_ids
    from (select x.id, min(x.ord) as ord from unnest(new.caller_number_ids) with ordinality x(id, ord)
          where x.id is not null group by x.id) u;
  end if;
  -- Numbers already in the pool may stay while they are not ready (they are skipped then).
  select x.id into bad
  from unnest(new.caller_number_ids) x(id)
  where not (same_assistant and x.id = any (before))
    and not exists (select from public.phone_number p
                    where p.id = x.id and p.owner_id = new.owner_id and p.assistant_id = new.assistant_id
                      and p.trunk_status = 'ready')
  limit 1;
  if bad is not null then
    raise exception 'number % cannot be a caller number of this campaign: only the owner''s ready numbers assigned to the campaign''s assistant can', bad
      using errcode = '23514', column = 'caller_number_ids', constraint = 'campaigns_caller_number_ids_ready';
  end if;
  return new;
end $$;
comment on function internal.check_caller_numbers is 'campaigns: caller_number_ids may only hold the owner''s ready numbers assigned to the campaign''s assistant (duplicates dropped).';

-- A number leaving its assistant or owner leaves the pools that held it.
create function internal.number_left_pools() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'DELETE' then
    update public.campaigns c set caller_number_ids = nullif(array_remove(c.caller_number_ids, old.id), '{}')
    where c.caller_number_ids @> array[old.id];
    return null;
  end if;
  update public.campaigns c set caller_number_ids = nullif(array_remove(c.caller_number_ids, new.id), '{}')
  where c.caller_number_ids @> array[new.id]
    and (c.owner_id <> new.owner_id or new.assistant_id is null or c.assistant_id <> new.assistant_id);
  return null;
end $$;
comment on function internal.number_left_pools is 'phone_number: a number unassigned, moved to another assistant or owner, or deleted leaves every campaign pool holding it.';

-- A rest its owner cleared (or that ended) starts a fresh sample.
create function internal.number_rest_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.rest_until is null then
    new.rest_reason := null;
  end if;
  if old.rest_until > now() and (new.rest_until is null or new.rest_until <= now()) then
    update public.phone_number_health set since = clock_timestamp() where phone_number_id = new.id;
  end if;
  return new;
end $$;
comment on function internal.number_rest_changed is 'phone_number: clearing a rest clears its reason, and only calls ending afterwards judge the number again.';

-- Health as calls end: one index range read of the number's last calls.
create function internal.record_number_health() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  s internal.number_health_settings;
  h public.phone_number_health;
  p public.phone_number;
  n record;
  reason text;
begin
  select * into s from internal.number_health_settings where id;
  insert into public.phone_number_health (phone_number_id) values (new.phone_number_id) on conflict do nothing;
  select * into h from public.phone_number_health where phone_number_id = new.phone_number_id;
  select count(*)::integer as calls,
    (count(*) filter (where x.answered_at is not null))::integer as answered,
    (count(*) filter (where x.answered_at is not null and s.short_call_sec > 0
                        and x.ended_at - x.answered_at < make_interval(secs => s.short_call_sec)))::integer as short_calls,
    (count(*) filter (where x.outcome = 'blocked'))::integer as rejections
  into n
  from (select o.answered_at, o.ended_at, o.outcome from public.outbound_calls o
        where o.phone_number_id = new.phone_number_id and o.ended_at is not null
          and o.ended_at >= greatest(h.since, now() - make_interval(secs => s.window_sec))
          and o.status in ('completed', 'busy', 'no_answer', 'failed')
          -- Not the number's doing: the trunk's budget or credentials, LiveKit, an unknown end.
          and coalesce(o.outcome, 'failed') not in ('cps_limited', 'auth_failed', 'carrier_error', 'livekit_error', 'lost')
        order by o.ended_at desc
        limit s.window_calls) x;
  -- Calls ending at once do not queue for the row: one that finds it taken leaves the write to
  -- the other, and the next call's end writes the counts afresh.
  update public.phone_number_health set calls = n.calls, answered = n.answered, short_calls = n.short_calls,
    carrier_rejections = n.rejections,
    answer_rate = round(n.answered::numeric / nullif(n.calls, 0), 4),
    short_share = round(n.short_calls::numeric / nullif(n.answered, 0), 4),
    rejection_share = round(n.rejections::numeric / nullif(n.calls, 0), 4),
    last_call_at = new.ended_at
  where phone_number_id = (select l.phone_number_id from public.phone_number_health l
                           where l.phone_number_id = new.phone_number_id for update skip locked);

  select * into p from public.phone_number where id = new.phone_number_id;
  if p.rest_until > now() then
    return null;
  end if;
  reason := case
    when s.short_call_sec > 0 and n.answered >= s.min_answered and n.short_calls::numeric / n.answered > s.max_short_share then
      format('%s of its last %s answered calls ended under %s s (limit %s %%)',
             n.short_calls, n.answered, s.short_call_sec::float8, round(s.max_short_share * 100, 1))
    when n.calls >= s.min_sample and n.answered::numeric / n.calls < s.min_answer_rate then
      format('answer rate %s %% over its last %s calls (minimum %s %%)',
             round(n.answered * 100.0 / n.calls, 1), n.calls, round(s.min_answer_rate * 100, 1))
    when n.calls >= s.min_sample and n.rejections::numeric / n.calls > s.max_rejection_share then
      format('the carrier rejected %s of its last %s calls (limit %s %%)',
             n.rejections, n.calls, round(s.max_rejection_share * 100, 1))
  end;
  if reason is not null then
    -- The health row first, then the number: two ends resting the same number take turns, and
    -- the second finds it resting. A number being changed right now (its owner, provisioning) is
    -- not waited for: the next call's end judges it again.
    perform 1 from public.phone_number_health where phone_number_id = p.id for update;
    update public.phone_number set rest_until = now() + make_interval(secs => s.rest_sec), rest_reason = reason
    where id = (select x.id from public.phone_number x
                where x.id = p.id and (x.rest_until is null or x.rest_until <= now()) for update skip locked);
    if not found then
      return null;
    end if;
    -- What was judged is not judged again after the rest.
    update public.phone_number_health set rested_at = now(), rests = rests + 1,
      since = now() + make_interval(secs => s.rest_sec)
    where phone_number_id = p.id;
  end if;
  return null;
end $$;
comment on function internal.record_number_health is 'Trigger: when a call ends, its number''s health over its recent calls is recomputed, and the number rests when past a threshold (internal.number_health_settings).';

-- The claim: under the campaign's row lock (SKIP LOCKED: concurrent ticks take other
-- campaigns) hands out up to the free concurrency of due calls in their window, each with a
-- number of the campaign's pool and a send slot of that number's carrier trunk.
create function internal.claim_calls(
  only_campaign uuid, max_calls integer, tick_id uuid, default_cps numeric default 1,
  horizon_sec numeric default 5, lease_sec integer default 120, max_rate numeric default null
) returns table (
  campaign_call_id uuid, campaign_id uuid, owner_id uuid, assistant_id uuid, phone_number_id uuid,
  carrier_trunk text, e164 text, attempt integer, send_at timestamptz, room_name text,
  participant_identity text, ringing_timeout_sec integer, max_call_duration_sec integer,
  allowed_countries text[], metadata jsonb, name text
)
language plpgsql security definer set search_path = '' as $$
#variable_conflict use_column
declare
  c public.campaigns;
  pool uuid[];
  ready integer;
  resting text;
  -- The campaign's usable numbers (ready, not resting), in pool order.
  n_id uuid[];
  n_area text[];
  n_region text[];
  n_country text[];
  n_carrier text[];
  n_used timestamptz[];
  live integer;
  free integer;
  budget integer := max_calls;
  eligible public.campaign_calls[];
  chosen integer[];
  cc public.campaign_calls;
  callee_area text;
  callee_region text;
  callee_country text;
  best integer;
  best_rank integer;
  rnk integer;
  trunk text;
  picked integer[];
  slots timestamptz[];
  used_id uuid[] := '{}';
  used_at timestamptz[] := '{}';
  i integer;
  j integer;
  k integer;
begin
  for c in
    select * from public.campaigns
    where status = 'running' and (only_campaign is null or id = only_campaign)
      and (starts_at is null or starts_at <= now())
    order by random()
    for update skip locked
  loop
    exit when budget <= 0;
    pool := coalesce(c.caller_number_ids, array[(internal.campaign_caller(c)).id]);
    select count(*)::integer,
      string_agg(format('%s until %s: %s', p.e164, to_char(p.rest_until at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                        p.rest_reason), '; ' order by u.ord) filter (where p.rest_until > now()),
      array_agg(p.id order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(case when p.e164 like '+1%' then substr(p.e164, 3, 3) end order by u.ord)
        filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(internal.number_region(p.e164) order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(internal.number_country(p.e164) order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(coalesce(p.carrier_trunk, 'default') order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(coalesce(lu.last_used_at, '-infinity') order by u.ord) filter (where p.rest_until is null or p.rest_until <= now())
    into ready, resting, n_id, n_area, n_region, n_country, n_carrier, n_used
    from unnest(pool) with ordinality u(id, ord)
    join public.phone_number p on p.id = u.id
    left join internal.number_usage lu on lu.phone_number_id = p.id
    where p.owner_id = c.owner_id and p.assistant_id = c.assistant_id and p.trunk_status = 'ready'
      and p.outbound_trunk_id is not null;
    if ready = 0 then
      update public.campaigns set status = 'paused',
        status_reason = 'no ready outbound trunk: assign a number to the assistant (map-number), then resume'
      where id = c.id;
      continue;
    end if;
    if n_id is null then
      perform internal.pause_campaign(c.id, format(
        'paused: every caller number is resting (%s); clear a rest (phone_number.rest_until) or add numbers to caller_number_ids, then resume',
        resting));
      continue;
    end if;
    select count(*) into live from public.campaign_calls x
    where x.campaign_id = c.id and x.status in ('dialing', 'in_progress');
    free := least(case when c.agent_limit_until > now() then least(c.agent_limit, c.max_concurrent)
                       else c.max_concurrent end - live, budget);
    continue when free <= 0;

    eligible := '{}';
    for cc in
      select x.* from public.campaign_calls x
      where x.campaign_id = c.id and x.status = 'queued' and x.next_attempt_at <= now()
      order by x.next_attempt_at
      limit free
      for update skip locked
    loop
      -- The window is checked again at claim time, in the callee's zone.
      if not internal.in_window(now(), cc.timezone, c.window_start, c.window_end, c.weekdays)
         or (c.ends_at is not null and now() >= c.ends_at) then
        update public.campaign_calls x set next_attempt_at = coalesce(
          internal.next_window_start(now(), cc.timezone, c.window_start, c.window_end, c.weekdays), 'infinity')
        where x.id = cc.id;
      else
        eligible := eligible || cc;
      end if;
    end loop;
    continue when cardinality(eligible) = 0;

    -- A number per callee: the one of its earlier attempts while usable, else by strategy.
    chosen := '{}';
    for i in 1 .. cardinality(eligible) loop
      cc := eligible[i];
      best := array_position(n_id, cc.caller_number_id);
      if best is null and c.caller_id_strategy = 'local_presence' and cardinality(n_id) > 1 then
        callee_area := case when cc.e164 like '+1%' then substr(cc.e164, 3, 3) end;
        callee_region := internal.number_region(cc.e164);
        callee_country := internal.number_country(cc.e164);
        best_rank := 4;
        for j in 1 .. cardinality(n_id) loop
          rnk := case when callee_area is not null and n_area[j] = callee_area then 0
                      when callee_region is not null and n_region[j] = callee_region and n_country[j] = callee_country then 1
                      when callee_country is not null and n_country[j] = callee_country then 2
                      else 3 end;
          if rnk < best_rank or (rnk = best_rank and n_used[j] < n_used[best]) then
            best := j;
            best_rank := rnk;
          end if;
        end loop;
      end if;
      best := coalesce(best, 1);
      chosen := chosen || best;
      n_used[best] := clock_timestamp();
    end loop;

    -- Send slots from each chosen number's carrier trunk (trunks in a fixed order).
    for trunk in select distinct t from unnest(n_carrier) t order by 1 loop
      picked := array(select g.i from generate_subscripts(chosen, 1) g(i) where n_carrier[chosen[g.i]] = trunk order by g.i);
      continue when cardinality(picked) = 0;
      slots := internal.take_carrier_slots(trunk, default_cps, cardinality(picked), horizon_sec, max_rate);
      for k in 1 .. coalesce(cardinality(slots), 0) loop
        i := picked[k];
        cc := eligible[i];
        j := chosen[i];
        update public.campaign_calls x set status = 'dialing', attempts = cc.attempts + 1, dials = cc.dials + 1,
          lease_until = slots[k] + make_interval(secs => lease_sec), lease_owner = tick_id, last_error = null,
          caller_number_id = n_id[j]
        where x.id = cc.id;
        used_id := used_id || n_id[j];
        used_at := used_at || slots[k];
        campaign_call_id := cc.id;
        campaign_id := c.id;
        owner_id := c.owner_id;
        assistant_id := c.assistant_id;
        phone_number_id := n_id[j];
        carrier_trunk := trunk;
        e164 := cc.e164;
        attempt := cc.attempts + 1;
        send_at := slots[k];
        -- Deterministic per dial: a second send of the same dial is refused by the room's uniqueness.
        room_name := format('cc-%s-%s', cc.id, cc.dials + 1);
        participant_identity := format('sip-cc-%s-%s', cc.id, cc.dials + 1);
        ringing_timeout_sec := c.ringing_timeout_sec;
        max_call_duration_sec := c.max_call_duration_sec;
        allowed_countries := c.allowed_countries;
        metadata := cc.metadata;
        name := cc.name;
        return next;
        budget := budget - 1;
      end loop;
    end loop;
  end loop;
  -- Least recently used first, across campaigns and ticks: written last, once, so a claim never
  -- waits for these rows while holding a campaign or a carrier trunk. A row another claim is
  -- writing is skipped rather than waited for: that claim has just used the number too.
  if cardinality(used_id) > 0 then
    insert into internal.number_usage (phone_number_id)
    select distinct u.id from unnest(used_id) u(id) order by 1
    on conflict do nothing;
    update internal.number_usage nu set last_used_at = greatest(nu.last_used_at, x.at)
    from (select u.id, max(u.at) as at from unnest(used_id, used_at) u(id, at) group by u.id) x
    where nu.phone_number_id = x.id
      and nu.phone_number_id in (select l.phone_number_id from internal.number_usage l
                                 where l.phone_number_id = any (used_id) for update skip locked);
  end if;
end $$;
comment on function internal.claim_calls is 'campaign-tick: claims due calls (FOR UPDATE SKIP LOCKED + lease) within the campaign''s concurrency and the callee''s window, picks each callee''s number from the campaign''s pool (resting numbers skipped; all resting pauses it), and takes send slots from each number''s carrier trunk.';

-- Triggers -----------------------------------------------------------------------------------
create trigger caller_numbers before insert or update of caller_number_ids, assistant_id on public.campaigns
  for each row execute function internal.check_caller_numbers();
create trigger left_pools after update of assistant_id, owner_id on public.phone_number
  for each row when (old.assistant_id is distinct from new.assistant_id or old.owner_id is distinct from new.owner_id)
  execute function internal.number_left_pools();
create trigger left_pools_on_delete after delete on public.phone_number
  for each row execute function internal.number_left_pools();
create trigger rest_changed before update of rest_until on public.phone_number
  for each row when (old.rest_until is distinct from new.rest_until)
  execute function internal.number_rest_changed();
create trigger number_health after update of status on public.outbound_calls
  for each row when (old.status in ('dialing', 'ringing', 'in_progress')
                     and new.status in ('completed', 'busy', 'no_answer', 'failed')
                     and new.phone_number_id is not null)
  execute function internal.record_number_health();

-- RLS ------------------------------------------------------------------------------------------
alter table public.phone_number_health enable row level security;
create policy owner_read on public.phone_number_health for select to authenticated
  using (exists (select from public.phone_number p where p.id = phone_number_id and p.owner_id = (select auth.uid())));

-- Grants -------------------------------------------------------------------------------------
revoke all on public.phone_number_health from anon, authenticated;
grant select on public.phone_number_health to authenticated;
grant all on public.phone_number_health to service_role;
revoke all on table internal.number_health_settings, internal.number_usage, internal.nanp_state
  from public, anon, authenticated;
grant all on table internal.number_health_settings, internal.number_usage, internal.nanp_state to service_role;
grant insert (caller_number_ids, caller_id_strategy), update (caller_number_ids, caller_id_strategy)
  on public.campaigns to authenticated;
grant update (rest_until, rest_reason) on public.phone_number to authenticated;
revoke all on function internal.number_region, internal.check_caller_numbers, internal.number_left_pools,
  internal.number_rest_changed, internal.record_number_health, internal.claim_calls from public;
