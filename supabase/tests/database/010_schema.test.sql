-- The core schema: tables, checks and the private schema.
begin;
select plan(16);

select has_table('public', 'assistant', 'assistants are a table');
select has_table('public', 'phone_number', 'phone_number keeps the seed''s name');
select has_column('public', 'phone_number', 'outbound_trunk_id', 'phone_number stores the outbound trunk id');
select has_column('public', 'phone_number', 'outbound_trunk_name', 'phone_number stores the outbound trunk name');
select has_table('public', 'campaigns', 'campaigns are a table');
select has_table('public', 'campaign_calls', 'campaign calls are a table');
select has_table('internal', 'provisioning_job', 'the provisioning outbox is private');
select has_table('internal', 'sip_trunk', 'SIP trunk metadata is private');

select tests.create_user('schema@example.com') as uid \gset
insert into public.assistant (id, owner_id, name, agent_name)
  values ('00000000-0000-0000-0000-0000000000a1', :'uid', 'A', 'agent');

select throws_ok(
  $$insert into public.phone_number (owner_id, e164) values ((select id from auth.users where email = 'schema@example.com'), '5551234')$$,
  '23514', null, 'a number that is not E.164 is refused');
select lives_ok(
  $$insert into public.phone_number (owner_id, e164) values ((select id from auth.users where email = 'schema@example.com'), '+14155550100')$$,
  'an E.164 number is accepted');
select throws_ok(
  $$insert into public.phone_number (owner_id, e164) values ((select id from auth.users where email = 'schema@example.com'), '+14155550100')$$,
  '23505', null, 'a number exists once');

select tests.create_user('other-schema@example.com') as other \gset
select throws_ok(
  format($$insert into public.phone_number (owner_id, e164, assistant_id) values (%L, '+14155550101', '00000000-0000-0000-0000-0000000000a1')$$, :'other'),
  '23503', null, 'a number cannot point at another owner''s assistant');

select throws_ok(
  format($$insert into public.campaigns (owner_id, name, assistant_id, default_timezone) values (%L, 'c', '00000000-0000-0000-0000-0000000000a1', 'Mars/Olympus')$$, :'uid'),
  '23514', null, 'an unknown time zone is refused');
select throws_ok(
  format($$insert into public.campaigns (owner_id, name, assistant_id, window_start, window_end) values (%L, 'c', '00000000-0000-0000-0000-0000000000a1', '21:00', '08:00')$$, :'uid'),
  '23514', null, 'a calling window must start before it ends');

delete from public.assistant where id = '00000000-0000-0000-0000-0000000000a1';
select is((select count(*)::int from public.phone_number where assistant_id is not null and owner_id = :'uid'), 0,
  'deleting an assistant leaves its numbers unassigned');
select is((select count(*)::int from public.phone_number where owner_id = :'uid'), 1,
  'deleting an assistant keeps its numbers');

select * from finish();
rollback;
