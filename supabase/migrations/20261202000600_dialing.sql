-- Dialing campaigns, the engine's database half: the claim (due callees inside their window, a
-- number of the campaign's pool per callee, a send slot of that number's carrier trunk, a lease,
-- FOR UPDATE SKIP LOCKED so two ticks never dial the same call), giving back what was not dialed,
-- skipping what may not be dialed, the agent gate, the answer, settling a contact by the outcome
-- table after each call (retries with backoff, callbacks, voicemail, requeues, pauses), the failure
-- breaker and the abandonment cap, the rescue of expired leases, the cron tick, and progress.

-- Tables -------------------------------------------------------------------------------------
create table internal.tick_poke (
  campaign_id uuid primary key references public.campaigns (id) on delete cascade,
  poked_at timestamptz not null
);
comment on table internal.tick_poke is 'When a finished call last poked the tick for its campaign (pokes are debounced).';

-- Functions: the claim ---------------------------------------------------------------------------
-- Hands an undialed claim back: the attempt does not count.
create function internal.give_back(campaign_call uuid, attempt_no integer, reason text, after_sec numeric default 0)
returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  update public.campaign_calls cc set
    status = case when c.status = 'cancelled' then 'cancelled'::public.campaign_call_status else 'queued' end,
    completed_at = case when c.status = 'cancelled' then now() end,
    attempts = greatest(cc.attempts - 1, 0), lease_until = null, lease_owner = null,
    next_attempt_at = coalesce(internal.next_window_start(now() + make_interval(secs => after_sec), cc.timezone,
      c.window_start, c.window_end, c.weekdays), 'infinity'),
    last_error = reason
  from public.campaigns c
  where cc.id = campaign_call and c.id = cc.campaign_id and cc.status in ('dialing', 'in_progress')
    and cc.attempts = attempt_no;
  return found;
end $$;
comment on function internal.give_back is 'Returns a claimed attempt to the queue without counting it (not dialed, or refused by the carrier''s CPS limit).';

create function internal.skip_call(campaign_call uuid, attempt_no integer, code text, reason text)
returns void
language plpgsql security definer set search_path = '' as $$
declare
  campaign uuid;
begin
  update public.campaign_calls set status = 'skipped', attempts = greatest(attempts - 1, 0),
    last_outcome = code, last_error = reason, lease_until = null, lease_owner = null, completed_at = now()
  where id = campaign_call and status = 'dialing' and attempts = attempt_no
  returning campaign_id into campaign;
  if campaign is not null then
    perform internal.maybe_complete(campaign);
  end if;
end $$;
comment on function internal.skip_call is 'A claimed callee refused at dial time (do-not-call, destination): not called at all.';

-- The claim: under the campaign's row lock (SKIP LOCKED: concurrent ticks take other
-- campaigns) hands out up to the free concurrency of due calls in their window, each with a
-- number of the campaign's pool and a send slot of that number's carrier trunk.
create function internal.claim_calls(
  only_campaign uuid, max_calls integer, tick_id uuid, default_cps numeric default 1,
  -- How far ahead a claim takes carrier slots: enough to keep dialing between claims, short
  -- enough that a direct call on the same carrier trunk waits little for its slot; and how long
  -- a claim holds a contact before an expired lease gives it back. campaign-tick uses both.
  horizon_sec numeric default 2, lease_sec integer default 120, max_rate numeric default null
) returns table (
  campaign_call_id uuid, campaign_id uuid, owner_id uuid, assistant_id uuid, phone_number_id uuid,
  carrier_trunk text, e164 text, attempt integer, send_at timestamptz, room_name text,
  participant_identity text, ringing_timeout_sec integer, max_call_duration_sec integer,
  allowed_countries text[], variables jsonb, name text, from_number text, outbound_trunk_id text,
  agent_name text
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
  n_e164 text[];
  n_outbound text[];
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
  -- Gathered from every campaign first, then given slots: the campaigns, and per candidate its
  -- campaign (index into camps), contact, number, carrier trunk and place in its campaign.
  camps public.campaigns[] := '{}';
  cand_camp integer[] := '{}';
  cand_cc public.campaign_calls[] := '{}';
  cand_number uuid[] := '{}';
  cand_trunk text[] := '{}';
  cand_owner uuid[] := '{}';
  cand_pos integer[] := '{}';
  -- What the agent's dispatch says before the call's record exists (internal.open_dial writes
  -- it once the agent is in the room): per candidate its number and outbound trunk, per
  -- campaign its assistant's agent name.
  cand_from text[] := '{}';
  cand_outbound text[] := '{}';
  camp_agent text[] := '{}';
  per_tenant integer;
  -- Each tenant's share of this claim still to gather (owners and their shares, side by side).
  t_owner uuid[] := '{}';
  t_left integer[] := '{}';
  t integer;
  limits internal.platform_settings;
  account_live integer;
  account_running integer;
begin
  select * into limits from internal.platform_settings;
  -- A scheduled campaign starts running at its starts_at (at once without one).
  update public.campaigns set status = 'running'
  where status = 'scheduled' and (starts_at is null or starts_at <= now())
    and (only_campaign is null or id = only_campaign);
  -- Each tenant gathers at most its share of this claim, so every tenant with a running
  -- campaign is among the candidates the slots are shared between. Its campaigns come in a
  -- random order, one of each tenant before a second of any: a tenant's share is gathered from
  -- as few of its campaigns as have callees due, and its campaigns take turns across claims.
  select greatest(1, ceil(max_calls::numeric / greatest(count(distinct x.owner_id), 1)))::integer
  into per_tenant
  from public.campaigns x
  where x.status = 'running' and (only_campaign is null or x.id = only_campaign)
    and (x.starts_at is null or x.starts_at <= now());
  for c in
    select y.* from (
      select x.*, row_number() over (partition by x.owner_id order by random()) as turn
      from public.campaigns x
      where x.status = 'running' and (only_campaign is null or x.id = only_campaign)
        and (x.starts_at is null or x.starts_at <= now())) z
    join public.campaigns y on y.id = z.id
    order by z.turn, random()
    -- Not FOR UPDATE: that would also hold up every dial of the campaign for the whole claim
    -- (a call's record takes the campaign's key lock for its foreign key).
    for no key update of y skip locked
  loop
    exit when budget <= 0;
    t := array_position(t_owner, c.owner_id);
    if t is null then
      t_owner := t_owner || c.owner_id;
      t_left := t_left || per_tenant;
      t := cardinality(t_owner);
    end if;
    continue when t_left[t] <= 0;
    -- Past its end nothing is dialed: the completion rule ends what waits and completes the
    -- campaign once nothing is live. Its lock is only tried here (this claim already holds the
    -- campaign's row, which a settling contact takes after it): when a settling contact holds
    -- it, that contact applies the same rule.
    if c.ends_at <= now() then
      if pg_try_advisory_xact_lock(hashtext('complete:' || c.id::text)) then
        perform internal.maybe_complete(c.id);
      end if;
      continue;
    end if;
    -- The operator's per-account limits: running campaigns (the earliest started run), calls at
    -- once over all of the account's campaigns, counting those gathered in this claim.
    if limits.max_running_campaigns is not null then
      select count(*) into account_running from public.campaigns y
      where y.owner_id = c.owner_id and y.status = 'running'
        and (y.started_at, y.id) < (c.started_at, c.id);
      if account_running >= limits.max_running_campaigns then
        update public.campaigns set account_limited_at = now(), account_limit_reason = format(
          'account limit: at most %s campaigns run at once; this one waits for one to end', limits.max_running_campaigns)
        where id = c.id;
        continue;
      end if;
    end if;
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
      array_agg(p.e164 order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(p.outbound_trunk_id order by u.ord) filter (where p.rest_until is null or p.rest_until <= now()),
      array_agg(coalesce(lu.last_used_at, '-infinity') order by u.ord) filter (where p.rest_until is null or p.rest_until <= now())
    into ready, resting, n_id, n_area, n_region, n_country, n_carrier, n_e164, n_outbound, n_used
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
                       else c.max_concurrent end - live, budget, t_left[t]);
    if limits.max_concurrent_calls is not null then
      select count(*) into account_live from public.campaign_calls x
      where x.owner_id = c.owner_id and x.status in ('dialing', 'in_progress');
      account_live := account_live + (select count(*) from unnest(cand_owner) o where o = c.owner_id);
      if account_live + free > limits.max_concurrent_calls then
        free := limits.max_concurrent_calls - account_live;
        update public.campaigns set account_limited_at = now(), account_limit_reason = format(
          'account limit: at most %s calls at once over all its campaigns', limits.max_concurrent_calls)
        where id = c.id;
      end if;
    end if;
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
      if not internal.in_window(now(), cc.timezone, c.window_start, c.window_end, c.weekdays) then
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

    camps := camps || c;
    camp_agent := camp_agent || (select a.agent_name from public.assistant a where a.id = c.assistant_id);
    for i in 1 .. cardinality(eligible) loop
      cand_camp := cand_camp || cardinality(camps);
      cand_cc := cand_cc || eligible[i];
      cand_number := cand_number || n_id[chosen[i]];
      cand_trunk := cand_trunk || n_carrier[chosen[i]];
      cand_from := cand_from || n_e164[chosen[i]];
      cand_outbound := cand_outbound || n_outbound[chosen[i]];
      cand_owner := cand_owner || c.owner_id;
      cand_pos := cand_pos || i;
    end loop;
    budget := budget - cardinality(eligible);
    t_left[t] := t_left[t] - cardinality(eligible);
  end loop;

  -- Send slots from each carrier trunk (trunks in a fixed order), shared fairly between
  -- tenants: the candidates are ordered so that each tenant's dials on the trunk over the last
  -- 10 s, counting those given now, stay level (a tenant's first candidate, then its second,
  -- ...; among its campaigns, each campaign's first before any second). A tenant's share of a
  -- busy trunk does not grow with its number of campaigns, and concurrent claims, each seeing
  -- what the others dialed, level it over a few seconds.
  for trunk in select distinct t from unnest(cand_trunk) t order by 1 loop
    picked := array(
      with g as (
        select * from unnest(cand_trunk, cand_owner, cand_pos, cand_camp) with ordinality
          u(on_trunk, tenant, place, camp_no, idx)
        where u.on_trunk = trunk),
      recent as (
        select t.tenant, (select count(*) from public.outbound_calls o
                          where o.owner_id = t.tenant and o.carrier_trunk = trunk
                            and o.created_at > now() - interval '10 seconds') as dials
        from (select distinct g.tenant from g) t)
      select g.idx from g join recent r on r.tenant = g.tenant
      order by r.dials + row_number() over (partition by g.tenant order by g.place, g.camp_no),
        min(g.camp_no) over (partition by g.tenant), g.idx);
    slots := internal.take_carrier_slots(trunk, default_cps, cardinality(picked), horizon_sec, max_rate, true);
    for k in 1 .. coalesce(cardinality(slots), 0) loop
      i := picked[k];
      cc := cand_cc[i];
      c := camps[cand_camp[i]];
      update public.campaign_calls x set status = 'dialing', attempts = cc.attempts + 1, dials = cc.dials + 1,
        lease_until = slots[k] + make_interval(secs => lease_sec), lease_owner = tick_id, last_error = null,
        caller_number_id = cand_number[i]
      where x.id = cc.id;
      used_id := used_id || cand_number[i];
      used_at := used_at || slots[k];
      campaign_call_id := cc.id;
      campaign_id := c.id;
      owner_id := c.owner_id;
      assistant_id := c.assistant_id;
      phone_number_id := cand_number[i];
      carrier_trunk := trunk;
      e164 := cc.e164;
      attempt := cc.attempts + 1;
      send_at := slots[k];
      -- Deterministic per dial: a second send of the same dial is refused by the room's uniqueness.
      room_name := internal.dial_room(cc.id, cc.dials + 1);
      participant_identity := 'sip-' || internal.dial_room(cc.id, cc.dials + 1);
      ringing_timeout_sec := c.ringing_timeout_sec;
      max_call_duration_sec := least(c.max_call_duration_sec, limits.max_call_duration_sec);
      allowed_countries := c.allowed_countries;
      variables := cc.variables;
      name := cc.name;
      from_number := cand_from[i];
      outbound_trunk_id := cand_outbound[i];
      agent_name := camp_agent[cand_camp[i]];
      return next;
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
comment on function internal.claim_calls is 'campaign-tick: claims due calls (FOR UPDATE SKIP LOCKED + lease) within the campaign''s concurrency and the callee''s window, picks each callee''s number from the campaign''s pool (resting numbers skipped; all resting pauses it), and plans each a send time on its number''s carrier trunk at the trunk''s rate, tenants taking turns on it (the dial takes the slot itself: internal.open_dial).';

-- Functions: the dial ----------------------------------------------------------------------------
create function internal.call_answered(call_id uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  live boolean;
begin
  update public.campaign_calls cc set status = 'in_progress', current_call_id = o.id,
    lease_until = now() + make_interval(secs => c.max_call_duration_sec + 120)
  from public.outbound_calls o, public.campaigns c
  where o.id = call_id and cc.id = o.campaign_call_id and c.id = cc.campaign_id
    and cc.status in ('dialing', 'in_progress') and o.room_name = internal.dial_room(cc.id, cc.dials);
  live := found;
  update public.campaigns c set agent_timeouts = 0
  from public.outbound_calls o where o.id = call_id and c.id = o.campaign_id and c.agent_timeouts > 0;
  return live;
end $$;
comment on function internal.call_answered is 'A campaign call''s current dial was answered: it is live, and its lease covers the longest call.';

-- No agent joined the attempt's room in time: the callee was not dialed.
create function internal.agent_unavailable(campaign_call uuid, attempt_no integer, wait_sec numeric)
returns void
language plpgsql security definer set search_path = '' as $$
declare
  camp uuid;
  live integer;
  c public.campaigns;
begin
  select campaign_id into camp from public.campaign_calls where id = campaign_call;
  perform internal.give_back(campaign_call, attempt_no,
    format('no agent joined within %s s; requeued without counting', wait_sec));
  select count(*) into live from public.campaign_calls
  where campaign_id = camp and status in ('dialing', 'in_progress');
  update public.campaigns set agent_timeouts = agent_timeouts + 1,
    agent_limit = greatest(1, live), agent_limit_until = now() + interval '60 seconds',
    throttle_reason = format('agent pool saturated: no agent joined within %s s; at most %s calls at once until %s',
                             wait_sec, greatest(1, live), to_char(now() + interval '60 seconds', 'HH24:MI:SS TZ'))
  where id = camp
  returning * into c;
  -- Nobody is talking and agents keep not coming: nothing dialed will ever have an agent.
  if c.agent_timeouts >= 3 and live = 0 then
    perform internal.pause_campaign(camp, format(
      'paused: no agent joined %s calls in a row within %s s; check that an agent is running and registered as the assistant''s agent_name, then resume',
      c.agent_timeouts, wait_sec));
  end if;
end $$;
comment on function internal.agent_unavailable is 'campaign-tick: an attempt whose agent did not join in time is given back uncounted, and the campaign''s effective concurrency is held at what has agents (paused when none ever join).';

-- Past its abandonment cap a campaign slows to half its concurrency for 10 minutes; still past
-- it 10 answered calls later, it pauses.
create function internal.check_abandonment() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  answered integer;
  abandoned integer;
  since_slowed integer;
  rate numeric;
begin
  if new.campaign_id is null or new.answered_at is null or old.status = new.status
     or not internal.call_is_final(new.status) then
    return null;
  end if;
  select * into c from public.campaigns where id = new.campaign_id;
  if c.status <> 'running' then
    return null;
  end if;
  select count(*), count(*) filter (where o.abandoned), count(*) filter (where o.ended_at > c.abandon_slowed_at)
  into answered, abandoned, since_slowed
  from public.outbound_calls o
  where o.campaign_id = c.id and o.answered_at > now() - interval '30 days' and o.ended_at is not null;
  rate := abandoned::numeric / greatest(answered, 1);
  if answered < 10 or rate <= c.abandon_cap then
    return null;
  end if;
  if c.abandon_slowed_at is null or c.abandon_slowed_at < now() - interval '10 minutes' then
    update public.campaigns set abandon_slowed_at = now(),
      agent_limit = greatest(1, c.max_concurrent / 2), agent_limit_until = now() + interval '10 minutes',
      throttle_reason = format('abandoned calls at %s %% of answered (cap %s %%): slowed to %s calls at once',
                               round(rate * 100, 1), round(c.abandon_cap * 100, 1), greatest(1, c.max_concurrent / 2))
    where id = c.id;
  elsif since_slowed >= 10 then
    perform internal.pause_campaign(c.id, format(
      'paused: abandoned calls at %s %% of answered over 30 days, past the cap of %s %% even after slowing down; check the agents, then resume',
      round(rate * 100, 1), round(c.abandon_cap * 100, 1)));
  end if;
  return null;
end $$;
comment on function internal.check_abandonment is 'Trigger: when a campaign''s answered call ends, its 30-day abandonment rate is held to abandon_cap (slow down, then pause).';

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

-- Functions: after the call ----------------------------------------------------------------------
-- How many callbacks a contact may ask for (beyond max_attempts, which they do not count against).
create function internal.max_callbacks() returns integer
language sql immutable set search_path = '' as $$ select 5 $$;

-- When a requested callback can happen: the first moment at or after it (never before now or the
-- campaign's start) that the callee's calling window is open; null when it never opens.
create function internal.callback_time(c public.campaigns, tz text, requested timestamptz)
returns timestamptz
language sql stable set search_path = '' as $$
  select internal.next_window_start(greatest(requested, now(), coalesce(c.starts_at, requested)),
    coalesce(tz, c.default_timezone), c.window_start, c.window_end, c.weekdays)
$$;
comment on function internal.callback_time is 'A callback''s attempt time: the request moved into the callee''s calling window (in the callee''s zone).';

-- What a campaign contact does after its current call: the agent's disposition when the call was
-- answered and one was reported, else the call's SIP outcome, looked up in internal.call_outcome.
create function internal.settle_contact(call public.outbound_calls, cc public.campaign_calls)
returns void
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  rule internal.call_outcome;
  reported boolean := false;
  delay numeric;
  next_at timestamptz;
  retry_at timestamptz;
  final_status public.campaign_call_status;
  last_out text;
  err text := call.error;
begin
  select * into c from public.campaigns where id = cc.campaign_id;
  if call.disposition is not null and call.answered_at is not null then
    select * into rule from internal.call_outcome where outcome = call.disposition and reportable;
    reported := rule.outcome is not null;
  end if;
  if not reported then
    select * into rule from internal.call_outcome where outcome = coalesce(call.outcome, 'failed');
    if rule.outcome is null then
      select * into rule from internal.call_outcome where outcome = 'failed';
    end if;
  end if;
  last_out := case when reported then call.disposition else call.outcome end;
  final_status := case case when reported then rule.call_status else call.status end
    when 'completed' then 'completed' when 'busy' then 'busy' when 'no_answer' then 'no_answer'
    else 'failed' end;

  -- A callback: at the time asked for, moved into the callee's window (not counted against
  -- max_attempts, up to internal.max_callbacks() per contact), never after the campaign ends.
  if rule.retry = 'callback' and call.callback_at is not null and c.status <> 'cancelled' then
    if (select count(*) from public.outbound_calls o
        where o.campaign_call_id = cc.id and o.disposition = 'callback' and o.answered_at is not null)
       > internal.max_callbacks() then
      err := format('not called back: at most %s callbacks per contact', internal.max_callbacks());
    else
      next_at := internal.callback_time(c, cc.timezone, call.callback_at);
      if next_at is null or (c.ends_at is not null and next_at >= c.ends_at) then
        next_at := null;
        err := 'not called back: the callback time falls after the campaign ends';
      end if;
    end if;
  end if;

  -- A retry by rule, in the callee's window; none that would fall after the campaign ends (the
  -- contact ends now, with its call's status and the reason).
  if next_at is null and rule.retry in ('busy', 'no_answer', 'failed', 'voicemail') and final_status <> 'completed'
     and cc.attempts < c.max_attempts and c.status <> 'cancelled' then
    delay := case rule.retry when 'busy' then c.retry_busy_sec when 'no_answer' then c.retry_no_answer_sec
             when 'voicemail' then c.retry_voicemail_sec else c.retry_failed_sec end
             * power(c.retry_backoff, cc.attempts - 1);
    retry_at := coalesce(internal.next_window_start(now() + make_interval(secs => delay), cc.timezone,
      c.window_start, c.window_end, c.weekdays), 'infinity');
    if c.ends_at is not null and retry_at >= c.ends_at then
      retry_at := null;
      err := concat_ws('; ', err, 'not called again: the campaign ends before the next attempt');
    end if;
  end if;

  if next_at is not null then
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = null,
      current_call_id = call.id, completed_at = null, next_attempt_at = next_at
    where id = cc.id;
  elsif rule.retry = 'requeue' and c.status <> 'cancelled' then
    -- Not dialed in effect: back to the queue (past the campaign's end, the completion rule
    -- below ends it as not called).
    perform internal.give_back(cc.id, cc.attempts, coalesce(call.error, call.outcome), 1);
    update public.campaign_calls set last_outcome = call.outcome, last_sip_status = call.sip_status_code,
      current_call_id = call.id
    where id = cc.id;
  elsif retry_at is not null then
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = err,
      current_call_id = call.id, completed_at = null, next_attempt_at = retry_at
    where id = cc.id;
  else
    update public.campaign_calls set status = final_status, lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = err,
      current_call_id = call.id, completed_at = now()
    where id = cc.id;
  end if;

  if rule.pauses_campaign then
    update public.campaigns set status = 'paused',
      status_reason = format('paused: %s (SIP %s on call %s); fix the carrier trunk''s credentials and resume',
                             rule.meaning, coalesce(call.sip_status_code::text, '-'), call.id)
    where id = c.id and status = 'running';
  end if;
  -- A contact queued again after its campaign completed (a report that came later) reopens it.
  if c.status = 'completed'
     and exists (select from public.campaign_calls x where x.id = cc.id and x.status = 'queued') then
    update public.campaigns set status = 'running' where id = c.id and status = 'completed';
    c.status := 'running';
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
comment on function internal.settle_contact is 'Moves a campaign contact on after its current call: retry by rule with backoff inside the window, a callback at the requested time in the window, requeue without counting, pause, or finish; internal.call_outcome decides.';

-- A campaign call's attempt ended: its current dial settles the contact, once.
create function internal.call_finished(call_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
  cc public.campaign_calls;
begin
  select * into call from public.outbound_calls where id = call_id;
  if call.campaign_call_id is null then
    return;
  end if;
  select * into cc from public.campaign_calls where id = call.campaign_call_id for update;
  -- Only the current dial may settle the campaign call, once.
  if cc.status not in ('dialing', 'in_progress') or call.room_name <> internal.dial_room(cc.id, cc.dials) then
    return;
  end if;
  perform internal.settle_contact(call, cc);
end $$;
comment on function internal.call_finished is 'Called when a campaign call''s attempt ends (the dial''s answer, a webhook, reconciliation or lease expiry); internal.settle_contact decides what follows.';

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
    where o.room_name = internal.dial_room(cc.id, cc.dials);
    if call.id is null then
      -- Never dialed: the attempt does not count.
      perform internal.give_back(cc.id, cc.attempts, 'the tick that claimed it stopped before dialing');
      released := released + 1;
    elsif internal.call_is_final(call.status) then
      perform internal.call_finished(call.id);
    else
      -- Dialed: the call may still be live. Reconciliation against LiveKit ends it.
      update public.campaign_calls set current_call_id = call.id,
        lease_until = greatest(now(), call.created_at) + make_interval(secs => c.ringing_timeout_sec + c.max_call_duration_sec + 120)
      where id = cc.id;
    end if;
  end loop;
  return released;
end $$;
comment on function internal.release_expired_leases is 'campaign-tick: returns claimed-but-undialed calls to the queue; dialed ones wait for their outcome (reconciled against LiveKit).';

create function internal.tick_campaigns() returns bigint
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (select from public.campaigns where status = 'running')
     and not exists (select from public.campaign_calls where status in ('dialing', 'in_progress') and lease_until < now())
     and not exists (select from public.outbound_calls where not internal.call_is_final(status)
                     and created_at < now() - interval '30 seconds') then
    return null;
  end if;
  return internal.call_function('campaign-tick', '{}'::jsonb);
end $$;
comment on function internal.tick_campaigns is 'pg_cron: pokes campaign-tick when any campaign is running (or a lease needs rescue).';

-- Triggers -----------------------------------------------------------------------------------
create trigger abandonment after update of status on public.outbound_calls
  for each row execute function internal.check_abandonment();

-- Views ------------------------------------------------------------------------------------------
-- Progress with the 30-day abandonment rate.
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
  coalesce(sum(cc.attempts), 0)::integer as attempts,
  a.answered_30d, a.abandoned_30d,
  round(a.abandoned_30d::numeric / greatest(a.answered_30d, 1), 4) as abandonment_rate,
  case when c.agent_limit_until > now() then c.agent_limit end as concurrency_limit,
  coalesce(case when c.agent_limit_until > now() then c.throttle_reason end,
           case when c.account_limited_at > now() - interval '30 seconds' then c.account_limit_reason end)
    as throttle_reason
from public.campaigns c
left join public.campaign_calls cc on cc.campaign_id = c.id
left join lateral (
  select count(*)::integer as answered_30d, (count(*) filter (where o.abandoned))::integer as abandoned_30d
  from public.outbound_calls o
  where o.campaign_id = c.id and o.answered_at > now() - interval '30 days' and o.ended_at is not null
) a on true
group by c.id, a.answered_30d, a.abandoned_30d;
comment on view public.campaign_progress is 'Per-campaign counts by state; the owner reads their own (security invoker, RLS applies).';

-- Policies -------------------------------------------------------------------------------------
alter table internal.tick_poke enable row level security;

-- Grants -------------------------------------------------------------------------------------
revoke all on table internal.tick_poke from public, anon, authenticated;
grant all on table internal.tick_poke to service_role;
revoke all on public.campaign_progress from anon;
grant select on public.campaign_progress to authenticated, service_role;
revoke all on function internal.give_back, internal.skip_call, internal.claim_calls, internal.call_answered,
  internal.agent_unavailable, internal.check_abandonment, internal.check_breaker, internal.max_callbacks,
  internal.callback_time, internal.settle_contact, internal.call_finished, internal.release_expired_leases,
  internal.tick_campaigns from public;
grant execute on function internal.max_callbacks, internal.callback_time, internal.settle_contact to service_role;
