-- Dialing as LiveKit and the carrier really behave: one calls-per-second budget per carrier
-- trunk (safe in any sliding second), one table of call outcomes that decides retries, the
-- dial's answer awaited and recorded, and the columns reconciliation needs.

-- Tables -------------------------------------------------------------------------------------
alter table public.phone_number add column carrier_trunk text;
comment on column public.phone_number.carrier_trunk is 'The carrier trunk (Twilio Elastic SIP trunk termination domain, or the static SIP provider address) this number''s outbound trunk dials through; calls-per-second budgets belong to it.';

-- The budget is the carrier trunk's, not the number's (internal.carrier_pacing).
alter table public.phone_number drop column calls_per_second;
drop function internal.claim_calls(uuid, integer, uuid, numeric, integer);
drop function internal.next_slots(internal.trunk_pacing, numeric, integer, numeric);
drop table internal.trunk_pacing;

alter table public.campaign_calls add column dials integer not null default 0;
comment on column public.campaign_calls.dials is 'How many times this callee was claimed for a dial; names each dial''s room (cc-<id>-<dials>), so a requeued attempt that did not count still gets a room of its own, and a dial is never sent twice.';

alter table public.outbound_calls
  add column carrier_trunk text,
  add column dialed_at timestamptz,
  add column dial_returned_at timestamptz,
  add column checked_at timestamptz;
comment on column public.outbound_calls.dialed_at is 'When the CreateSIPParticipant request was sent (the INVITE follows).';
comment on column public.outbound_calls.dial_returned_at is 'When CreateSIPParticipant answered (it waits for the answer); null while it is still waiting, so webhooks alone never conclude an unanswered call.';
comment on column public.outbound_calls.checked_at is 'When the call was last reconciled against the rooms and participants LiveKit holds.';

-- No silent answers: the dial waits for the assistant's agent to be in the room.
alter table public.outbound_calls
  add column agent_identity text,
  add column agent_joined_at timestamptz,
  add column agent_audio_at timestamptz,
  add column abandoned boolean generated always as (
    answered_at is not null and (
      agent_joined_at is null or agent_joined_at > answered_at
      or (ended_at is not null and ended_at - answered_at < interval '2 seconds'
          and (agent_audio_at is null or agent_audio_at > ended_at)))
  ) stored;
comment on column public.outbound_calls.agent_joined_at is 'When the assistant''s agent was seen in the room; a call is dialed only after it.';
comment on column public.outbound_calls.agent_audio_at is 'When the agent first published audio in the call''s room (it can speak).';
comment on column public.outbound_calls.abandoned is 'An abandoned call in the FTC''s sense (16 CFR 310.4(b)(4)): answered with no agent in the room, or hung up within 2 s of the answer with no agent audio.';

alter table public.campaigns
  add column agent_limit integer check (agent_limit is null or agent_limit >= 1),
  add column agent_limit_until timestamptz,
  add column agent_timeouts integer not null default 0,
  add column throttle_reason text,
  add column abandon_cap numeric(4, 3) not null default 0.03 check (abandon_cap > 0 and abandon_cap <= 1),
  add column abandon_slowed_at timestamptz;
comment on column public.campaigns.agent_limit is 'Effective concurrency while agent_limit_until: lowered when no agent joined in time (the agent pool is saturated) or abandoned calls pass abandon_cap; throttle_reason says why.';
comment on column public.campaigns.abandon_cap is 'The most abandoned calls per answered call over 30 days (FTC: 3 %); past it the campaign slows down, then pauses.';
grant insert (abandon_cap), update (abandon_cap) on public.campaigns to authenticated;

create index outbound_calls_campaign_answered on public.outbound_calls (campaign_id, answered_at)
  where answered_at is not null;

create table internal.call_outcome (
  outcome text primary key,
  call_status public.call_status not null,
  retry text not null check (retry in ('never', 'busy', 'no_answer', 'failed', 'requeue')),
  pauses_campaign boolean not null default false,
  meaning text not null
);
comment on table internal.call_outcome is 'Every outcome a call can end with: its final call status, whether and how a campaign retries it (requeue: the attempt does not count), and whether it pauses the campaign. The one place retries are decided.';
insert into internal.call_outcome (outcome, call_status, retry, pauses_campaign, meaning) values
  ('answered', 'completed', 'never', false, 'the callee answered'),
  ('busy', 'busy', 'busy', false, 'SIP 486 Busy Here or 600 Busy Everywhere'),
  ('no_answer', 'no_answer', 'no_answer', false, 'rang until the ringing timeout (or SIP 408/487)'),
  ('unavailable', 'no_answer', 'no_answer', false, 'SIP 480 Temporarily Unavailable'),
  ('not_found', 'failed', 'never', false, 'an invalid number: SIP 404, 410, 484 or 604'),
  ('blocked', 'failed', 'never', false, 'the carrier refused the destination: SIP 403, 607, 608, or a fraud block'),
  ('rejected', 'failed', 'never', false, 'the callee declined: SIP 603 Decline'),
  ('auth_failed', 'failed', 'never', true, 'the carrier refused the trunk''s credentials: SIP 401 or 407'),
  ('cps_limited', 'failed', 'requeue', false, 'the carrier trunk''s calls-per-second limit: SIP 503 "CPS limit exceeded"'),
  ('carrier_error', 'failed', 'failed', false, 'another SIP 5xx from the carrier'),
  ('livekit_error', 'failed', 'failed', false, 'LiveKit failed before the call was placed'),
  ('failed', 'failed', 'failed', false, 'another final SIP answer'),
  ('lost', 'failed', 'never', false, 'no outcome could be established; never re-dialed, since the callee may have answered');
-- (An attempt whose agent did not join is never dialed: it is given back, not ended; see internal.agent_unavailable.)
alter table internal.call_outcome enable row level security;

create table internal.carrier_pacing (
  carrier_trunk text primary key,
  cps numeric(8, 2) check (cps is null or cps > 0),
  next_slot timestamptz not null default 'epoch',
  backoff_until timestamptz,
  backoff_level integer not null default 0 check (backoff_level between 0 and 4)
);
comment on table internal.carrier_pacing is 'Calls-per-second budget of each carrier trunk (cps null: the deployment''s CARRIER_CPS), shared by every number, campaign and direct call on it. next_slot is the earliest time the next INVITE may go; a carrier CPS rejection halves the rate for a while.';
alter table internal.carrier_pacing enable row level security;

-- Functions ----------------------------------------------------------------------------------

-- Slots are spaced (1 + 0.04) / cps apart: a dial sent within 40 ms of its slot (later ones
-- take a new slot) can never put more than cps INVITEs in any sliding one-second window.
create function internal.take_carrier_slots(
  carrier text, default_cps numeric, n integer, horizon_sec numeric, max_rate numeric default null
) returns timestamptz[]
language plpgsql security definer set search_path = '' as $$
declare
  pace internal.carrier_pacing;
  rate numeric;
  gap interval;
  slot timestamptz;
  slots timestamptz[] := '{}';
begin
  insert into internal.carrier_pacing as p (carrier_trunk) values (carrier) on conflict do nothing;
  select * into pace from internal.carrier_pacing p where p.carrier_trunk = carrier for update;
  if pace.backoff_until is not null and pace.backoff_until <= now() then
    pace.backoff_level := 0;
    pace.backoff_until := null;
  end if;
  rate := coalesce(pace.cps, default_cps) / power(2, pace.backoff_level);
  -- A caller that dials slower than the budget asks for slots at its own pace (max_rate), so the
  -- slots it takes are met rather than missed and taken again.
  gap := make_interval(secs => greatest(1.04 / rate, coalesce(1 / nullif(max_rate, 0), 0)));
  slot := greatest(clock_timestamp(), pace.next_slot);
  while cardinality(slots) < n and slot <= clock_timestamp() + make_interval(secs => horizon_sec) loop
    slots := slots || slot;
    slot := slot + gap;
  end loop;
  if cardinality(slots) > 0 then
    update internal.carrier_pacing p set next_slot = slot, backoff_level = pace.backoff_level,
      backoff_until = pace.backoff_until
    where p.carrier_trunk = carrier;
  end if;
  return slots;
end $$;
comment on function internal.take_carrier_slots is 'The next send slots (at most n, within horizon_sec) of a carrier trunk''s calls-per-second budget, no closer than 1/max_rate when given. Called by the claim, create-participant and a dial that missed its slot.';

create function internal.carrier_next_slot(carrier text) returns timestamptz
language sql stable security definer set search_path = '' as $$
  select greatest(now(), coalesce((select next_slot from internal.carrier_pacing where carrier_trunk = carrier), now()))
$$;
comment on function internal.carrier_next_slot is 'When the carrier trunk''s next slot opens (for Retry-After).';

create function internal.carrier_rejected(carrier text) returns void
language sql security definer set search_path = '' as $$
  insert into internal.carrier_pacing as p (carrier_trunk, next_slot, backoff_until, backoff_level)
  values (carrier, now() + interval '1 second', now() + interval '30 seconds', 1)
  on conflict (carrier_trunk) do update set
    next_slot = greatest(p.next_slot, now() + interval '1 second'),
    backoff_until = now() + interval '30 seconds',
    backoff_level = least(4, case when p.backoff_until > now() then p.backoff_level + 1 else 1 end)
$$;
comment on function internal.carrier_rejected is 'A carrier CPS rejection: pause the trunk''s sends for a second and halve its rate for 30 s (again on every further rejection).';

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

create function internal.pause_campaign(campaign uuid, reason text) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  update public.campaigns set status = 'paused', status_reason = reason where id = campaign and status = 'running';
  return found;
end $$;
comment on function internal.pause_campaign is 'Pauses a running campaign with a reason its owner sees.';

create function internal.call_answered(call_id uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  live boolean;
begin
  update public.campaign_calls cc set status = 'in_progress', current_call_id = o.id,
    lease_until = now() + make_interval(secs => c.max_call_duration_sec + 120)
  from public.outbound_calls o, public.campaigns c
  where o.id = call_id and cc.id = o.campaign_call_id and c.id = cc.campaign_id
    and cc.status in ('dialing', 'in_progress') and o.room_name = format('cc-%s-%s', cc.id, cc.dials);
  live := found;
  update public.campaigns c set agent_timeouts = 0
  from public.outbound_calls o where o.id = call_id and c.id = o.campaign_id and c.agent_timeouts > 0;
  return live;
end $$;

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
     or new.status not in ('completed', 'busy', 'no_answer', 'failed') then
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
create trigger abandonment after update of status on public.outbound_calls
  for each row execute function internal.check_abandonment();
comment on function internal.call_answered is 'A campaign call''s current dial was answered: it is live, and its lease covers the longest call.';

-- A campaign call's attempt ended: internal.call_finished(call_id), defined with the agent loop
-- (supabase/migrations/20261201000300_agent_loop.sql), settles it by the outcome table (retry with
-- backoff inside the window, requeue without counting, pause the campaign, or finish).
drop function internal.call_finished(uuid, boolean);

-- Give back claims whose tick died before dialing; a dialed attempt is never dialed again.
create or replace function internal.release_expired_leases() returns integer
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
    where o.room_name = format('cc-%s-%s', cc.id, cc.dials);
    if call.id is null then
      -- Never dialed: the attempt does not count.
      perform internal.give_back(cc.id, cc.attempts, 'the tick that claimed it stopped before dialing');
      released := released + 1;
    elsif call.status in ('completed', 'busy', 'no_answer', 'failed') then
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

-- Calls whose end LiveKit may not have told us: waiting too long on the dial (its requester
-- stopped), or answered and not checked for a while.
create function internal.calls_to_reconcile(check_every_sec numeric, dial_grace_sec numeric, max_rows integer)
returns setof public.outbound_calls
language sql security definer set search_path = '' as $$
  select o.* from public.outbound_calls o
  where o.status in ('dialing', 'ringing', 'in_progress')
    and coalesce(o.checked_at, o.dial_returned_at, o.created_at) < now() - make_interval(secs => check_every_sec)
    and (o.dial_returned_at is not null or o.created_at < now() - make_interval(secs => dial_grace_sec))
  order by coalesce(o.checked_at, o.created_at)
  limit max_rows
$$;
comment on function internal.calls_to_reconcile is 'campaign-tick: live calls to check against LiveKit''s rooms and participants.';

create or replace function internal.tick_campaigns() returns bigint
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (select from public.campaigns where status = 'running')
     and not exists (select from public.campaign_calls where status in ('dialing', 'in_progress') and lease_until < now())
     and not exists (select from public.outbound_calls where status in ('dialing', 'ringing', 'in_progress')
                     and created_at < now() - interval '30 seconds') then
    return null;
  end if;
  return internal.call_function('campaign-tick', '{}'::jsonb);
end $$;

-- Numbers provisioned before carrier_trunk existed learn theirs from the next provisioning.
insert into internal.provisioning_job (phone_number_id, e164, owner_id)
select id, e164, owner_id from public.phone_number where outbound_trunk_id is not null
on conflict do nothing;

-- Progress with the 30-day abandonment rate (columns appended to the view's).
create or replace view public.campaign_progress with (security_invoker = true) as
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
  case when c.agent_limit_until > now() then c.throttle_reason end as throttle_reason
from public.campaigns c
left join public.campaign_calls cc on cc.campaign_id = c.id
left join lateral (
  select count(*)::integer as answered_30d, (count(*) filter (where o.abandoned))::integer as abandoned_30d
  from public.outbound_calls o
  where o.campaign_id = c.id and o.answered_at > now() - interval '30 days' and o.ended_at is not null
) a on true
group by c.id, a.answered_30d, a.abandoned_30d;

-- Grants -------------------------------------------------------------------------------------
revoke all on table internal.call_outcome, internal.carrier_pacing from public, anon, authenticated;
grant all on table internal.call_outcome, internal.carrier_pacing to service_role;
revoke all on function internal.take_carrier_slots, internal.carrier_next_slot, internal.carrier_rejected,
  internal.give_back, internal.skip_call, internal.call_answered, internal.agent_unavailable,
  internal.check_abandonment, internal.pause_campaign, internal.release_expired_leases,
  internal.calls_to_reconcile from public;
