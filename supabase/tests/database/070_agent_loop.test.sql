-- The agent loop's SQL: dispositions as outcomes, voicemail and callbacks, opt-outs, reports'
-- idempotency and replacement, the one import path, and the compliance record under RLS.
begin;
select plan(32);

select tests.create_owner_fixture('agent-loop@example.com') as f \gset
update public.phone_number set trunk_status = 'ready', outbound_trunk_id = 'ST_loop', carrier_trunk = 'loop.pstn.twilio.com'
where id = (:'f'::jsonb ->> 'number')::uuid;
update public.campaigns set window_start = '00:00', window_end = '23:59:59', weekdays = '{1,2,3,4,5,6,7}',
  max_attempts = 3, retry_voicemail_sec = 60, retry_backoff = 2, status = 'running'
where id = (:'f'::jsonb ->> 'campaign')::uuid;

-- A helper: the contact's current dial, answered and ended (as the dial's answer and the
-- participant's leave record it), then settled.
create function pg_temp.answered_call(cc uuid) returns uuid language plpgsql as $$
declare
  id uuid;
begin
  update public.campaign_calls set status = 'in_progress', attempts = attempts + 1, dials = dials + 1 where campaign_calls.id = cc;
  insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
    room_name, participant_identity, outbound_trunk_id, status, outcome, answered_at, ended_at, dialed_at)
  select x.owner_id, x.campaign_id, x.id, x.attempts, '+14155550100', x.e164, format('cc-%s-%s', x.id, x.dials),
    format('sip-cc-%s-%s', x.id, x.dials), 'ST_loop', 'completed', 'answered', now(), now(), now()
  from public.campaign_calls x where x.id = cc
  returning outbound_calls.id into id;
  perform internal.call_finished(id);
  return id;
end $$;

-- Schema -----------------------------------------------------------------------------------------
select has_column('public', 'campaigns', 'retry_voicemail_sec', 'campaigns have a voicemail retry delay');
select throws_ok(format($$update public.campaigns set retry_voicemail_sec = -1 where id = %L$$, :'f'::jsonb ->> 'campaign'),
  '23514', null, 'a negative voicemail delay is refused');
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select lives_ok(format($$update public.campaigns set retry_voicemail_sec = 120 where id = %L$$, :'f'::jsonb ->> 'campaign'),
  'the owner sets the voicemail delay');
select tests.clear_authentication();
update public.campaigns set retry_voicemail_sec = 60 where id = (:'f'::jsonb ->> 'campaign')::uuid;
select is((select array_agg(outcome order by outcome) from internal.call_outcome where reportable),
  array['callback', 'completed', 'failed', 'not_interested', 'opted_out', 'transferred', 'voicemail',
        'voicemail_left', 'wrong_person'],
  'every disposition the agent may report is a row of the outcome table');

-- Voicemail after the call settled -----------------------------------------------------------------
select id as cc from public.campaign_calls where campaign_id = (:'f'::jsonb ->> 'campaign')::uuid \gset
select pg_temp.answered_call(:'cc') as call1 \gset
select is((select status::text from public.campaign_calls where id = :'cc'), 'completed',
  'an answered call settles its contact as completed');
select is((select internal.report_call(:'call1', 'voicemail', null, null, null, 'agent') -> 'campaignCall' ->> 'status'),
  'queued', 'a voicemail report after the call settled queues the contact again');
select is((select next_attempt_at from public.campaign_calls where id = :'cc'), now() + interval '60 seconds',
  'after retry_voicemail_sec');
select is((select last_outcome from public.campaign_calls where id = :'cc'), 'voicemail', 'the disposition is the outcome shown');
select is((select internal.report_call(:'call1', 'voicemail', null, null, null, 'agent') ->> 'duplicate'), 'true',
  'the same report again is a repeat');
select is((select count(*)::int from public.call_reports where call_id = :'call1'), 1, 'stored once');
select is((select internal.report_call(:'call1', 'voicemail_left', null, 'left a message', null, 'agent') -> 'campaignCall' ->> 'status'),
  'completed', 'a later report replaces the earlier one while the contact is not final');
select is((select internal.report_call(:'call1', 'not_interested', null, null, null, 'agent') ->> 'error'), 'final',
  'but not once it is final');
select is((select disposition from public.outbound_calls where id = :'call1'), 'voicemail_left', 'the call keeps its disposition');

-- The second attempt's voicemail waits twice as long (retry_backoff).
update public.campaign_calls set status = 'queued', completed_at = null where id = :'cc';
select pg_temp.answered_call(:'cc') as call2 \gset
select internal.report_call(:'call2', 'voicemail', null, null, null, 'agent');
select is((select next_attempt_at from public.campaign_calls where id = :'cc'), now() + interval '120 seconds',
  'the voicemail delay grows by retry_backoff per attempt');
select internal.report_call(:'call1', 'completed', null, null, null, 'service');
select is((select status::text from public.campaign_calls where id = :'cc'), 'queued',
  'a report on an earlier dial does not move the contact');

-- A live call: the report waits for the end.
update public.campaign_calls set status = 'in_progress', dials = dials + 1, attempts = attempts + 1 where id = :'cc';
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome, answered_at)
select owner_id, campaign_id, id, attempts, '+14155550100', e164, format('cc-%s-%s', id, dials), 'sip-live', 'ST_loop',
  'in_progress', 'answered', now()
from public.campaign_calls where id = :'cc' returning id as call3 \gset
select is((select internal.report_call(:'call3', 'wrong_person', null, null, null, 'agent') -> 'campaignCall' ->> 'status'),
  'in_progress', 'a report on a live call changes nothing yet');
update public.outbound_calls set status = 'completed', ended_at = now() where id = :'call3';
select internal.call_finished(:'call3');
select results_eq(format('select status::text, last_outcome from public.campaign_calls where id = %L', :'cc'),
  $$values ('completed', 'wrong_person')$$, 'the call''s end settles the contact by the report');

-- An unanswered call: its SIP outcome decides, whatever was reported.
insert into public.campaign_calls (owner_id, campaign_id, e164)
values ((:'f'::jsonb ->> 'user')::uuid, (:'f'::jsonb ->> 'campaign')::uuid, '+14155550200') returning id as ccb \gset
update public.campaign_calls set status = 'dialing', attempts = 1, dials = 1 where id = :'ccb';
insert into public.outbound_calls (owner_id, campaign_id, campaign_call_id, attempt, from_number, to_number,
  room_name, participant_identity, outbound_trunk_id, status, outcome)
select owner_id, campaign_id, id, 1, '+14155550100', e164, format('cc-%s-1', id), 'sip-busy', 'ST_loop', 'busy', 'busy'
from public.campaign_calls where id = :'ccb' returning id as callb \gset
select internal.call_finished(:'callb');
select internal.report_call(:'callb', 'completed', null, null, null, 'agent');
select results_eq(format('select status::text, last_outcome from public.campaign_calls where id = %L', :'ccb'),
  $$values ('queued', 'busy')$$, 'a report on an unanswered call does not decide');

-- Opt-out ------------------------------------------------------------------------------------------
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id)
values ((:'f'::jsonb ->> 'user')::uuid, 'Other', (:'f'::jsonb ->> 'assistant')::uuid, (:'f'::jsonb ->> 'number')::uuid)
returning id as other \gset
insert into public.campaign_calls (owner_id, campaign_id, e164)
values ((:'f'::jsonb ->> 'user')::uuid, :'other', '+14155550999');
select internal.report_call(:'call3', 'opted_out', null, 'please stop', null, 'agent');
select results_eq(
  format($$select call_id, reason ~ 'please stop' from public.do_not_call where owner_id = %L and e164 = '+14155550999'$$,
         :'f'::jsonb ->> 'user'),
  format($$values (%L::uuid, true)$$, :'call3'), 'an opt-out reaches the do-not-call list with its call and reason');
select results_eq(format($$select status::text, last_outcome from public.campaign_calls where campaign_id = %L$$, :'other'),
  $$values ('skipped', 'do_not_call')$$, 'and every other campaign of the owner drops the number');

-- Callbacks ------------------------------------------------------------------------------------------
update public.campaigns set window_start = '09:00', window_end = '17:00', weekdays = '{1,2,3,4,5}'
where id = (:'f'::jsonb ->> 'campaign')::uuid;
insert into public.campaign_calls (owner_id, campaign_id, e164, timezone)
values ((:'f'::jsonb ->> 'user')::uuid, (:'f'::jsonb ->> 'campaign')::uuid, '+16025550300', 'America/Phoenix')
returning id as ccc \gset
select pg_temp.answered_call(:'ccc') as callc \gset
-- Saturday 03:00 in Phoenix, next week; the window opens again on the Monday after, 09:00.
select (date_trunc('week', now() at time zone 'America/Phoenix') + interval '12 days 3 hours') at time zone 'America/Phoenix' as saturday,
       (date_trunc('week', now() at time zone 'America/Phoenix') + interval '14 days 9 hours') at time zone 'America/Phoenix' as monday \gset
select is((select (internal.report_call(:'callc', 'callback', :'saturday', null, null, 'agent') -> 'campaignCall' ->> 'nextAttemptAt')::timestamptz),
  :'monday'::timestamptz, 'a callback outside the window moves to its next opening in the callee''s zone');
select is((select last_outcome from public.campaign_calls where id = :'ccc'), 'callback', 'shown as a callback');
select is((select attempts from public.campaign_calls where id = :'ccc'), 1, 'the attempt counts once');

insert into public.campaign_calls (owner_id, campaign_id, e164, timezone)
values ((:'f'::jsonb ->> 'user')::uuid, (:'f'::jsonb ->> 'campaign')::uuid, '+16025550301', 'America/Phoenix')
returning id as ccd \gset
update public.campaigns set ends_at = :'monday'::timestamptz - interval '1 hour' where id = (:'f'::jsonb ->> 'campaign')::uuid;
update public.campaign_calls set status = 'queued', next_attempt_at = now() where id = :'ccd';
select pg_temp.answered_call(:'ccd') as calld \gset
select is((select internal.report_call(:'calld', 'callback', :'saturday', null, null, 'agent') ->> 'error'), 'past_campaign_end',
  'a callback the window pushes past the campaign''s end is refused');
select is((select count(*)::int from public.call_reports where call_id = :'calld'), 0, 'and not stored');

-- One import path -----------------------------------------------------------------------------------
insert into public.campaigns (owner_id, name, assistant_id)
values ((:'f'::jsonb ->> 'user')::uuid, 'Import', (:'f'::jsonb ->> 'assistant')::uuid) returning id as imp \gset
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select is(public.add_campaign_calls(:'imp', $$[
    {"phoneNumber": "(415) 555-0123", "name": "Ada", "variables": {"plan": "gold"}},
    {"phoneNumber": "+1 415 555 0123"},
    {"phoneNumber": "+14155550998"},
    {"phoneNumber": ""},
    {"phoneNumber": "12"},
    "not an object",
    {"phoneNumber": "+14155550124", "timezone": "Mars/Olympus", "row": 40}
  ]$$::jsonb) - 'rejected',
  '{"added": 1, "duplicates": 1, "skipped": 1}'::jsonb, 'the RPC counts added, duplicate and skipped contacts');
select is((select jsonb_agg(r - 'phoneNumber') from jsonb_array_elements(internal.import_contacts(:'imp', $$[
    {"phoneNumber": ""}, {"phoneNumber": "12"}, 7, {"phoneNumber": "+14155550124", "timezone": "Mars/Olympus", "row": 40}
  ]$$::jsonb) -> 'rejected') r),
  $$[{"index": 0, "row": 1, "reason": "no phone number"}, {"index": 1, "row": 2, "reason": "not a valid phone number"},
     {"index": 2, "row": 3, "reason": "not a JSON object"}, {"index": 3, "row": 40, "reason": "unknown time zone"}]$$::jsonb,
  'rejections name their row and reason');
select is((select variables from public.campaign_calls where campaign_id = :'imp' and e164 = '+14155550123'),
  '{"plan": "gold"}'::jsonb, 'variables are stored with the contact');
select throws_ok(format($$select public.add_campaign_calls(%L, (select jsonb_agg('{}'::jsonb) from generate_series(1, 10001)))$$, :'imp'),
  '22023', null, 'the RPC takes at most 10,000 contacts per call');

-- The compliance record, under RLS ------------------------------------------------------------------
select results_eq(format($$select callee_timezone, timezone_source, on_dnc_list, destination_country, destination_allowed, inside_window
  from public.dial_compliance where call_id = %L$$, :'call1'),
  $$values ('America/Los_Angeles', 'number', false, 'US', true, true)$$,
  'the owner reads each dial''s zone, window, do-not-call answer and destination decision');
select tests.clear_authentication();
select tests.create_user('agent-loop-stranger@example.com') as stranger \gset
select tests.authenticate_as(:'stranger');
select is((select count(*)::int from public.dial_compliance), 0, 'another user sees no compliance records');
select is((select count(*)::int from public.call_reports), 0, 'nor reports');
select tests.clear_authentication();

select * from finish();
rollback;
