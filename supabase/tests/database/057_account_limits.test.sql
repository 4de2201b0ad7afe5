-- The operator's per-account limits (internal.platform_settings) hold over all of an account's
-- campaigns: campaigns running at once, calls at once, a call's length; a campaign held back
-- says why in campaign_progress.throttle_reason.
begin;
select plan(7);

-- A ready number, as provisioning would leave it.
select tests.create_ready_fixture('limits@example.com', 'ST_limits', 'limits.pstn.twilio.com') as f \gset

insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, window_start, window_end,
  weekdays, max_concurrent, max_call_duration_sec)
select (:'f'::jsonb ->> 'user')::uuid, 'Limits ' || n, (:'f'::jsonb ->> 'assistant')::uuid,
  (:'f'::jsonb ->> 'number')::uuid, 'running', '00:00', '23:59:59', '{1,2,3,4,5,6,7}', 10, 1800
from generate_series(1, 2) n;
select id as first from public.campaigns where name = 'Limits 1' \gset
select id as second from public.campaigns where name = 'Limits 2' \gset
update public.campaigns set started_at = now() - interval '1 hour' where id = :'first';
insert into public.campaign_calls (owner_id, campaign_id, e164)
select (:'f'::jsonb ->> 'user')::uuid, c, format('+1212555%s%s', case when c = :'first'::uuid then '1' else '2' end, lpad(n::text, 3, '0'))
from unnest(array[:'first'::uuid, :'second'::uuid]) c, generate_series(1, 5) n;

update internal.platform_settings set max_running_campaigns = 1, max_concurrent_calls = 3, max_call_duration_sec = 60;

create temp table claimed as select * from internal.claim_calls(null, 100, gen_random_uuid(), 1000, 60);
select is((select count(*)::int from claimed where campaign_id = :'second'), 0,
  'past the running-campaigns limit the later-started campaign is not claimed');
select is((select count(*)::int from claimed where campaign_id = :'first'), 3,
  'the account''s calls at once stop at its limit, whatever the campaign allows');
select is((select distinct max_call_duration_sec from claimed), 60, 'a call''s length is capped by the account limit');
select matches((select throttle_reason from public.campaign_progress where campaign_id = :'second'),
  'at most 1 campaigns run at once', 'the held-back campaign says why');
select matches((select throttle_reason from public.campaign_progress where campaign_id = :'first'),
  'at most 3 calls at once', 'the capped campaign says why');
select is((select count(*)::int from internal.claim_calls(null, 100, gen_random_uuid(), 1000, 60)), 0,
  'with three calls live, a later claim takes none');

update internal.platform_settings set max_running_campaigns = null, max_concurrent_calls = null, max_call_duration_sec = null;
select is((select count(*)::int from internal.claim_calls(:'second', 100, gen_random_uuid(), 1000, 60)), 5,
  'without limits the other campaign dials');

select * from finish();
rollback;
