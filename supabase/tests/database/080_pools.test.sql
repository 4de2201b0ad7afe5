-- Number pools: who may be in one, how the claim picks each callee's number, health and rests.
begin;
select plan(31);

-- The documented thresholds (a local stack may have tuned them to its emulator's time scale).
update internal.number_health_settings set short_call_sec = 12, min_answered = 10, max_short_share = 0.5;

select tests.create_owner_fixture('pools@example.com') as f \gset
select tests.create_owner_fixture('pools-stranger@example.com') as g \gset
select (:'f'::jsonb ->> 'user') as uid, (:'f'::jsonb ->> 'assistant') as aid, (:'f'::jsonb ->> 'number') as n415 \gset
select lpad((floor(random() * 9000) + 1000)::int::text, 4, '0') as r \gset

-- Numbers in 212 (New York), 512 (Texas) and a second 415, as provisioning leaves them ready;
-- the 512 number sits on another carrier trunk.
insert into public.phone_number (owner_id, e164, assistant_id)
values (:'uid', '+1212777' || :'r', :'aid'), (:'uid', '+1512777' || :'r', :'aid');
update public.phone_number set trunk_status = 'ready', outbound_trunk_id = 'ST_' || e164,
  carrier_trunk = case when e164 like '+1512%' then 'pgtap-b.pstn.twilio.com' else 'pgtap-a.pstn.twilio.com' end,
  provisioned_assistant_id = assistant_id
where owner_id = :'uid';
select id as n212 from public.phone_number where e164 = '+1212777' || :'r' \gset
select id as n512 from public.phone_number where e164 = '+1512777' || :'r' \gset
insert into public.phone_number (owner_id, e164, assistant_id) values (:'uid', '+1718777' || :'r', :'aid');
select id as pending from public.phone_number where e164 = '+1718777' || :'r' \gset
update public.phone_number set trunk_status = 'ready', outbound_trunk_id = 'ST_x', carrier_trunk = 'pgtap-a.pstn.twilio.com'
where id = (:'g'::jsonb ->> 'number')::uuid;

-- Who may be in a pool ------------------------------------------------------------------------
select has_column('public', 'campaigns', 'caller_number_ids', 'campaigns have a pool of caller numbers');
select has_column('public', 'phone_number', 'rest_until', 'numbers can rest');
select tests.authenticate_as(:'uid');
insert into public.campaigns (name, assistant_id, caller_id_strategy, window_start, window_end, weekdays, max_concurrent,
  caller_number_ids)
values ('Pool', :'aid', 'local_presence', '00:00', '23:59:59', '{1,2,3,4,5,6,7}', 10,
  array[:'n212', :'n415', :'n512', :'n212']::uuid[]);
select id as cid from public.campaigns where name = 'Pool' \gset
select is((select caller_number_ids from public.campaigns where id = :'cid'),
  array[:'n212', :'n415', :'n512']::uuid[], 'the owner makes a pool of ready numbers (duplicates dropped, order kept)');
select throws_ok(format($$update public.campaigns set caller_number_ids = array[%L, %L]::uuid[] where id = %L$$,
  :'n212', :'g'::jsonb ->> 'number', :'cid'), '23514', null, 'another owner''s number cannot join a pool');
select throws_ok(format($$update public.campaigns set caller_number_ids = array[%L, %L]::uuid[] where id = %L$$,
  :'n212', :'pending', :'cid'), '23514', null, 'a number that is not ready cannot join a pool');
select lives_ok(format($$update public.phone_number set label = 'seen' where id = %L$$, :'n212'),
  'the owner still edits the number');
select is((select count(*)::int from public.phone_number_health), 0, 'no health rows yet');
select tests.clear_authentication();
update public.campaigns set status = 'running' where id = :'cid';

-- The claim picks each callee's number ------------------------------------------------------------
insert into public.campaign_calls (owner_id, campaign_id, e164)
select :'uid', :'cid', n from unnest(array['+12127770101', '+14157770102', '+15127770103', '+16467770104',
  '+13037770105', '+13037770106']) n;
create temp table claimed as
select * from internal.claim_calls(:'cid', 100, gen_random_uuid(), 50, 5);
select is((select count(*)::int from claimed), 6, 'the claim takes every due callee');
select is((select phone_number_id from claimed where e164 = '+12127770101'), :'n212'::uuid, 'a 212 callee gets the 212 number');
select is((select phone_number_id from claimed where e164 = '+14157770102'), :'n415'::uuid, 'a 415 callee gets the 415 number');
select is((select phone_number_id from claimed where e164 = '+15127770103'), :'n512'::uuid, 'a 512 callee gets the 512 number');
select is((select phone_number_id from claimed where e164 = '+16467770104'), :'n212'::uuid,
  'a 646 callee (New York) gets the number in the same state');
select is((select count(distinct phone_number_id)::int from claimed where e164 like '+1303%'), 2,
  'two callees with no local number go to two numbers: the least recently used first');
select is((select carrier_trunk from claimed where e164 = '+15127770103'), 'pgtap-b.pstn.twilio.com',
  'slots come from each number''s own carrier trunk');
select is((select count(*)::int from public.campaign_calls c join claimed using (e164)
           where c.caller_number_id = claimed.phone_number_id), 6, 'each attempt records its number');
select is((select count(*)::int from internal.number_usage where phone_number_id in (:'n212', :'n415', :'n512')
           and last_used_at > now() - interval '1 minute'), 3, 'when each number was last used is kept for later claims');

-- A retry keeps its number; a resting number is skipped --------------------------------------------
update public.campaign_calls set status = 'queued', lease_until = null, next_attempt_at = now() - interval '1 second'
where campaign_id = :'cid';
update public.phone_number set rest_until = now() + interval '1 hour', rest_reason = 'pgtap' where id = :'n512';
create temp table again as
select * from internal.claim_calls(:'cid', 100, gen_random_uuid(), 50, 5);
select is((select count(*)::int from again a join claimed c using (e164) where a.phone_number_id = c.phone_number_id),
  (select count(*)::int from claimed where phone_number_id <> :'n512'::uuid), 'retries keep their number unless it rests');
select ok((select bool_and(phone_number_id <> :'n512'::uuid) from again), 'no callee is dialed from a resting number');

-- All resting: the campaign pauses with the reason.
update public.campaign_calls set status = 'queued', lease_until = null, next_attempt_at = now() - interval '1 second'
where campaign_id = :'cid';
update public.phone_number set rest_until = now() + interval '1 hour', rest_reason = 'pgtap' where id in (:'n212', :'n415');
select is((select count(*)::int from internal.claim_calls(:'cid', 100, gen_random_uuid(), 50, 5)), 0,
  'nothing is claimed when every number rests');
select matches((select status::text || ': ' || status_reason from public.campaigns where id = :'cid'),
  '^paused: paused: every caller number is resting \(.*pgtap', 'and the campaign pauses with the reason');

-- Health as calls end -------------------------------------------------------------------------
update public.phone_number set rest_until = null where owner_id = :'uid';
insert into public.outbound_calls (owner_id, phone_number_id, from_number, to_number, room_name, participant_identity,
  outbound_trunk_id)
select :'uid', :'n212', '+1212777' || :'r', '+1212555' || lpad(i::text, 4, '0'), 'pgtap-health-' || i, 'sip-' || i, 'ST_x'
from generate_series(1, 10) i;
update public.outbound_calls set status = 'completed', outcome = 'answered', answered_at = now() - interval '3 seconds',
  ended_at = now() where room_name like 'pgtap-health-%' and room_name <> 'pgtap-health-10';
select is((select rest_until from public.phone_number where id = :'n212'), null, 'nine short calls are below the minimum sample');
update public.outbound_calls set status = 'completed', outcome = 'answered', answered_at = now() - interval '3 seconds',
  ended_at = now() where room_name = 'pgtap-health-10';
select ok((select rest_until > now() + interval '23 hours' from public.phone_number where id = :'n212'),
  'the tenth answered call under 12 s rests the number for a day');
select is((select rest_reason from public.phone_number where id = :'n212'),
  '10 of its last 10 answered calls ended under 12 s (limit 50.0 %)', 'with the measure and threshold as its reason');

-- The owner sees and clears a rest; a stranger sees nothing.
select tests.authenticate_as(:'uid');
select is((select short_calls from public.phone_number_health where phone_number_id = :'n212'), 10,
  'the owner sees the number''s health');
update public.phone_number set rest_until = null where id = :'n212';
select tests.clear_authentication();
select is((select rest_reason from public.phone_number where id = :'n212'), null, 'the owner clears a rest');
select tests.authenticate_as((:'g'::jsonb ->> 'user')::uuid);
select is((select count(*)::int from public.phone_number_health), 0, 'a stranger sees no other owner''s health');
select tests.clear_authentication();

-- An answer rate under 10 % over 20 calls rests a number; calls failed by the trunk's budget do not count.
insert into public.outbound_calls (owner_id, phone_number_id, from_number, to_number, room_name, participant_identity,
  outbound_trunk_id)
select :'uid', :'n512', '+1512777' || :'r', '+1512555' || lpad(i::text, 4, '0'), 'pgtap-asr-' || i, 'sip-' || i, 'ST_x'
from generate_series(1, 25) i;
update public.outbound_calls set status = 'failed', outcome = 'cps_limited', ended_at = now()
where room_name in ('pgtap-asr-21', 'pgtap-asr-22', 'pgtap-asr-23', 'pgtap-asr-24', 'pgtap-asr-25');
update public.outbound_calls set status = 'no_answer', outcome = 'no_answer', ended_at = now()
where room_name like 'pgtap-asr-%' and status = 'dialing' and room_name <> 'pgtap-asr-20';
select is((select rest_until from public.phone_number where id = :'n512'), null,
  'nineteen unanswered calls (and five refused by the trunk''s budget) are below the minimum sample');
update public.outbound_calls set status = 'no_answer', outcome = 'no_answer', ended_at = now() where room_name = 'pgtap-asr-20';
select is((select rest_reason from public.phone_number where id = :'n512'),
  'answer rate 0.0 % over its last 20 calls (minimum 10.0 %)', 'the twentieth unanswered call rests the number');

-- Carrier rejections past 20 % of the calls rest a number.
insert into public.outbound_calls (owner_id, phone_number_id, from_number, to_number, room_name, participant_identity,
  outbound_trunk_id)
select :'uid', :'n415', :'f'::jsonb ->> 'e164', '+1415555' || lpad(i::text, 4, '0'), 'pgtap-rej-' || i, 'sip-' || i, 'ST_x'
from generate_series(1, 21) i;
update public.outbound_calls set status = 'completed', outcome = 'answered', answered_at = now() - interval '60 seconds',
  ended_at = now() where room_name like 'pgtap-rej-%' and substr(room_name, 11)::int <= 16;
update public.outbound_calls set status = 'failed', outcome = 'blocked', sip_status_code = 607, ended_at = now()
where room_name like 'pgtap-rej-%' and substr(room_name, 11)::int between 17 and 20;
select is((select rest_until from public.phone_number where id = :'n415'), null, '4 rejections in 20 calls are within the limit');
update public.outbound_calls set status = 'failed', outcome = 'blocked', sip_status_code = 607, ended_at = now()
where room_name = 'pgtap-rej-21';
select is((select rest_reason from public.phone_number where id = :'n415'),
  'the carrier rejected 5 of its last 21 calls (limit 20.0 %)', 'the fifth rejection in 21 calls rests the number');

-- A number leaving its assistant leaves the pools.
update public.phone_number set assistant_id = null where id = :'n415';
select is((select caller_number_ids from public.campaigns where id = :'cid'), array[:'n212', :'n512']::uuid[],
  'an unassigned number drops out of the pools holding it');

select * from finish();
rollback;
