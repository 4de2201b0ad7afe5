-- Row level security as anon, as the owner and as another user.
begin;
select plan(22);

select tests.create_owner_fixture('owner@example.com') as f \gset
select tests.create_owner_fixture('stranger@example.com') as g \gset

-- anon ------------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok('select * from public.assistant', '42501', null, 'anon cannot read assistants');
select throws_ok('select * from public.phone_number', '42501', null, 'anon cannot read numbers');
select throws_ok('select * from public.campaign_calls', '42501', null, 'anon cannot read campaign calls');
select throws_ok('select * from public.outbound_calls', '42501', null, 'anon cannot read calls');
select throws_ok($$insert into public.assistant (name, agent_name) values ('x', 'y')$$, '42501', null,
  'anon cannot create assistants');
select tests.clear_authentication();

-- the owner ------------------------------------------------------------------------------
select tests.authenticate_as((:'f'::jsonb ->> 'user')::uuid);
select is((select count(*)::int from public.assistant), 1, 'the owner sees exactly their assistant');
select is((select count(*)::int from public.phone_number), 1, 'the owner sees exactly their number');
select is((select count(*)::int from public.campaign_calls), 1, 'the owner sees exactly their campaign calls');
select is((select count(*)::int from public.do_not_call), 1, 'the owner sees exactly their do-not-call list');
select lives_ok(format($$update public.phone_number set label = 'Sales' where id = %L$$, :'f'::jsonb ->> 'number'),
  'the owner can label their number');
select is((select label from public.phone_number where id = (:'f'::jsonb ->> 'number')::uuid), 'Sales',
  'the label was changed');
select throws_ok(format($$update public.phone_number set outbound_trunk_id = 'ST_x' where id = %L$$, :'f'::jsonb ->> 'number'),
  '42501', null, 'the owner cannot write trunk ids (only provisioning does)');
select lives_ok($$insert into public.assistant (name, agent_name) values ('Second', 'second-agent')$$,
  'the owner can create an assistant (owner_id defaults to them)');

-- the stranger ------------------------------------------------------------------------------
select tests.authenticate_as((:'g'::jsonb ->> 'user')::uuid);
select is((select count(*)::int from public.assistant where id = (:'f'::jsonb ->> 'assistant')::uuid), 0,
  'another user cannot read the owner''s assistant');
select is((select count(*)::int from public.campaigns where id = (:'f'::jsonb ->> 'campaign')::uuid), 0,
  'another user cannot read the owner''s campaign');
select is_empty(format($$update public.phone_number set label = 'stolen' where id = %L returning id$$, :'f'::jsonb ->> 'number'),
  'another user cannot change the owner''s number');
select is_empty(format($$delete from public.assistant where id = %L returning id$$, :'f'::jsonb ->> 'assistant'),
  'another user cannot delete the owner''s assistant');
select throws_ok(format($$insert into public.assistant (owner_id, name, agent_name) values (%L, 'x', 'y')$$, :'f'::jsonb ->> 'user'),
  '42501', null, 'another user cannot create rows owned by the owner');
select throws_ok(format($$insert into public.campaign_calls (campaign_id, e164) values (%L, '+14155550111')$$, :'f'::jsonb ->> 'campaign'),
  '23503', null, 'another user cannot add calls to the owner''s campaign');

-- internals ------------------------------------------------------------------------------------
select throws_ok('select * from internal.provisioning_job', '42501', null,
  'authenticated cannot read the provisioning outbox');
select throws_ok('select * from internal.sip_trunk', '42501', null,
  'authenticated cannot read SIP trunk metadata');
select throws_ok('select * from vault.decrypted_secrets', '42501', null,
  'authenticated cannot read Vault');
select tests.clear_authentication();

select * from finish();
rollback;
