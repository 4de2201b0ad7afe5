-- Every transition of an outbound call, in the database: the functions talk to LiveKit and
-- hand over what it said; these decide what that means for the call and write it. A call only
-- moves forward, a final call never moves (internal.call_is_final), the end of an answered call
-- is never before its answer, and a campaign call that ends settles its contact once
-- (internal.call_finished). No function's TypeScript writes public.outbound_calls.
--
--   open_call             the record, written before anything is dialed (or nothing: a refusal)
--   open_dial             a campaign dial: the record and the carrier slot, once its agent is in
--                         the room, if it is still the contact's current dial
--   withdraw_call         a record that was never dialed goes (no agent, no carrier slot)
--   record_answer         the dial's answer: answered
--   record_dial_failure   the dial's answer: failed, or lost (what the webhooks said decides)
--   record_livekit_event  a LiveKit webhook, stored once, applied to its call
--   reconcile_calls       what LiveKit's rooms and participants say about live calls

-- Rules ----------------------------------------------------------------------------------------
-- Webhook times have whole seconds: an end is never put before the answer.
create function internal.end_after_answer(ended timestamptz, answered timestamptz) returns timestamptz
language sql immutable parallel safe set search_path = '' as $$
  select case when answered is not null and ended < answered then answered else ended end
$$;

create function internal.call_duration(answered timestamptz, ended timestamptz) returns integer
language sql immutable parallel safe set search_path = '' as $$
  select case when answered is not null and ended is not null
              then greatest(0, round(extract(epoch from ended - answered)))::integer end
$$;
comment on function internal.call_duration is 'Whole seconds between answer and end; null unless both are known.';

-- livekit/sip's disconnect reasons are coarse: USER_REJECTED covers busy, declines, auth failures
-- and carrier limits; USER_UNAVAILABLE covers no answer and invalid numbers. Used only when the
-- dial's own answer (with its exact SIP status) is not known.
create function internal.outcome_from_disconnect(reason text, out status public.call_status, out outcome text)
language sql immutable parallel safe set search_path = '' as $$
  select case reason when 'USER_REJECTED' then 'busy' when 'USER_UNAVAILABLE' then 'no_answer'
                     else 'failed' end::public.call_status,
         case reason when 'USER_REJECTED' then 'busy' when 'USER_UNAVAILABLE' then 'no_answer'
                     when 'SIP_TRUNK_FAILURE' then 'carrier_error' else 'failed' end
$$;
comment on function internal.outcome_from_disconnect is 'What an unanswered call''s LiveKit disconnect reason says, when the dial''s own SIP status is not known.';

-- How an event or a reconciliation moves a call: forward only, and the contact is settled when
-- the call ends.
create function internal.move_call(call public.outbound_calls, next_status public.call_status,
  next_answered timestamptz, next_ended timestamptz, next_outcome text, reason text default null)
returns public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  moved public.outbound_calls;
begin
  update public.outbound_calls set status = next_status, answered_at = next_answered, ended_at = next_ended,
    outcome = coalesce(next_outcome, outcome), disconnect_reason = coalesce(reason, disconnect_reason),
    duration_sec = internal.call_duration(next_answered, next_ended)
  where id = call.id
  returning * into moved;
  if moved.campaign_call_id is not null and internal.call_is_final(moved.status)
     and not internal.call_is_final(call.status) then
    perform internal.call_finished(moved.id);
  end if;
  return moved;
end $$;

-- What an event does to a call. kind: 'answered' (LiveKit shows the callee on the line), 'left'
-- (the SIP participant left; left_answered: its call had been answered), 'room_finished' (the
-- room closed departure_sec after its last participant left). An unanswered call whose dial is
-- still waiting only notes when it ended: the dial's SIP status will say why.
create function internal.apply_call_event(call public.outbound_calls, kind text, event_at timestamptz,
  reason text default null, left_answered boolean default false, departure_sec numeric default 20)
returns public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  final boolean := internal.call_is_final(call.status);
  answered boolean := call.answered_at is not null or call.status = 'in_progress';
  dial_pending boolean := call.dial_returned_at is null;
  x record;
begin
  if kind = 'answered' then
    if call.answered_at is not null then
      return call;
    end if;
    -- A late answer still fills in the time, but never reopens a final call.
    return internal.move_call(call, case when final then call.status else 'in_progress' end, event_at,
      call.ended_at, case when final then null else 'answered' end);
  end if;
  if final then
    return call;
  end if;
  if kind = 'left' then
    if dial_pending and call.answered_at is null then
      -- The dial's own answer is on its way and decides (the answer, or the exact SIP status):
      -- only the end is noted, and, when LiveKit saw the call answered, that it was (its outcome;
      -- when is the dial's answer to say: a webhook's whole-second time could put it before the
      -- agent's join). The contact is settled, and the number's health counts the call, once the
      -- answer is in.
      if call.ended_at is not null then
        return call;
      end if;
      return internal.move_call(call, call.status, null, event_at,
        case when left_answered then 'answered' end, reason);
    elsif left_answered or answered then
      return internal.move_call(call, 'completed', call.answered_at,
        internal.end_after_answer(event_at, call.answered_at), 'answered', reason);
    end if;
    x := internal.outcome_from_disconnect(reason);
    return internal.move_call(call, x.status, null, event_at, x.outcome, reason);
  elsif kind = 'room_finished' then
    if answered then
      -- Without the participant's leave, the best estimate of the hang-up: the room closes its
      -- departure timeout after the last participant left.
      return internal.move_call(call, 'completed', call.answered_at, internal.end_after_answer(
        coalesce(call.ended_at, event_at - make_interval(secs => departure_sec)), call.answered_at), 'answered');
    elsif dial_pending then
      if call.ended_at is not null then
        return call;
      end if;
      return internal.move_call(call, call.status, call.answered_at, event_at, null);
    end if;
    return internal.move_call(call, 'failed', null, coalesce(call.ended_at, event_at), 'failed');
  end if;
  raise exception 'unknown call event %', kind using errcode = '22023';
end $$;
comment on function internal.apply_call_event is 'Moves a call by an event (answered, left, room_finished): forward only, a final call never reopens, an end never before the answer.';

-- The dial --------------------------------------------------------------------------------------
-- The numbers a requester's call may go out from: ready, with an outbound trunk, of the named
-- assistant, outbound trunk or number (each optional); the usable ones first, a resting one last.
create function internal.dialable_numbers(owner uuid, assistant uuid, outbound_trunk text, phone_number uuid)
returns table (phone_number_id uuid, assistant_id uuid, e164 text, outbound_trunk_id text, carrier_trunk text)
language sql stable security definer set search_path = '' as $$
  select p.id, a.id, p.e164, p.outbound_trunk_id, coalesce(p.carrier_trunk, 'default')
  from public.phone_number p join public.assistant a on a.id = p.assistant_id
  where p.owner_id = dialable_numbers.owner and p.trunk_status = 'ready' and p.outbound_trunk_id is not null
    and (dialable_numbers.assistant is null or a.id = dialable_numbers.assistant)
    and (dialable_numbers.outbound_trunk is null or p.outbound_trunk_id = dialable_numbers.outbound_trunk)
    and (dialable_numbers.phone_number is null or p.id = dialable_numbers.phone_number)
  order by (p.rest_until > now()) is true, p.e164
$$;
comment on function internal.dialable_numbers is 'The numbers a call may go out from, best first: internal.open_call takes the first one the do-not-call list and the campaign allow; internal.call_refusal says why none did.';

-- The record, before anything is dialed, in one statement: the first dialable number, the callee
-- not on the do-not-call list, the campaign still running. Nothing returned: refused
-- (internal.call_refusal says why). Given slot_wait_sec, the record also takes its carrier
-- trunk's next send slot (within that wait) as dialed_at, only once every check has passed.
create function internal.open_call(call_id uuid, owner uuid, assistant uuid, outbound_trunk text,
  phone_number uuid, to_number text, campaign uuid, campaign_call uuid, attempt integer,
  room text, identity text, slot_cps numeric default null, slot_wait_sec numeric default null)
returns setof public.outbound_calls
language sql security definer set search_path = '' as $$
  insert into public.outbound_calls (id, owner_id, assistant_id, phone_number_id, campaign_id, campaign_call_id,
    attempt, from_number, to_number, room_name, participant_identity, outbound_trunk_id, carrier_trunk, dialed_at)
  select open_call.call_id, open_call.owner, n.assistant_id, n.phone_number_id, open_call.campaign, open_call.campaign_call,
    open_call.attempt, n.e164, open_call.to_number,
    coalesce(open_call.room, format('out-%s-%s', left(n.assistant_id::text, 8), open_call.call_id)),
    coalesce(open_call.identity, format('sip-%s', open_call.call_id)), n.outbound_trunk_id, n.carrier_trunk,
    case when open_call.slot_wait_sec is not null then
      (internal.take_carrier_slots(n.carrier_trunk, open_call.slot_cps, 1, open_call.slot_wait_sec))[1] end
  from internal.dialable_numbers(open_call.owner, open_call.assistant, open_call.outbound_trunk, open_call.phone_number) n
  where not exists (select from public.do_not_call d where d.owner_id = open_call.owner and d.e164 = open_call.to_number)
    and (open_call.campaign is null or exists (select from public.campaigns c where c.id = open_call.campaign and c.status = 'running'))
  limit 1
  on conflict (room_name) do nothing
  returning *
$$;
comment on function internal.open_call is 'create-participant and campaign-tick: writes a call''s record before dialing, or nothing when the number, do-not-call list or campaign refuses it.';

-- Why internal.open_call wrote nothing, in its order of checks: the campaign no longer runs, no
-- dialable number, the callee on the do-not-call list. Null: nothing refuses it (now).
create function internal.call_refusal(owner uuid, assistant uuid, outbound_trunk text, phone_number uuid,
  to_number text, campaign uuid)
returns table (code text, campaign_status text)
language sql stable security definer set search_path = '' as $$
  select r.code, r.campaign_status from (
    select 'campaign_not_running' as code, coalesce(c.status::text, 'deleted') as campaign_status, 1 as ord
    from (select call_refusal.campaign as id) x left join public.campaigns c on c.id = x.id
    where call_refusal.campaign is not null and c.status is distinct from 'running'
    union all
    select 'no_outbound_trunk', null, 2
    where not exists (select from internal.dialable_numbers(call_refusal.owner, call_refusal.assistant,
                                                            call_refusal.outbound_trunk, call_refusal.phone_number))
    union all
    select 'do_not_call', null, 3
    where exists (select from public.do_not_call d where d.owner_id = call_refusal.owner and d.e164 = call_refusal.to_number)
  ) r order by r.ord limit 1
$$;
comment on function internal.call_refusal is 'create-participant and campaign-tick: why internal.open_call refused a call (campaign_not_running, no_outbound_trunk, do_not_call), or nothing.';

-- A campaign contact's dial, once its agent is in the room, in one statement: still the contact's
-- current dial (a lease that ran out gave it back, or another tick took it: nothing), the record
-- (internal.open_call's checks), and the carrier trunk's next send slot, as dialed_at. No slot
-- within max_wait_sec: the record with dialed_at null (the caller withdraws it).
create function internal.open_dial(call_id uuid, owner uuid, assistant uuid, phone_number uuid,
  to_number text, campaign uuid, campaign_call uuid, attempt integer, room text, identity text,
  default_cps numeric, max_wait_sec numeric)
returns setof public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  cc public.campaign_calls;
  call public.outbound_calls;
begin
  -- Locked, so a lease running out now (internal.release_expired_leases skips locked contacts)
  -- cannot give the contact back while this dial is written: it sees the record afterwards.
  select * into cc from public.campaign_calls x where x.id = campaign_call for update;
  if cc.status is distinct from 'dialing' or room <> internal.dial_room(cc.id, cc.dials) then
    return;
  end if;
  select * into call from internal.open_call(call_id, owner, assistant, null, phone_number, to_number,
    campaign, campaign_call, attempt, room, identity, default_cps, max_wait_sec);
  if call.id is null then
    return;
  end if;
  return next call;
end $$;
comment on function internal.open_dial is 'campaign-tick: a contact''s dial once its agent is in the room: its record and its carrier slot (dialed_at), or nothing when it is no longer the contact''s current dial or is refused.';

create function internal.withdraw_call(call_id uuid) returns boolean
language sql security definer set search_path = '' as $$
  with gone as (
    delete from public.outbound_calls where id = call_id and dial_returned_at is null
    returning id)
  select exists (select from gone)
$$;
comment on function internal.withdraw_call is 'A call that was never dialed (no agent joined, no carrier slot, no budget) leaves no record, so its room can be used again. Its caller knows it sent nothing; a call whose dial has answered is never withdrawn.';

-- The dial was answered. A leave noted while the dial waited ends the call at once; a final call
-- keeps its outcome. The campaign call goes live (or settles, if the callee already hung up).
create function internal.record_answer(call_id uuid, dispatch text, dialed timestamptz,
  agent text, agent_joined timestamptz, agent_audio timestamptz, participant text, sip_call text)
returns setof public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  cur public.outbound_calls;
  done public.outbound_calls;
  answered timestamptz;
begin
  select * into cur from public.outbound_calls where id = call_id for update;
  if not found then
    return;
  end if;
  answered := coalesce(cur.answered_at, now());
  update public.outbound_calls o set
    status = case when internal.call_is_final(o.status) then o.status
                  when o.ended_at is not null then 'completed'::public.call_status
                  else 'in_progress'::public.call_status end,
    outcome = case when internal.call_is_final(o.status) then o.outcome else 'answered' end,
    answered_at = answered,
    ended_at = internal.end_after_answer(o.ended_at, answered),
    duration_sec = internal.call_duration(answered, internal.end_after_answer(o.ended_at, answered)),
    dispatch_id = coalesce(o.dispatch_id, dispatch), dialed_at = dialed, dial_returned_at = now(),
    agent_identity = coalesce(o.agent_identity, agent),
    agent_joined_at = coalesce(o.agent_joined_at, agent_joined),
    agent_audio_at = coalesce(o.agent_audio_at, agent_audio),
    participant_id = coalesce(participant, o.participant_id),
    sip_call_id = coalesce(nullif(sip_call, ''), o.sip_call_id)
  where o.id = call_id
  returning * into done;
  if done.campaign_call_id is not null then
    if done.status = 'in_progress' then
      perform internal.call_answered(done.id);
    elsif internal.call_is_final(done.status) and not internal.call_is_final(cur.status) then
      perform internal.call_finished(done.id);
    end if;
  end if;
  return next done;
end $$;
comment on function internal.record_answer is 'The dial''s answer, answered: the call is live (or completed, when its leave came first) and its campaign contact with it.';

-- The dial failed (kind 'failed', with the status and outcome its error maps to) or its answer was
-- lost (kind 'unknown'): then what the webhooks said while waiting decides, else the call is
-- written off as lost (never re-dialed: the callee may have answered), unless it never left
-- LiveKit's hands (not dialed: livekit_error).
create function internal.record_dial_failure(call_id uuid, kind text, mapped_status public.call_status,
  mapped_outcome text, error text, sip_code integer, sip_text text, dispatch text, dialed timestamptz,
  agent text, agent_joined timestamptz, agent_audio timestamptz)
returns setof public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  cur public.outbound_calls;
  done public.outbound_calls;
  next_status public.call_status;
  next_outcome text;
  x record;
  ended timestamptz;
begin
  select * into cur from public.outbound_calls where id = call_id for update;
  if not found then
    return;
  end if;
  if internal.call_is_final(cur.status) then
    next_status := cur.status;
    next_outcome := cur.outcome;
  elsif kind = 'failed' then
    next_status := mapped_status;
    next_outcome := mapped_outcome;
  elsif cur.answered_at is not null or cur.outcome = 'answered' then
    next_status := 'completed';
    next_outcome := 'answered';
  elsif cur.disconnect_reason is not null then
    x := internal.outcome_from_disconnect(cur.disconnect_reason);
    next_status := x.status;
    next_outcome := x.outcome;
  elsif dialed is not null then
    next_status := 'failed';
    next_outcome := 'lost';
  else
    next_status := 'failed';
    next_outcome := 'livekit_error';
  end if;
  -- A final call keeps its end; another ends now unless a leave already said when.
  ended := case when internal.call_is_final(cur.status) then cur.ended_at else coalesce(cur.ended_at, now()) end;
  update public.outbound_calls o set status = next_status, outcome = next_outcome,
    ended_at = ended, duration_sec = internal.call_duration(o.answered_at, ended),
    dispatch_id = coalesce(o.dispatch_id, dispatch), dialed_at = dialed, dial_returned_at = now(),
    agent_identity = coalesce(o.agent_identity, agent),
    agent_joined_at = coalesce(o.agent_joined_at, agent_joined),
    agent_audio_at = coalesce(o.agent_audio_at, agent_audio),
    sip_status_code = coalesce(sip_code, o.sip_status_code),
    sip_status = coalesce(sip_text, o.sip_status),
    error = coalesce(record_dial_failure.error, o.error)
  where o.id = call_id
  returning * into done;
  -- The carrier said its calls-per-second limit was hit: its trunk's budget backs off.
  if done.outcome = 'cps_limited' and not internal.call_is_final(cur.status) then
    perform internal.carrier_rejected(coalesce(done.carrier_trunk, 'default'));
  end if;
  if done.campaign_call_id is not null and internal.call_is_final(done.status) then
    perform internal.call_finished(done.id);
  end if;
  return next done;
end $$;
comment on function internal.record_dial_failure is 'The dial''s answer, failed or lost: the call ends with the outcome the error maps to, or what the webhooks said, or lost.';

-- Webhooks and reconciliation -------------------------------------------------------------------
-- A verified LiveKit webhook, stored once (by event id) and applied to the call in its room.
-- participant: the event's participant (identity, sid, whether it is a SIP participant, its
-- sip.callID and sip.callStatus attributes, its disconnect reason's name); event_at: its time.
create function internal.record_livekit_event(event_id text, event text, room text, payload jsonb,
  event_at timestamptz, identity text default null, participant_sid text default null,
  is_sip boolean default false, sip_call text default null, sip_call_status text default null,
  disconnect_reason text default null, departure_sec numeric default 20)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
  moved public.outbound_calls;
  stored bigint;
  ours boolean;
begin
  if coalesce(room, '') <> '' then
    select * into call from public.outbound_calls o where o.room_name = room for update;
  end if;
  insert into public.call_events (event_id, owner_id, call_id, event, room_name, participant_identity, payload, created_at)
  values (event_id, call.owner_id, call.id, event, nullif(room, ''), identity, payload, event_at)
  on conflict on constraint call_events_event_id_key do nothing returning id into stored;
  if stored is null then
    return jsonb_build_object('duplicate', true, 'callId', call.id, 'status', call.status);
  end if;
  if call.id is null then
    return jsonb_build_object('duplicate', false, 'callId', null, 'status', null);
  end if;
  ours := is_sip and identity = call.participant_identity;
  if event = 'participant_joined' and ours then
    -- The SIP participant joined (at dial time): its ids, nothing about an answer.
    update public.outbound_calls set participant_id = coalesce(participant_id, nullif(participant_sid, '')),
      sip_call_id = coalesce(sip_call_id, nullif(sip_call, ''))
    where id = call.id;
    moved := call;
  elsif event = 'track_published' and identity is not null and identity <> call.participant_identity then
    -- Only the agent shares the call's room with the SIP participant: it can be heard now.
    update public.outbound_calls set agent_audio_at = coalesce(agent_audio_at, event_at),
      agent_identity = coalesce(agent_identity, identity)
    where id = call.id;
    moved := call;
  elsif event in ('participant_left', 'participant_connection_aborted') and ours then
    -- "hangup" follows "active": a call that was answered and then ended normally.
    moved := internal.apply_call_event(call, 'left', event_at, coalesce(disconnect_reason, 'UNKNOWN_REASON'),
      coalesce(sip_call_status = 'active' or (sip_call_status = 'hangup' and coalesce(disconnect_reason, '')
        not in ('USER_REJECTED', 'USER_UNAVAILABLE', 'SIP_TRUNK_FAILURE')), false));
  elsif event = 'room_finished' then
    moved := internal.apply_call_event(call, 'room_finished', event_at, null, false, departure_sec);
  else
    -- track_published by the SIP participant carries only sid and identity and fires before the
    -- phone rings: it says nothing about an answer; nor do other events.
    moved := call;
  end if;
  return jsonb_build_object('duplicate', false, 'callId', call.id, 'status', moved.status,
    'ended', internal.call_is_final(moved.status) and not internal.call_is_final(call.status),
    'outcome', moved.outcome, 'disconnectReason', moved.disconnect_reason);
end $$;
comment on function internal.record_livekit_event is 'livekit-webhook: stores a verified event once and moves the call in its room.';

-- What LiveKit holds for each live call checked: [{id, roomExists, present (its SIP participant is
-- in the room), callStatus (that participant's sip.callStatus)}]. A call still going is only
-- stamped; the ones that ended are returned.
create function internal.reconcile_calls(seen jsonb, departure_sec numeric default 20)
returns setof public.outbound_calls
language plpgsql security definer set search_path = '' as $$
declare
  s record;
  call public.outbound_calls;
  moved public.outbound_calls;
  x record;
begin
  for s in
    select * from jsonb_to_recordset(seen) as t(id uuid, "roomExists" boolean, present boolean, "callStatus" text)
    order by id
  loop
    -- A call another transaction is moving (its webhook, its dial's answer) is left to it and
    -- checked next time: waiting for it while holding the calls settled before could deadlock.
    select * into call from public.outbound_calls where id = s.id for update skip locked;
    if not found or internal.call_is_final(call.status) then
      continue;
    end if;
    update public.outbound_calls set checked_at = now() where id = call.id returning * into call;
    if s.present and s."callStatus" is distinct from 'hangup' then
      if s."callStatus" = 'active' then
        moved := internal.apply_call_event(call, 'answered', now());
      else
        moved := call;
      end if;
    elsif call.answered_at is not null or call.status = 'in_progress' or call.outcome = 'answered' then
      -- A room that is gone closed its departure timeout after the participant left (or its
      -- leave said it was answered, the dial's answer never came).
      moved := internal.move_call(call, 'completed', call.answered_at, internal.end_after_answer(
        coalesce(call.ended_at, case when s."roomExists" then now() else now() - make_interval(secs => departure_sec) end),
        call.answered_at), 'answered');
    elsif s.present then
      moved := call; -- hanging up an unanswered call: its leave comes next
    elsif call.disconnect_reason is not null then
      -- Gone without an answer on record: the leave's reason when it came.
      x := internal.outcome_from_disconnect(call.disconnect_reason);
      moved := internal.move_call(call, x.status, null, coalesce(call.ended_at, now()), x.outcome);
    else
      -- Nothing is known, and a call that may have been answered is never dialed again.
      moved := internal.move_call(call, 'failed', null, coalesce(call.ended_at, now()), 'lost');
    end if;
    if internal.call_is_final(moved.status) then
      return next moved;
    end if;
  end loop;
end $$;
comment on function internal.reconcile_calls is 'campaign-tick: settles live calls by what LiveKit''s rooms and participants show; returns the calls that ended.';

-- Grants -------------------------------------------------------------------------------------------
revoke all on function internal.move_call, internal.apply_call_event, internal.dialable_numbers, internal.open_call,
  internal.call_refusal, internal.open_dial, internal.withdraw_call,
  internal.record_answer, internal.record_dial_failure, internal.record_livekit_event, internal.reconcile_calls
  from public, anon, authenticated;
grant execute on function internal.open_call, internal.call_refusal, internal.open_dial, internal.withdraw_call, internal.record_answer,
  internal.record_dial_failure, internal.record_livekit_event, internal.reconcile_calls to service_role;
