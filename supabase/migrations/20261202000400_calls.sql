-- Calls: every call placed through an outbound trunk (written before dialing, moved to its outcome
-- by the dial's answer, webhooks and reconciliation; with what the agent reported and where a
-- transfer went), LiveKit's webhook events, the one table of outcomes that decides retries, the
-- calls-per-second budget of each carrier trunk (safe in any sliding second), and the per-user
-- rate limit of create-participant.

-- Types ---------------------------------------------------------------------------------
create type public.call_status as enum
  ('dialing', 'ringing', 'in_progress', 'completed', 'busy', 'no_answer', 'failed');

-- The one definition of a final call: it never moves again (a late event only fills in a time).
-- Every other status is live. TypeScript's copy (outcomes.ts FINAL) is tied to it by a test.
create function internal.call_is_final(s public.call_status) returns boolean
language sql immutable parallel safe set search_path = '' as $$
  select s in ('completed', 'busy', 'no_answer', 'failed')
$$;
comment on function internal.call_is_final is 'A final call status: the call ended and never moves again. Every other status is live.';

-- Tables ------------------------------------------------------------------------------------
create table public.outbound_calls (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  assistant_id uuid references public.assistant (id) on delete set null,
  phone_number_id uuid references public.phone_number (id) on delete set null,
  campaign_id uuid references public.campaigns (id) on delete set null,
  campaign_call_id uuid references public.campaign_calls (id) on delete set null,
  attempt integer,
  from_number public.e164 not null,
  to_number public.e164 not null,
  room_name text not null unique,
  participant_identity text not null,
  participant_id text,
  sip_call_id text,
  dispatch_id text,
  outbound_trunk_id text not null,
  status public.call_status not null default 'dialing',
  outcome text,
  sip_status_code integer,
  sip_status text,
  disconnect_reason text,
  error text,
  answered_at timestamptz,
  ended_at timestamptz,
  duration_sec integer,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  carrier_trunk text,
  dialed_at timestamptz,
  dial_returned_at timestamptz,
  checked_at timestamptz,
  agent_identity text,
  agent_joined_at timestamptz,
  agent_audio_at timestamptz,
  -- No silent answers: the dial waits for the assistant's agent to be in the room.
  abandoned boolean generated always as (
    answered_at is not null and (
      agent_joined_at is null or agent_joined_at > answered_at
      or (ended_at is not null and ended_at - answered_at < interval '2 seconds'
          and (agent_audio_at is null or agent_audio_at > ended_at)))
  ) stored,
  disposition text,
  reported_at timestamptz,
  summary text check (length(summary) <= 10000),
  report_data jsonb check (report_data is null or jsonb_typeof(report_data) = 'object'),
  callback_at timestamptz,
  transferred_to text,
  transferred_at timestamptz
);
comment on table public.outbound_calls is 'Every call placed through an outbound trunk, written before dialing and moved to its outcome by webhooks.';
comment on column public.outbound_calls.dialed_at is 'When the CreateSIPParticipant request was sent (the INVITE follows).';
comment on column public.outbound_calls.dial_returned_at is 'When CreateSIPParticipant answered (it waits for the answer); null while it is still waiting, so webhooks alone never conclude an unanswered call.';
comment on column public.outbound_calls.checked_at is 'When the call was last reconciled against the rooms and participants LiveKit holds.';
comment on column public.outbound_calls.agent_joined_at is 'When the assistant''s agent was seen in the room; a call is dialed only after it.';
comment on column public.outbound_calls.agent_audio_at is 'When the agent first published audio in the call''s room (it can speak).';
comment on column public.outbound_calls.abandoned is 'An abandoned call in the FTC''s sense (16 CFR 310.4(b)(4)): answered with no agent in the room, or hung up within 2 s of the answer with no agent audio.';
comment on column public.outbound_calls.disposition is 'What the agent in the call reported (call-report): completed, voicemail, voicemail_left, opted_out, callback, transferred, not_interested, wrong_person or failed. For an answered campaign call it decides the contact''s next step (internal.call_outcome).';
comment on column public.outbound_calls.callback_at is 'The time the callee asked to be called back (disposition callback), as reported; the attempt itself is moved into the callee''s calling window.';
comment on column public.outbound_calls.transferred_to is 'Where transfer-call handed the callee (tel: or sip: URI), once LiveKit confirmed the transfer.';

create table public.call_events (
  id bigint generated always as identity primary key,
  event_id text not null unique,
  owner_id uuid references auth.users (id) on delete cascade,
  call_id uuid references public.outbound_calls (id) on delete cascade,
  event text not null,
  room_name text,
  participant_identity text,
  payload jsonb not null,
  created_at timestamptz not null,
  received_at timestamptz not null default now()
);
comment on table public.call_events is 'LiveKit webhook events, stored once per event id.';

create table internal.call_outcome (
  outcome text primary key,
  call_status public.call_status not null,
  retry text not null check (retry in ('never', 'busy', 'no_answer', 'failed', 'requeue', 'voicemail', 'callback')),
  pauses_campaign boolean not null default false,
  meaning text not null,
  reportable boolean not null default false
);
comment on table internal.call_outcome is 'Every outcome a call can end with: its final call status, whether and how a campaign retries it (requeue: the attempt does not count), and whether it pauses the campaign. The one place retries are decided.';
comment on column internal.call_outcome.reportable is 'A disposition the agent may report (call-report). For these, call_status is what the campaign contact ends as when it is not retried.';
insert into internal.call_outcome (outcome, call_status, retry, pauses_campaign, meaning, reportable) values
  ('answered', 'completed', 'never', false, 'the callee answered', false),
  ('busy', 'busy', 'busy', false, 'SIP 486 Busy Here or 600 Busy Everywhere', false),
  ('no_answer', 'no_answer', 'no_answer', false, 'rang until the ringing timeout (or SIP 408/487)', false),
  ('unavailable', 'no_answer', 'no_answer', false, 'SIP 480 Temporarily Unavailable', false),
  ('not_found', 'failed', 'never', false, 'an invalid number: SIP 404, 410, 484 or 604', false),
  ('blocked', 'failed', 'never', false, 'the carrier refused the destination: SIP 403, 607, 608, or a fraud block', false),
  ('rejected', 'failed', 'never', false, 'the callee declined: SIP 603 Decline', false),
  ('auth_failed', 'failed', 'never', true, 'the carrier refused the trunk''s credentials: SIP 401 or 407', false),
  ('cps_limited', 'failed', 'requeue', false, 'the carrier trunk''s calls-per-second limit: SIP 503 "CPS limit exceeded"', false),
  ('carrier_error', 'failed', 'failed', false, 'another SIP 5xx from the carrier', false),
  ('livekit_error', 'failed', 'failed', false, 'LiveKit failed before the call was placed', false),
  ('failed', 'failed', 'failed', false, 'another final SIP answer', true),
  ('lost', 'failed', 'never', false, 'no outcome could be established; never re-dialed, since the callee may have answered', false),
  ('completed', 'completed', 'never', false, 'the agent finished the conversation', true),
  ('voicemail', 'no_answer', 'voicemail', false, 'a voicemail greeting answered and no message was left: called again after retry_voicemail_sec', true),
  ('voicemail_left', 'completed', 'never', false, 'the agent left a voicemail message: the contact is done', true),
  ('opted_out', 'completed', 'never', false, 'the callee asked not to be called again: on the owner''s do-not-call list at once', true),
  ('callback', 'completed', 'callback', false, 'the callee asked to be called back at callback_at, moved into their calling window', true),
  ('transferred', 'completed', 'never', false, 'the agent handed the callee to a person', true),
  ('not_interested', 'completed', 'never', false, 'the callee is not interested', true),
  ('wrong_person', 'completed', 'never', false, 'the agent reached someone other than the contact', true);
-- (An attempt whose agent did not join is never dialed: it is given back, not ended; see internal.agent_unavailable.)

create table internal.carrier_pacing (
  carrier_trunk text primary key,
  cps numeric(8, 2) check (cps is null or cps > 0),
  next_slot timestamptz not null default 'epoch',
  backoff_until timestamptz,
  backoff_level integer not null default 0 check (backoff_level between 0 and 4)
);
comment on table internal.carrier_pacing is 'Calls-per-second budget of each carrier trunk (cps null: the deployment''s CARRIER_CPS), shared by every number, campaign and direct call on it. next_slot is the earliest time the next INVITE may go (a dial takes it); a carrier CPS rejection halves the rate for a while.';

-- Apart from the trunk's pacing row, so a claim planning (for as long as its transaction lasts)
-- never holds up a dial taking its slot.
create table internal.carrier_plan (
  carrier_trunk text primary key,
  planned_slot timestamptz not null default 'epoch'
);
comment on table internal.carrier_plan is 'How far claims have planned dials on each carrier trunk at its rate (never before its next_slot), so they reserve no more contacts than the trunk can dial.';

create table internal.rate_limit (
  owner_id uuid not null,
  bucket text not null,
  window_start timestamptz not null,
  count integer not null default 0,
  primary key (owner_id, bucket, window_start)
);
comment on table internal.rate_limit is 'Fixed one-minute windows counting a user''s calls of a rate-limited function.';

-- Indexes -------------------------------------------------------------------------------------
create index outbound_calls_owner on public.outbound_calls (owner_id, created_at desc);
create index outbound_calls_campaign_call on public.outbound_calls (campaign_call_id)
  where campaign_call_id is not null;
create index outbound_calls_open on public.outbound_calls (updated_at)
  where not internal.call_is_final(status);
create index call_events_call on public.call_events (call_id);
create index outbound_calls_campaign_answered on public.outbound_calls (campaign_id, answered_at)
  where answered_at is not null;
create index outbound_calls_number_ended on public.outbound_calls (phone_number_id, ended_at desc)
  where ended_at is not null and phone_number_id is not null;

-- Functions ----------------------------------------------------------------------------------
-- Slots are spaced (1 + 0.04) / cps apart: a dial sent within 40 ms of its slot (later ones
-- take a new slot) can never put more than cps INVITEs in any sliding one-second window. A dial
-- takes its slot (carrier_pacing.next_slot); a claim only plans (planned: carrier_plan, never
-- before next_slot), so the contacts it reserves are the ones the trunk can dial soon, and no
-- slot is held by a contact whose agent has not joined yet.
create function internal.take_carrier_slots(
  carrier text, default_cps numeric, n integer, horizon_sec numeric, max_rate numeric default null,
  planned boolean default false
) returns timestamptz[]
language plpgsql security definer set search_path = '' as $$
declare
  pace internal.carrier_pacing;
  plan internal.carrier_plan;
  level integer;
  rate numeric;
  gap interval;
  slot timestamptz;
  slots timestamptz[] := '{}';
begin
  if planned then
    insert into internal.carrier_plan as p (carrier_trunk) values (carrier) on conflict do nothing;
    select * into plan from internal.carrier_plan p where p.carrier_trunk = carrier for update;
    -- Read, not locked: a plan only reserves contacts; the dial takes the slot itself.
    select * into pace from internal.carrier_pacing p where p.carrier_trunk = carrier;
  else
    insert into internal.carrier_pacing as p (carrier_trunk) values (carrier) on conflict do nothing;
    select * into pace from internal.carrier_pacing p where p.carrier_trunk = carrier for update;
  end if;
  level := case when pace.backoff_until > now() then pace.backoff_level else 0 end;
  rate := coalesce(pace.cps, default_cps) / power(2, level);
  -- A caller that dials slower than the budget asks for slots at its own pace (max_rate), so the
  -- slots it takes are met rather than missed and taken again.
  gap := make_interval(secs => greatest(1.04 / rate, coalesce(1 / nullif(max_rate, 0), 0)));
  slot := greatest(clock_timestamp(), coalesce(pace.next_slot, 'epoch'),
                   case when planned then plan.planned_slot else 'epoch' end);
  while cardinality(slots) < n and slot <= clock_timestamp() + make_interval(secs => horizon_sec) loop
    slots := slots || slot;
    slot := slot + gap;
  end loop;
  if cardinality(slots) > 0 then
    if planned then
      update internal.carrier_plan p set planned_slot = slot where p.carrier_trunk = carrier;
    else
      update internal.carrier_pacing p set next_slot = slot, backoff_level = level,
        backoff_until = case when level = 0 then null else pace.backoff_until end
      where p.carrier_trunk = carrier;
    end if;
  end if;
  return slots;
end $$;
comment on function internal.take_carrier_slots is 'The next send slots (at most n, within horizon_sec) of a carrier trunk''s calls-per-second budget, no closer than 1/max_rate when given. A dial takes one (internal.open_dial, create-participant, a dial that missed its slot); a claim plans its contacts'' (planned).';

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

create function internal.take_rate_limit(owner uuid, bucket_name text, per_minute integer)
returns integer
language plpgsql security definer set search_path = '' as $$
declare
  this_window timestamptz := date_trunc('minute', now());
  used integer;
begin
  insert into internal.rate_limit (owner_id, bucket, window_start, count)
  values (owner, bucket_name, this_window, 1)
  on conflict (owner_id, bucket, window_start) do update set count = internal.rate_limit.count + 1
  returning count into used;
  if used <= per_minute then
    return 0;
  end if;
  return greatest(1, ceil(extract(epoch from (this_window + interval '1 minute' - now())))::integer);
end $$;
comment on function internal.take_rate_limit is 'Counts one use; returns 0 when allowed, else the seconds until the window resets. Called by create-participant.';

-- Calls whose end LiveKit may not have told us: waiting too long on the dial (its requester
-- stopped), or answered and not checked for a while.
create function internal.calls_to_reconcile(check_every_sec numeric, dial_grace_sec numeric, max_rows integer)
returns setof public.outbound_calls
language sql security definer set search_path = '' as $$
  select o.* from public.outbound_calls o
  where not internal.call_is_final(o.status)
    and coalesce(o.checked_at, o.dial_returned_at, o.created_at) < now() - make_interval(secs => check_every_sec)
    and (o.dial_returned_at is not null or o.created_at < now() - make_interval(secs => dial_grace_sec))
  order by coalesce(o.checked_at, o.created_at)
  limit max_rows
$$;
comment on function internal.calls_to_reconcile is 'campaign-tick: live calls to check against LiveKit''s rooms and participants.';

-- Triggers -----------------------------------------------------------------------------------
create trigger touch before update on public.outbound_calls for each row execute function internal.touch();

-- Policies -----------------------------------------------------------------------------------------
alter table public.outbound_calls enable row level security;
alter table public.call_events enable row level security;
alter table internal.call_outcome enable row level security;
alter table internal.carrier_pacing enable row level security;
alter table internal.carrier_plan enable row level security;
alter table internal.rate_limit enable row level security;

create policy owner_read on public.outbound_calls for select to authenticated
  using (owner_id = (select internal.account_uid()));
create policy owner_read on public.call_events for select to authenticated
  using (owner_id = (select internal.account_uid()));

-- Grants -------------------------------------------------------------------------------------------
revoke all on public.outbound_calls, public.call_events from anon, authenticated;
grant select on public.outbound_calls to authenticated;
grant select on public.call_events to authenticated;
grant all on public.outbound_calls, public.call_events to service_role;
revoke all on table internal.call_outcome, internal.carrier_pacing, internal.carrier_plan, internal.rate_limit from public, anon, authenticated;
grant all on table internal.call_outcome, internal.carrier_pacing, internal.carrier_plan, internal.rate_limit to service_role;
revoke all on function internal.take_carrier_slots, internal.carrier_next_slot, internal.carrier_rejected,
  internal.take_rate_limit, internal.calls_to_reconcile from public;
