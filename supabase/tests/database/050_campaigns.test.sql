-- The campaign engine's SQL: transitions, import checks, pacing slots, claims and retries.
begin;
select plan(20);

-- A ready number, as provisioning would leave it.
select tests.create_ready_fixture('engine@example.com', 'ST_test', 'pgtap.pstn.twilio.com') as f \gset
update public.campaigns set window_start = '00:00', window_end = '23:59:59', weekdays = '{1,2,3,4,5,6,7}',
  max_concurrent = 2, retry_busy_sec = 600
where id = (:'f'::jsonb ->> 'campaign')::uuid;

-- Transitions --------------------------------------------------------------------------------
select lives_ok(format($$update public.campaigns set status = 'running' where id = %L$$, :'f'::jsonb ->> 'campaign'),
  'a draft campaign can start');
select throws_ok(format($$update public.campaigns set status = 'draft' where id = %L$$, :'f'::jsonb ->> 'campaign'),
  '23514', null, 'a running campaign cannot go back to draft');
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select throws_ok(format($$update public.campaigns set status = 'completed' where id = %L$$, :'f'::jsonb ->> 'campaign'),
  '42501', null, 'a user cannot mark a campaign completed');
select tests.clear_authentication();

-- Import checks (the prepare trigger) -----------------------------------------------------------
insert into public.do_not_call (owner_id, e164) values ((:'f'::jsonb ->> 'user')::uuid, '+12125550101');
insert into public.campaign_calls (owner_id, campaign_id, e164)
select (:'f'::jsonb ->> 'user')::uuid, (:'f'::jsonb ->> 'campaign')::uuid, n
from unnest(array['+12125550101', '+442071234567', '+13125550102', '+13125550103', '+13125550104', '+13125550105']) n;
select is((select last_outcome from public.campaign_calls where e164 = '+12125550101'), 'do_not_call',
  'a number on the do-not-call list is skipped on import');
select is((select last_outcome from public.campaign_calls where e164 = '+442071234567'), 'destination_not_allowed',
  'a number outside the campaign''s countries is skipped on import');
select is((select timezone from public.campaign_calls where e164 = '+13125550102'), 'America/Chicago',
  'the callee''s time zone comes from the number');
select ok((select next_attempt_at <= now() from public.campaign_calls where e164 = '+13125550102'),
  'a callee inside its window is due at once');

-- Pacing slots (per carrier trunk) ---------------------------------------------------------------
select internal.take_carrier_slots('pgtap-a', 5, 12, 10) as slots \gset
select is(
  (select max((select count(*) from unnest(:'slots'::timestamptz[]) t where t >= s and t < s + interval '1 second'))
   from unnest(:'slots'::timestamptz[]) s)::int,
  5, 'no sliding one-second window holds more than cps slots');
select is(cardinality(:'slots'::timestamptz[]), 12, 'twelve slots fit in a ten-second horizon at 5 cps');
select ok((internal.take_carrier_slots('pgtap-a', 5, 1, 10))[1] >= (:'slots'::timestamptz[])[12] + interval '200 milliseconds',
  'a carrier trunk''s slots are handed out once, to whoever asks next');
select ok(
  (select bool_and(d >= interval '2 seconds') from (
     select s - lag(s) over (order by s) d from unnest(internal.take_carrier_slots('pgtap-b', 0.5, 4, 20)) s
   ) x where d is not null),
  'below 1 cps the slots are 1/cps apart');
select internal.carrier_rejected('pgtap-c');
select ok(
  (select bool_and(d >= interval '400 milliseconds') from (
     select s - lag(s) over (order by s) d from unnest(internal.take_carrier_slots('pgtap-c', 5, 4, 10)) s
   ) x where d is not null),
  'a carrier CPS rejection halves the trunk''s rate');

-- Claims -----------------------------------------------------------------------------------------
select is((select count(*)::int from internal.claim_calls((:'f'::jsonb ->> 'campaign')::uuid, 100, gen_random_uuid())),
  2, 'a claim takes no more than the campaign''s free concurrency');
select is((select count(*)::int from internal.claim_calls((:'f'::jsonb ->> 'campaign')::uuid, 100, gen_random_uuid())),
  0, 'with every line busy the next claim takes nothing');
select is((select count(*)::int from public.campaign_calls where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid and status = 'dialing' and lease_until > now()),
  2, 'claimed calls carry a lease');

-- Retries ----------------------------------------------------------------------------------------
select id as cc, attempts from public.campaign_calls
where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid and status = 'dialing' order by e164 limit 1 \gset
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome)
select owner_id, campaign_id, id, attempts, :'f'::jsonb ->> 'e164', e164, format('cc-%s-%s', id, dials), 'sip-x', 'ST_test', 'busy', 'busy'
from public.campaign_calls where id = :'cc';
select internal.call_finished((select id from public.outbound_calls where campaign_call_id = :'cc'));
select is((select status::text from public.campaign_calls where id = :'cc'), 'queued', 'a busy callee is queued again');
select ok((select next_attempt_at between now() + interval '590 seconds' and now() + interval '610 seconds'
           from public.campaign_calls where id = :'cc'), 'after the campaign''s busy delay');
select is((select last_outcome from public.campaign_calls where id = :'cc'), 'busy', 'with the outcome shown');

-- The other claimed call: refused by the carrier's CPS limit, then an invalid number.
select id as cc2, attempts as att2 from public.campaign_calls
where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid and status = 'dialing' limit 1 \gset
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome, sip_status_code)
select owner_id, campaign_id, id, attempts, :'f'::jsonb ->> 'e164', e164, format('cc-%s-%s', id, dials), 'sip-y', 'ST_test', 'failed', 'cps_limited', 503
from public.campaign_calls where id = :'cc2';
select internal.call_finished((select id from public.outbound_calls where campaign_call_id = :'cc2'));
select results_eq(format('select status::text, attempts from public.campaign_calls where id = %L', :'cc2'),
  format('values (''queued'', %s)', :'att2'::int - 1), 'a CPS rejection requeues the call without counting the attempt');
update public.campaign_calls set status = 'dialing', attempts = attempts + 1, dials = dials + 1 where id = :'cc2';
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome, sip_status_code)
select owner_id, campaign_id, id, attempts, :'f'::jsonb ->> 'e164', e164, format('cc-%s-%s', id, dials), 'sip-z', 'ST_test', 'failed', 'not_found', 404
from public.campaign_calls where id = :'cc2';
select internal.call_finished((select id from public.outbound_calls where campaign_call_id = :'cc2' and outcome = 'not_found'));
select is((select status::text from public.campaign_calls where id = :'cc2'), 'failed', 'an invalid number is never retried');

select * from finish();
rollback;
