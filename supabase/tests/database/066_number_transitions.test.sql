-- A number's provisioning and its outbox job change only through SQL functions: assignment by
-- its owner, ready / released / failed as provisioning reports, the job claimed, closed or
-- retried with the one backoff schedule.
begin;
select plan(20);

select tests.create_owner_fixture('numbers-a@example.com') as a \gset
select tests.create_owner_fixture('numbers-b@example.com') as b \gset

select is(array[internal.provisioning_retry_sec(1), internal.provisioning_retry_sec(2),
  internal.provisioning_retry_sec(3), internal.provisioning_retry_sec(4), internal.provisioning_retry_sec(30)],
  array[10, 20, 40, 80, 3600], 'provisioning retries back off from 10 s doubling to an hour');

-- assign_number, for an owner map-number authenticated.
select is((select assistant_id from internal.assign_number((:'a'::jsonb ->> 'user')::uuid, '+12125550170', 'PN0123456789abcdef0123456789abcdef', 'Sales',
  (:'a'::jsonb ->> 'assistant')::uuid, false)), (:'a'::jsonb ->> 'assistant')::uuid,
  'an owner assigns a new number to their assistant');
select is((select trunk_status::text from public.phone_number where e164 = '+12125550170'), 'pending',
  'it is pending until provisioned');
insert into public.assistant (owner_id, name, agent_name)
values ((:'a'::jsonb ->> 'user')::uuid, 'Second', 'second-agent');
select is((select assistant_id from internal.assign_number((:'a'::jsonb ->> 'user')::uuid, '+12125550170', null, null,
  (select id from public.assistant where name = 'Second'), false)), (:'a'::jsonb ->> 'assistant')::uuid,
  'moving it to another assistant without force leaves it where it was (409)');
select is((select assistant_id from internal.assign_number((:'a'::jsonb ->> 'user')::uuid, '+12125550170', null, null,
  (select id from public.assistant where name = 'Second'), true)), (select id from public.assistant where name = 'Second'),
  'with force it moves');
select is((select label from public.phone_number where e164 = '+12125550170'), 'Sales', 'keeping its label');
select is((select count(*)::integer from internal.assign_number((:'b'::jsonb ->> 'user')::uuid, '+12125550170',
  null, null, null, true)), 0, 'another account''s number is not theirs to assign, even with force');
select throws_ok(format($$select internal.assign_number(%L, '+12125550171', null, null, %L, false)$$,
  (:'b'::jsonb ->> 'user'), (:'a'::jsonb ->> 'assistant')), '42501', null,
  'nor may a number go to another account''s assistant');
select tests.authenticate_as((:'a'::jsonb ->> 'user')::uuid);
select throws_ok(format($$select internal.assign_number(%L, '+12125550172', null, null, null, false)$$,
  (:'a'::jsonb ->> 'user')), '42501', null, 'a user cannot call it: only map-number assigns');
select tests.clear_authentication();

-- The job: claimed once, retried with the backoff, closed when nothing changed meanwhile.
create temp table job as
  select id from internal.provisioning_job where e164 = '+12125550170' and status in ('pending', 'running');
select is((select count(*)::integer from job), 1, 'the assignment wrote one open job');
select is((select attempts from internal.claim_provisioning_job((select id from job))), 1, 'a worker claims it');
select is((select count(*)::integer from internal.claim_provisioning_job((select id from job))), 0,
  'a second worker does not');
select internal.provisioning_job_failed((select id from job), 'LiveKit unreachable', false);
select ok((select run_after between now() + interval '9 seconds' and now() + interval '11 seconds'
  from internal.provisioning_job where id = (select id from job)), 'a failure retries after 10 s');
select is((select status from internal.provisioning_job where id = (select id from job)), 'pending', 'still open');
update internal.provisioning_job set run_after = now() where id = (select id from job);
create temp table seen as select generation from internal.claim_provisioning_job((select id from job));
update internal.provisioning_job set generation = generation + 1 where id = (select id from job);
select is(internal.provisioning_job_done((select id from job), (select generation from seen)), 'pending',
  'a change that arrived meanwhile keeps the job open');
select is(internal.provisioning_job_done((select id from job), (select generation + 1 from seen)), 'done',
  'otherwise it is done');

-- What provisioning made of the number.
select is((select trunk_status::text from internal.number_ready((select id from public.phone_number where e164 = '+12125550170'),
  (select id from public.assistant where name = 'Second'), null, 'ST_in', 'in', 'ST_out', 'out', 'SDR_1', 'a.pstn.twilio.com')),
  'ready', 'ready with its trunks');
select is((select trunk_status::text from internal.number_failed((select id from public.phone_number where e164 = '+12125550170'),
  'LiveKit unreachable', false)), 'ready', 'a failed re-check of a ready number keeps it usable');
select is((select trunk_status::text || ' ' || coalesce(outbound_trunk_id, '-') from internal.number_failed(
  (select id from public.phone_number where e164 = '+12125550170'), 'not in the account', true)),
  'error -', 'given up: an error, its trunks gone');
select is((select trunk_status::text from internal.number_released((select id from public.phone_number where e164 = '+12125550170'))),
  'released', 'released');

select * from finish();
rollback;
