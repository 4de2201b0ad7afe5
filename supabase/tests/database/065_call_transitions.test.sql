-- Every transition of an outbound call is a SQL function: a call only moves forward, a final call
-- never moves, an end is never before the answer, and what LiveKit said decides the outcome.
begin;
select plan(48);

select tests.create_ready_fixture('moves@example.com', 'ST_moves', 'moves.pstn.twilio.com') as f \gset

-- A call record, as a dial opens it.
create temp table fx as select :'f'::jsonb as f;
create temp table ids (name text primary key, id uuid);
create function pg_temp.open(name text, room text) returns uuid language sql as $$
  insert into ids
  select name, o.id from fx, internal.open_call(gen_random_uuid(), (fx.f ->> 'user')::uuid,
    (fx.f ->> 'assistant')::uuid, null, null, '+12125550100', null, null, null, room, null) o
  returning id
$$;
create function pg_temp.call(name text) returns public.outbound_calls language sql as $$
  select o.* from public.outbound_calls o join ids on ids.id = o.id where ids.name = call.name
$$;
create function pg_temp.ev(name text, kind text, at_sec integer, reason text default null,
  left_answered boolean default false) returns public.outbound_calls language sql as $$
  select internal.apply_call_event(pg_temp.call(name), kind, '2026-11-24 12:00:00+00'::timestamptz
    + make_interval(secs => at_sec), reason, left_answered, 20)
$$;

-- open_call / withdraw_call
select isnt(pg_temp.open('a', 'room-a'), null, 'a ready number opens the call record');
select is((pg_temp.call('a')).status, 'dialing', 'it starts dialing');
select is((select count(*)::integer from internal.open_call(gen_random_uuid(), (:'f'::jsonb ->> 'user')::uuid,
    (:'f'::jsonb ->> 'assistant')::uuid, null, null, '+12125550101', null, null, null, 'room-a', null)),
  0, 'a room already used opens nothing: the same dial is never written twice');
insert into public.do_not_call (owner_id, e164) values ((:'f'::jsonb ->> 'user')::uuid, '+12125550199');
select is((select count(*)::integer from internal.open_call(gen_random_uuid(), (:'f'::jsonb ->> 'user')::uuid,
    (:'f'::jsonb ->> 'assistant')::uuid, null, null, '+12125550199', null, null, null, null, null)),
  0, 'a callee on the do-not-call list opens nothing');
-- call_refusal: why open_call wrote nothing, in the order open_call checks.
create function pg_temp.why(to_number text, phone_number uuid default null, campaign uuid default null)
returns text language sql as $$
  select coalesce(r.code || coalesce(' ' || r.campaign_status, ''), 'none') from fx
  left join internal.call_refusal((fx.f ->> 'user')::uuid, (fx.f ->> 'assistant')::uuid, null,
    why.phone_number, why.to_number, why.campaign) r on true
$$;
select is(pg_temp.why('+12125550199'), 'do_not_call', 'refused: the callee is on the do-not-call list');
select is(pg_temp.why('+12125550101'), 'none', 'nothing refuses a callee off the list');
select is(pg_temp.why('+12125550199', gen_random_uuid()), 'no_outbound_trunk',
  'no dialable number is said before the do-not-call list');
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id)
select owner_id, 'Ended', assistant_id, phone_number_id from public.campaigns where id = (:'f'::jsonb ->> 'campaign')::uuid
returning id as ended \gset
update public.campaigns set status = 'cancelled' where id = :'ended';
select is(pg_temp.why('+12125550101', null, :'ended'), 'campaign_not_running cancelled',
  'refused: the campaign was cancelled');
select is(pg_temp.why('+12125550101', null, gen_random_uuid()), 'campaign_not_running deleted',
  'refused: the campaign is gone');
select ok(internal.withdraw_call((pg_temp.call('a')).id), 'a never-dialed call is withdrawn');
select is((select count(*)::integer from public.outbound_calls where room_name = 'room-a'), 0, 'and leaves no record');

-- record_answer: answered, then the leave ends it; the end is never before the answer.
select pg_temp.open('b', 'room-b');
select is((select status from internal.record_answer((pg_temp.call('b')).id, 'AD_1', now(), 'agent-1', now(), null,
  'PA_1', 'SCL_1')), 'in_progress', 'an answered dial is in progress');
select is((pg_temp.call('b')).outcome, 'answered', 'with the outcome answered');
update public.outbound_calls set answered_at = '2026-11-24 12:00:03+00' where id = (pg_temp.call('b')).id;
select is((pg_temp.ev('b', 'answered', 2)).answered_at, '2026-11-24 12:00:03+00'::timestamptz,
  'a second answer changes nothing');
select is((pg_temp.ev('b', 'left', 1, 'CLIENT_INITIATED')).ended_at, '2026-11-24 12:00:03+00'::timestamptz,
  'a leave stamped before the answer (whole-second webhook times) ends at the answer');
select is((pg_temp.call('b')).status, 'completed', 'an answered call that is left is completed');
select is((pg_temp.call('b')).duration_sec, 0, 'its duration is never negative');
select is((pg_temp.ev('b', 'left', 41, 'USER_REJECTED')).status, 'completed', 'a final call never moves again');
select is((pg_temp.ev('b', 'room_finished', 60)).ended_at, '2026-11-24 12:00:03+00'::timestamptz,
  'nor does a late room_finished change its end');

-- While the dial waits for its answer, a leave only notes the time.
select pg_temp.open('c', 'room-c');
select is((pg_temp.ev('c', 'left', 4, 'USER_REJECTED')).status, 'dialing',
  'while the dial waits, the coarse leave reason decides nothing');
select is((pg_temp.call('c')).ended_at, '2026-11-24 12:00:04+00'::timestamptz, 'it only notes when the call ended');
select is((pg_temp.call('c')).outcome, null, 'and no outcome');
select is((select outcome from internal.record_dial_failure((pg_temp.call('c')).id, 'failed', 'busy', 'busy',
  'dial: busy here', 486, 'Busy Here', 'AD_2', now(), null, null, null)), 'busy',
  'the dial''s exact SIP status decides');
select is((pg_temp.call('c')).sip_status_code, 486, 'and is recorded');
select is((pg_temp.call('c')).ended_at, '2026-11-24 12:00:04+00'::timestamptz, 'the noted end is kept');

-- A dial whose answer was lost: what the webhooks said, else lost.
select pg_temp.open('d', 'room-d');
update public.outbound_calls set disconnect_reason = 'USER_UNAVAILABLE' where id = (pg_temp.call('d')).id;
select is((select outcome from internal.record_dial_failure((pg_temp.call('d')).id, 'unknown', null, null,
  'dial: timed out', null, null, null, now(), null, null, null)), 'no_answer',
  'a lost answer takes the leave''s reason when there was one');
select pg_temp.open('e', 'room-e');
select is((select outcome from internal.record_dial_failure((pg_temp.call('e')).id, 'unknown', null, null,
  'dial: timed out', null, null, null, now(), null, null, null)), 'lost',
  'a dialed call with no word is lost, never dialed again');
select pg_temp.open('g', 'room-g');
select is((select outcome from internal.record_dial_failure((pg_temp.call('g')).id, 'unknown', null, null,
  'dispatch: unreachable', null, null, null, null, null, null, null)), 'livekit_error',
  'a call that never left LiveKit''s hands is LiveKit''s error');

-- room_finished without a leave: an answered call ends its departure timeout before.
select pg_temp.open('h', 'room-h');
update public.outbound_calls set status = 'in_progress', answered_at = '2026-11-24 12:00:02+00',
  dial_returned_at = now() where id = (pg_temp.call('h')).id;
select is((pg_temp.ev('h', 'room_finished', 50)).ended_at, '2026-11-24 12:00:30+00'::timestamptz,
  'a room that finishes ends an answered call at its departure time');
select is((pg_temp.call('h')).duration_sec, 28, 'which gives its duration');

-- A late answer fills in the time but keeps a final status.
select pg_temp.open('i', 'room-i');
update public.outbound_calls set status = 'busy', outcome = 'busy', ended_at = '2026-11-24 12:00:05+00',
  dial_returned_at = now() where id = (pg_temp.call('i')).id;
select is((pg_temp.ev('i', 'answered', 4)).status, 'busy', 'a late answer keeps a final status');
select is((pg_temp.call('i')).answered_at, '2026-11-24 12:00:04+00'::timestamptz, 'but fills in the time');

-- Webhook intake: stored once, the leave moves the call by LiveKit's reason.
select pg_temp.open('j', 'room-j');
update public.outbound_calls set dial_returned_at = now() where id = (pg_temp.call('j')).id;
select is(internal.record_livekit_event('EV_1', 'participant_left', 'room-j', '{}', now(),
  (pg_temp.call('j')).participant_identity, 'PA_j', true, null, 'hangup', 'USER_REJECTED') ->> 'status', 'busy',
  'an unanswered leave with USER_REJECTED is busy');
select is((internal.record_livekit_event('EV_1', 'participant_left', 'room-j', '{}', now(),
  (pg_temp.call('j')).participant_identity, 'PA_j', true, null, 'hangup', 'USER_REJECTED') ->> 'duplicate')::boolean, true,
  'the same event twice is stored once');
select pg_temp.open('k', 'room-k');
update public.outbound_calls set dial_returned_at = now(), answered_at = now() - interval '10 seconds',
  status = 'in_progress' where id = (pg_temp.call('k')).id;
select is(internal.record_livekit_event('EV_2', 'participant_left', 'room-k', '{}', now(),
  'agent-1', 'PA_x', false, null, null, 'CLIENT_INITIATED') ->> 'status', 'in_progress',
  'another participant''s leave does not end the call');

-- Reconciliation: what LiveKit holds decides.
select pg_temp.open('m', 'room-m');
update public.outbound_calls set dial_returned_at = now() where id = (pg_temp.call('m')).id;
select is((select count(*)::integer from internal.reconcile_calls(jsonb_build_array(jsonb_build_object(
  'id', (pg_temp.call('m')).id, 'roomExists', true, 'present', true, 'callStatus', 'ringing')))), 0,
  'a call still ringing is only stamped');
select isnt((pg_temp.call('m')).checked_at, null, 'it is stamped');
select is((select outcome from internal.reconcile_calls(jsonb_build_array(jsonb_build_object(
  'id', (pg_temp.call('m')).id, 'roomExists', false, 'present', false)))), 'lost',
  'a call gone from LiveKit with no word is lost');

-- A leave LiveKit saw answered, while the dial still waits for its answer: the answer decides.
select pg_temp.open('n', 'room-n');
select is((pg_temp.ev('n', 'left', 7, 'CLIENT_INITIATED', true)).status, 'dialing',
  'an answered leave before the dial''s answer does not end the call yet');
select is((pg_temp.call('n')).outcome || ' ' || coalesce((pg_temp.call('n')).answered_at::text, 'no time'),
  'answered no time', 'it notes that the call was answered, not when (the dial''s answer says)');
select is((select status || ' ' || (answered_at is not null)::text from internal.record_answer((pg_temp.call('n')).id,
  'AD_n', now(), 'agent-1', now() - interval '1 second', now() - interval '1 second', 'PA_n', 'SCL_n')),
  'completed true',
  'the dial''s answer then ends it, answered, with its time');
select ok((select not abandoned and ended_at >= answered_at from pg_temp.call('n') c),
  'its agent joined and spoke first: not abandoned, and not ended before it was answered');

-- open_dial: a campaign contact's dial, written with its carrier slot once its agent is in the room.
update public.campaigns set status = 'running' where id = (:'f'::jsonb ->> 'campaign')::uuid;
update public.campaign_calls set status = 'dialing', dials = 1
where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid;
create temp table contact as
  select id, e164 from public.campaign_calls where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid;
create function pg_temp.open_dial(dial integer) returns setof public.outbound_calls language sql as $$
  select o.* from fx, contact, internal.open_dial(gen_random_uuid(), (fx.f ->> 'user')::uuid,
    (fx.f ->> 'assistant')::uuid, (fx.f ->> 'number')::uuid, contact.e164, (fx.f ->> 'campaign')::uuid,
    contact.id, 1, internal.dial_room(contact.id, dial), 'sip-' || internal.dial_room(contact.id, dial), 50, 5) o
$$;
select is((select count(*)::integer from pg_temp.open_dial(2)), 0,
  'a dial that is not the contact''s current one writes nothing');
select is(cardinality(internal.take_carrier_slots('moves.pstn.twilio.com', 50, 3, 5, null, true)), 3,
  'a claim plans three send times');
select is((select count(*)::integer from internal.carrier_pacing where carrier_trunk = 'moves.pstn.twilio.com'
            and next_slot > 'epoch'), 0,
  'without taking a slot of the trunk');
create temp table opened as select * from pg_temp.open_dial(1);
select is((select count(*)::integer from opened), 1, 'the current dial writes its record');
select ok((select dialed_at is not null and dialed_at >= now() from opened), 'with its carrier slot');
select ok((select next_slot > (select dialed_at from opened) from internal.carrier_pacing
  where carrier_trunk = 'moves.pstn.twilio.com'), 'which it took from the trunk');

select * from finish();
rollback;
