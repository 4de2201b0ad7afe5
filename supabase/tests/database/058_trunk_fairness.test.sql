-- A busy carrier trunk's send slots are shared between accounts, not campaigns: an account with
-- ten campaigns gets no more of a claim's slots than one with a single campaign.
begin;
select plan(4);

select tests.create_ready_fixture('fair-many@example.com', 'ST_fair_a', 'fair.pstn.twilio.com') as a \gset
select tests.create_ready_fixture('fair-one@example.com', 'ST_fair_b', 'fair.pstn.twilio.com') as b \gset
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, window_start, window_end, weekdays, max_concurrent)
select (:'a'::jsonb ->> 'user')::uuid, 'Many ' || n, (:'a'::jsonb ->> 'assistant')::uuid, (:'a'::jsonb ->> 'number')::uuid,
  'running', '00:00', '23:59:59', '{1,2,3,4,5,6,7}', 50
from generate_series(1, 10) n;
insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, window_start, window_end, weekdays, max_concurrent)
values ((:'b'::jsonb ->> 'user')::uuid, 'One', (:'b'::jsonb ->> 'assistant')::uuid, (:'b'::jsonb ->> 'number')::uuid,
  'running', '00:00', '23:59:59', '{1,2,3,4,5,6,7}', 50);
insert into public.campaign_calls (owner_id, campaign_id, e164)
select c.owner_id, c.id, format('+1212%s%s', 200 + dense_rank() over (order by c.name), lpad(n::text, 4, '0'))
from public.campaigns c, generate_series(1, 10) n
where c.name like 'Many %' or c.name = 'One';
insert into public.campaign_calls (owner_id, campaign_id, e164)
select c.owner_id, c.id, format('+1646555%s', lpad(n::text, 4, '0'))
from public.campaigns c, generate_series(100, 190) n where c.name = 'One';

-- 2 calls a second over a 5 s horizon: about ten slots for over 200 due callees.
create temp table claimed as
  select * from internal.claim_calls(null, 200, gen_random_uuid(), 2, 5);
select ok((select count(*) from claimed) between 8 and 12, 'the trunk is the limit: about ten slots');
select ok(abs((select count(*) from claimed where owner_id = (:'a'::jsonb ->> 'user')::uuid)
            - (select count(*) from claimed where owner_id = (:'b'::jsonb ->> 'user')::uuid)) <= 1,
  'the account with ten campaigns and the one with one get the same share, give or take one');
select ok((select count(distinct campaign_id) from claimed where owner_id = (:'a'::jsonb ->> 'user')::uuid) > 1,
  'within an account, its campaigns take turns');

-- One account's share is gathered from as few of its campaigns as have callees due; its
-- campaigns take turns from one claim to the next.
update internal.carrier_pacing set cps = 1000, next_slot = 'epoch' where carrier_trunk = 'fair.pstn.twilio.com';
delete from internal.carrier_plan where carrier_trunk = 'fair.pstn.twilio.com';
update public.campaigns set status = 'paused' where name = 'One';
create temp table turns (campaign_id uuid);
do $$
begin
  for i in 1 .. 20 loop
    with got as (select * from internal.claim_calls(null, 5, gen_random_uuid(), 1000, 5))
    insert into turns select campaign_id from got;
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null
    where status = 'dialing';
  end loop;
end $$;
select ok((select count(distinct campaign_id) from turns) >= 3,
  'over 20 claims of 5, the account''s ten campaigns take turns');

select * from finish();
rollback;
