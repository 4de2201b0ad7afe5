-- A campaign's start and end time bound it: past ends_at nothing more is dialed, what waits ends
-- with a visible reason, live calls finish without a retry, and the campaign completes (once,
-- with campaign.completed and its reason); before starts_at it never completes. Refusals a user
-- meets through REST name their columns and map to PostgREST's 4xx. Every time is relative to
-- now() (the transaction's start), never a calendar date.
begin;
select plan(29);

-- A ready number, as provisioning would leave it.
select tests.create_ready_fixture('bounds@example.com', 'ST_bounds', 'bounds.pstn.twilio.com') as f \gset

-- Past its end ------------------------------------------------------------------------------------
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, starts_at, ends_at,
  window_start, window_end, weekdays)
values ((:'f'::jsonb ->> 'user')::uuid, 'Ended', (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid,
  'running', now() - interval '2 hours', now() - interval '1 minute', '00:00', '23:59:59', '{1,2,3,4,5,6,7}')
returning id as ended \gset
insert into public.campaign_calls (owner_id, campaign_id, e164)
select (:'f'::jsonb ->> 'user')::uuid, :'ended', n
from unnest(array['+12125550401', '+12125550402', '+12125550403', '+12125550404']) n;
-- Before the end: one callee was claimed (its call is live), one was busy and waits for a retry.
update public.campaign_calls set status = 'dialing', attempts = 1, dials = 1, lease_until = now() + interval '2 minutes'
where campaign_id = :'ended' and e164 = '+12125550403';
update public.campaign_calls set attempts = 1, dials = 1, last_outcome = 'busy', next_attempt_at = now()
where campaign_id = :'ended' and e164 = '+12125550404';

select is((select count(*)::int from internal.claim_calls(:'ended', 10, gen_random_uuid())), 0,
  'past its end a campaign''s due callees are not claimed');
select results_eq(
  format($$select status::text, last_outcome, last_error from public.campaign_calls
           where campaign_id = %L and e164 in ('+12125550401', '+12125550402') order by e164$$, :'ended'),
  $$values ('skipped', 'campaign_ended', 'not called: the campaign ended'),
           ('skipped', 'campaign_ended', 'not called: the campaign ended')$$,
  'callees never called end skipped, with the reason');
select results_eq(
  format($$select status::text, last_outcome, last_error from public.campaign_calls where campaign_id = %L and e164 = '+12125550404'$$, :'ended'),
  $$values ('busy', 'busy', 'not called again: the campaign ended')$$,
  'a callee waiting for a retry ends with its last call''s status and the reason');
select is((select status::text from public.campaign_calls where campaign_id = :'ended' and e164 = '+12125550403'), 'dialing',
  'a live call is left to finish');
select is((select status::text from public.campaigns where id = :'ended'), 'running', 'so the campaign is still running');
select is((select count(*)::int from internal.events where campaign_id = :'ended' and type = 'campaign.completed'), 0,
  'and has not completed yet');

-- The live call ends busy: no retry past the end, and the campaign completes.
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome, sip_status_code, ended_at)
select owner_id, campaign_id, id, attempts, :'f'::jsonb ->> 'e164', e164, format('cc-%s-%s', id, dials), 'sip-bounds',
  'ST_bounds', 'busy', 'busy', 486, now()
from public.campaign_calls where campaign_id = :'ended' and e164 = '+12125550403';
select internal.call_finished((select id from public.outbound_calls where to_number = '+12125550403' and campaign_id = :'ended'));
select results_eq(
  format($$select status::text, last_outcome, last_error ~ 'campaign ends before the next attempt'
           from public.campaign_calls where campaign_id = %L and e164 = '+12125550403'$$, :'ended'),
  $$values ('busy', 'busy', true)$$,
  'the live call finishes normally, not retried after the end, with the reason');
select is((select status::text from public.campaigns where id = :'ended'), 'completed',
  'with nothing live the campaign completes');
select matches((select status_reason from public.campaigns where id = :'ended'),
  '^ended at its end time \(ends_at .+ UTC\): 3 contacts still waiting were not called$',
  'its status_reason says it ended at its end time and how many contacts were cut off');
select is((select status_reason from public.campaign_progress where campaign_id = :'ended'),
  (select status_reason from public.campaigns where id = :'ended'), 'which campaign_progress shows');
select is((select count(*)::int from internal.events where campaign_id = :'ended' and type = 'campaign.completed'), 1,
  'campaign.completed is queued');
select results_eq(
  format($$select data ->> 'status', data ->> 'statusReason' is not null, (data -> 'calls' ->> 'skipped')::int,
           (data -> 'calls' ->> 'busy')::int, (data -> 'calls' ->> 'total')::int
           from internal.events where campaign_id = %L and type = 'campaign.completed'$$, :'ended'),
  $$values ('completed', true, 2, 2, 4)$$,
  'with the reason and the contacts'' final counts');
select is((select count(*)::int from internal.claim_calls(:'ended', 10, gen_random_uuid())), 0, 'a later claim dials nothing');
select is(internal.maybe_complete(:'ended'), false, 'a later completion check changes nothing');
select is((select count(*)::int from internal.events where campaign_id = :'ended' and type = 'campaign.completed'), 1,
  'and campaign.completed is sent once');

-- A retry that would fall after the end is not scheduled, while the campaign still runs.
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, ends_at, window_start, window_end,
  weekdays, retry_busy_sec)
values ((:'f'::jsonb ->> 'user')::uuid, 'Ending', (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid,
  'running', now() + interval '5 minutes', '00:00', '23:59:59', '{1,2,3,4,5,6,7}', 600)
returning id as ending \gset
insert into public.campaign_calls (owner_id, campaign_id, e164)
values ((:'f'::jsonb ->> 'user')::uuid, :'ending', '+12125550405'), ((:'f'::jsonb ->> 'user')::uuid, :'ending', '+12125550406');
update public.campaign_calls set status = 'dialing', attempts = 1, dials = 1 where campaign_id = :'ending' and e164 = '+12125550405';
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome, ended_at)
select owner_id, campaign_id, id, attempts, :'f'::jsonb ->> 'e164', e164, format('cc-%s-%s', id, dials), 'sip-ending',
  'ST_bounds', 'no_answer', 'no_answer', now()
from public.campaign_calls where campaign_id = :'ending' and e164 = '+12125550405';
select internal.call_finished((select id from public.outbound_calls where campaign_id = :'ending'));
select results_eq(
  format($$select status::text, last_error from public.campaign_calls where campaign_id = %L and e164 = '+12125550405'$$, :'ending'),
  $$values ('no_answer', 'not called again: the campaign ends before the next attempt')$$,
  'a retry that would come after ends_at is not scheduled: the contact ends now, saying why');
select is((select status::text from public.campaigns where id = :'ending'), 'running',
  'the campaign runs on for what is still queued');

-- Before its start ---------------------------------------------------------------------------------
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, starts_at)
values ((:'f'::jsonb ->> 'user')::uuid, 'Later', (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid,
  'running', now() + interval '1 hour')
returning id as later \gset
select is(internal.maybe_complete(:'later'), false, 'a campaign with no contacts does not complete before starts_at');
select is((select count(*)::int from internal.claim_calls(:'later', 10, gen_random_uuid())), 0, 'nor is it claimed');
select is((select status::text from public.campaigns where id = :'later'), 'running', 'it waits, running');
update public.campaigns set starts_at = now() - interval '1 second' where id = :'later';
select is(internal.maybe_complete(:'later'), true, 'once started with no contacts it completes');
select is((select status_reason from public.campaigns where id = :'later'), null, 'with no reason: nothing was cut off');

-- A scheduled campaign starts running at its starts_at --------------------------------------------
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, starts_at)
values ((:'f'::jsonb ->> 'user')::uuid, 'Scheduled', (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid,
  'scheduled', now() + interval '1 hour')
returning id as scheduled \gset
select is((select count(*)::int from internal.claim_calls(:'scheduled', 10, gen_random_uuid())), 0,
  'a scheduled campaign is not claimed before starts_at');
select is((select status::text from public.campaigns where id = :'scheduled'), 'scheduled', 'it stays scheduled');
update public.campaigns set starts_at = now() - interval '1 second' where id = :'scheduled';
select lives_ok(format('select internal.claim_calls(%L, 10, gen_random_uuid())', :'scheduled'), 'a tick after starts_at');
select is((select status::text from public.campaigns where id = :'scheduled'), 'running',
  'then it is running, started by the tick');

-- Refusals a user meets through REST -----------------------------------------------------------------
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select throws_ok(format($$insert into public.campaigns (name, assistant_id, window_start, window_end)
    values ('Backwards', %L, '18:00', '09:00')$$, :'f'::jsonb ->> 'assistant'),
  '23514', 'new row for relation "campaigns" violates check constraint "window_end must be after window_start"',
  'a window ending before it starts is refused naming both columns (23514: HTTP 400)');
select throws_ok(format($$insert into public.campaigns (name, assistant_id, max_attempts) values ('Zero', %L, 0)$$,
    :'f'::jsonb ->> 'assistant'),
  '23514', 'new row for relation "campaigns" violates check constraint "max_attempts must be between 1 and 10"',
  'a setting out of range is refused naming the column and its range');
select tests.clear_authentication();
select tests.create_user('bounds-stranger@example.com') as stranger \gset
select tests.authenticate_as(:'stranger');
select throws_ok(format($$select public.add_campaign_calls(%L, '[{"phoneNumber": "+12125550499"}]')$$, :'ended'),
  'PT404', format('campaign %s does not exist', :'ended'),
  'another owner''s campaign does not exist for the import RPC (PT404: HTTP 404, as import-contacts answers)');
select tests.clear_authentication();

select * from finish();
rollback;
