-- Event webhooks: events written with their facts (sequence per call, campaign and number),
-- fanned out to subscribed endpoints, one ordered lane per endpoint with retries, disabling and
-- replays, secrets only in Vault, and RLS as anon, owner and stranger.
begin;
select plan(51);

select tests.create_owner_fixture('events-owner@example.com') as f \gset
select tests.create_owner_fixture('events-stranger@example.com') as g \gset
-- call-report adds outbound_calls.disposition; the trigger reads it whenever it exists.
alter table public.outbound_calls add column if not exists disposition text;

select has_table('public', 'webhook_endpoints', 'endpoints are a table the owner reads');
select has_table('public', 'webhook_deliveries', 'deliveries are a table the owner reads');
select has_table('internal', 'events', 'the event outbox is private');
select is((select count(*)::int from information_schema.columns
           where table_schema = 'public' and table_name in ('webhook_endpoints', 'webhook_deliveries')
             and column_name ~ 'secret'), 0, 'no exposed column holds a secret');

select id as ep from internal.create_webhook_endpoint((:'f'::jsonb ->> 'user')::uuid,
  'https://hooks.example.com/voice', null, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') \gset
select id as ep_ended from internal.create_webhook_endpoint((:'f'::jsonb ->> 'user')::uuid,
  'https://hooks.example.com/ended', '{call.ended}', 'whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtdGVzdA==') \gset
select id as ep_stranger from internal.create_webhook_endpoint((:'g'::jsonb ->> 'user')::uuid,
  'https://hooks.example.org/voice', null, 'whsec_c3RyYW5nZXItc2VjcmV0LXN0cmFuZ2VyLXNlY3I=') \gset
select is((select decrypted_secret from vault.decrypted_secrets where name = 'webhook_secret:' || :'ep'),
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'the signing secret is in Vault');

-- Calls ---------------------------------------------------------------------------------------
insert into public.outbound_calls (owner_id, assistant_id, phone_number_id, from_number, to_number, room_name,
  participant_identity, outbound_trunk_id)
values ((:'f'::jsonb ->> 'user')::uuid, (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid,
  :'f'::jsonb ->> 'e164', '+12125550123', 'events-room-1', 'sip-events-1', 'ST_events')
returning id as call \gset
select is((select count(*)::int from internal.events where call_id = :'call' and type = 'call.started'), 1,
  'an inserted call is call.started');
select is((select count(*)::int from public.webhook_deliveries where endpoint_id = :'ep'), 1,
  'queued for the endpoint that takes every type');
select is((select count(*)::int from public.webhook_deliveries where endpoint_id = :'ep_ended'), 0,
  'not for an endpoint that takes only call.ended');
select is((select count(*)::int from public.webhook_deliveries where endpoint_id = :'ep_stranger'), 0,
  'never for another user''s endpoint');

update public.outbound_calls set checked_at = now() where id = :'call';
select is((select count(*)::int from internal.events where call_id = :'call'), 1,
  'an update that changes nothing a customer hears of writes no event');
update public.outbound_calls set status = 'in_progress', answered_at = now() where id = :'call';
update public.outbound_calls set status = 'completed', outcome = 'answered', ended_at = now(), duration_sec = 42
  where id = :'call';
update public.outbound_calls set disposition = 'completed' where id = :'call';
select results_eq(
  format('select type, sequence from internal.events where call_id = %L order by id', :'call'),
  $$values ('call.started', 1), ('call.answered', 2), ('call.ended', 3), ('call.reported', 4)$$,
  'a call''s events in order, numbered from 1');
select is((select data ->> 'sequence' from internal.events where call_id = :'call' and type = 'call.ended'), '3',
  'data.sequence carries the number');
select is((select data ->> 'durationSec' from internal.events where call_id = :'call' and type = 'call.ended'), '42',
  'call.ended carries the outcome and duration');
select is((select data ->> 'disposition' from internal.events where call_id = :'call' and type = 'call.reported'),
  'completed', 'call.reported carries the disposition');
select results_eq(
  format('select event_type from public.webhook_deliveries where endpoint_id = %L', :'ep_ended'),
  $$values ('call.ended')$$, 'the call.ended endpoint got exactly that');

insert into public.outbound_calls (owner_id, from_number, to_number, room_name, participant_identity, outbound_trunk_id)
values ((:'f'::jsonb ->> 'user')::uuid, '+14155550100', '+12125550124', 'events-room-2', 'sip-events-2', 'ST_events')
returning id as undialed \gset
delete from public.outbound_calls where id = :'undialed';
select is((select data ->> 'outcome' from internal.events where call_id = :'undialed' and type = 'call.ended'),
  'not_dialed', 'a call withdrawn before its dial ends as not_dialed');

-- Campaigns and numbers ---------------------------------------------------------------------------
update public.campaigns set status = 'running' where id = (:'f'::jsonb ->> 'campaign')::uuid;
select internal.pause_campaign((:'f'::jsonb ->> 'campaign')::uuid, 'paused by the failure breaker: test');
select results_eq(
  format('select type, sequence, data ->> ''statusReason'' from internal.events where campaign_id = %L and call_id is null order by id',
    :'f'::jsonb ->> 'campaign'),
  $$values ('campaign.started', 1, null), ('campaign.paused', 2, 'paused by the failure breaker: test')$$,
  'campaign.started, then campaign.paused with its reason');
update public.phone_number set trunk_status = 'ready' where id = (:'f'::jsonb ->> 'number')::uuid;
update public.phone_number set trunk_status = 'error', trunk_error = 'LiveKit rejected the address'
  where id = (:'f'::jsonb ->> 'number')::uuid;
select results_eq(
  format('select type, data ->> ''trunkError'' from internal.events where subject = %L order by sequence',
    'number:' || (:'f'::jsonb ->> 'number')),
  $$values ('number.ready', null), ('number.error', 'LiveKit rejected the address')$$,
  'number.ready and number.error with the error');

-- RLS ---------------------------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok('select * from public.webhook_endpoints', '42501', null, 'anon cannot read endpoints');
select throws_ok('select * from public.webhook_deliveries', '42501', null, 'anon cannot read deliveries');
select tests.clear_authentication();

select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select is((select count(*)::int from public.webhook_endpoints), 2, 'the owner sees exactly their endpoints');
select is((select count(*)::int from public.webhook_deliveries),
  (select count(*)::int from public.webhook_deliveries where endpoint_id in (:'ep', :'ep_ended')),
  'the owner sees their deliveries');
select throws_ok(format($$update public.webhook_endpoints set url = 'https://evil.example/' where id = %L$$, :'ep'),
  '42501', null, 'the owner cannot change the URL around the function''s checks');
select throws_ok($$insert into public.webhook_endpoints (url) values ('https://hooks.example.com/x')$$,
  '42501', null, 'endpoints are created only by the function (which makes the secret)');
select throws_ok('select * from internal.events', '42501', null, 'the outbox is not readable');
select throws_ok('select * from internal.webhook_endpoint_secret', '42501', null, 'secret ids are not readable');
select throws_ok(format($$select internal.replay_webhook_events(%L)$$, :'ep_stranger'), '42501', null,
  'users cannot queue replays directly');

select tests.authenticate_as((:'g'::jsonb ->> 'user')::uuid);
select is((select count(*)::int from public.webhook_endpoints where owner_id = (:'f'::jsonb ->> 'user')::uuid), 0,
  'a stranger sees none of the owner''s endpoints');
select is((select count(*)::int from public.webhook_deliveries where owner_id = (:'f'::jsonb ->> 'user')::uuid), 0,
  'a stranger sees none of the owner''s deliveries');
select is_empty(format($$update public.webhook_endpoints set enabled = false where id = %L returning id$$, :'ep'),
  'a stranger cannot disable the owner''s endpoint');
select is_empty(format($$delete from public.webhook_endpoints where id = %L returning id$$, :'ep'),
  'a stranger cannot delete the owner''s endpoint');
select tests.clear_authentication();

-- Delivery lanes -----------------------------------------------------------------------------------
select gen_random_uuid() as run \gset
select is((select jsonb_array_length(deliveries) from internal.claim_webhook_lanes(:'run', 8, :'ep')),
  (select count(*)::int from public.webhook_deliveries where endpoint_id = :'ep'),
  'a claim hands out the endpoint''s pending deliveries');
select is_empty(format($$select * from internal.claim_webhook_lanes(gen_random_uuid(), 8, %L)$$, :'ep'),
  'a leased lane is nobody else''s');
select is(internal.record_webhook_attempt(:'run',
    (select min(id) from public.webhook_deliveries where endpoint_id = :'ep'), false, 500, null, 12), false,
  'a failed attempt stops the lane');
select ok((select retry_at > now() and lease_owner is null from internal.webhook_lane where endpoint_id = :'ep'),
  'the lane waits for the retry and is given back');
select is_empty(format($$select * from internal.claim_webhook_lanes(gen_random_uuid(), 8, %L)$$, :'ep'),
  'nothing overtakes the head while it waits');
update internal.webhook_lane set retry_at = now() where endpoint_id = :'ep';
select gen_random_uuid() as run2 \gset
select is((select (deliveries -> 0 ->> 'attemptCount')::int from internal.claim_webhook_lanes(:'run2', 8, :'ep')), 1,
  'the head comes back first, with its attempt counted');
select is(internal.record_webhook_attempt(:'run2',
    (select min(id) from public.webhook_deliveries where endpoint_id = :'ep'), true, 204, null, 9), true,
  'a success lets the lane go on');
select is((select failing_since from public.webhook_endpoints where id = :'ep'), null,
  'a success clears the failure clock');

update public.webhook_endpoints set failing_since = now() - interval '25 hours' where id = :'ep';
update internal.webhook_lane set lease_owner = null, lease_until = null where endpoint_id = :'ep';
select gen_random_uuid() as run3 \gset
select endpoint_id from internal.claim_webhook_lanes(:'run3', 8, :'ep');
select internal.record_webhook_attempt(:'run3',
  (select min(id) from public.webhook_deliveries where endpoint_id = :'ep' and status = 'pending'), false, null,
  'could not deliver: connection refused', 3);
select matches((select disabled_reason from public.webhook_endpoints where id = :'ep' and not enabled),
  'no delivery succeeded since .*connection refused', 'a day of failures disables the endpoint with the reason');
select is_empty(format($$select * from internal.claim_webhook_lanes(gen_random_uuid(), 8, %L)$$, :'ep'),
  'a disabled endpoint is not sent to');
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
update public.webhook_endpoints set enabled = true where id = :'ep';
select tests.clear_authentication();
select ok((select enabled and disabled_reason is null and failing_since is null from public.webhook_endpoints
           where id = :'ep'), 'the owner re-enables it and the failure clock restarts');

insert into public.outbound_calls (owner_id, from_number, to_number, room_name, participant_identity, outbound_trunk_id)
values ((:'g'::jsonb ->> 'user')::uuid, '+14155550100', '+12125550125', 'events-room-3', 'sip-events-3', 'ST_events');
update public.webhook_deliveries set attempt_count = 9 where endpoint_id = :'ep_stranger';
select gen_random_uuid() as run4 \gset
select endpoint_id from internal.claim_webhook_lanes(:'run4', 8, :'ep_stranger');
select internal.record_webhook_attempt(:'run4',
  (select min(id) from public.webhook_deliveries where endpoint_id = :'ep_stranger'), false, 502, null, 5);
select is((select status from public.webhook_deliveries where endpoint_id = :'ep_stranger'), 'failed',
  'a delivery whose whole schedule failed is given up');
select ok((select retry_at <= now() from internal.webhook_lane where endpoint_id = :'ep_stranger'),
  'and the next one may go at once');
insert into public.outbound_calls (owner_id, from_number, to_number, room_name, participant_identity, outbound_trunk_id)
values ((:'g'::jsonb ->> 'user')::uuid, '+14155550100', '+12125550126', 'events-room-4', 'sip-events-4', 'ST_events');
select gen_random_uuid() as run5 \gset
select endpoint_id from internal.claim_webhook_lanes(:'run5', 8, :'ep_stranger');
select internal.record_webhook_attempt(:'run5',
  (select min(id) from public.webhook_deliveries where endpoint_id = :'ep_stranger' and status = 'pending'),
  false, 410, null, 5, null, true);
select matches((select disabled_reason from public.webhook_endpoints where id = :'ep_stranger' and not enabled),
  '410 Gone', 'a 410 Gone disables the endpoint at once');
select is((select count(*)::int from public.webhook_deliveries where endpoint_id = :'ep_stranger' and status = 'pending'),
  1, 'its deliveries stay queued for when it is enabled again');

-- Replays, secrets and jobs -----------------------------------------------------------------------------
select is((internal.replay_webhook_events(:'ep', null, :'call') ->> 'queued')::int, 4,
  'a replay of the call queues its four events');
select results_eq(
  format('select event_id from public.webhook_deliveries where endpoint_id = %L and replay order by id', :'ep'),
  format('select event_id from internal.events where call_id = %L order by id', :'call'),
  'with their original ids, in order');
delete from public.webhook_endpoints where id = :'ep_ended';
select is((select count(*)::int from vault.secrets where name = 'webhook_secret:' || :'ep_ended'), 0,
  'a deleted endpoint''s secret leaves Vault');
select internal.schedule_jobs();
select is((select command from cron.job where jobname = 'webhook-deliver'), 'select internal.sweep_webhooks()',
  'pg_cron sweeps webhook deliveries');
select is((select count(*)::int from cron.job where jobname in ('provisioning-sweep', 'campaign-tick', 'cleanup')), 3,
  'and every earlier job is still scheduled');

select * from finish();
rollback;
