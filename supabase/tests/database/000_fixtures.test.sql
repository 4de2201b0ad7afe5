-- Test fixtures as SQL functions in a `tests` schema, committed so every other file
-- (each in its own rolled-back transaction) can use them. Runs first by name.
create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(email text) returns uuid
language sql security definer set search_path = '' as $$
  insert into auth.users (email) values (email) returning id
$$;

-- Act as a signed-in user, the way PostgREST runs a request.
create or replace function tests.authenticate_as(user_id uuid) returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims',
    json_build_object('sub', user_id, 'role', 'authenticated')::text, true);
  execute 'set local role authenticated';
end $$;

create or replace function tests.authenticate_as_anon() returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '{"role":"anon"}', true);
  execute 'set local role anon';
end $$;

create or replace function tests.clear_authentication() returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '', true);
  execute 'reset role';
end $$;

-- An owner with an assistant, an assigned number and a campaign with one call.
create or replace function tests.create_owner_fixture(email text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  uid uuid := tests.create_user(email);
  aid uuid;
  pid uuid;
  cid uuid;
  e164 text := '+1415' || lpad((floor(random() * 9000000) + 1000000)::int::text, 7, '0');
begin
  insert into public.assistant (owner_id, name, agent_name) values (uid, 'Receptionist', 'receptionist')
    returning id into aid;
  insert into public.phone_number (owner_id, e164, assistant_id) values (uid, e164, aid) returning id into pid;
  insert into public.campaigns (owner_id, name, assistant_id, phone_number_id)
    values (uid, 'Renewals', aid, pid) returning id into cid;
  insert into public.campaign_calls (owner_id, campaign_id, e164) values (uid, cid, '+14155550999');
  insert into public.do_not_call (owner_id, e164) values (uid, '+14155550998');
  return jsonb_build_object('user', uid, 'assistant', aid, 'number', pid, 'campaign', cid, 'e164', e164);
end $$;

-- The owner fixture with its number ready on a carrier trunk, as provisioning would leave it.
create or replace function tests.create_ready_fixture(email text, trunk_id text, carrier text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  f jsonb := tests.create_owner_fixture(email);
begin
  update public.phone_number p set trunk_status = 'ready', outbound_trunk_id = trunk_id,
    carrier_trunk = carrier, provisioned_assistant_id = p.assistant_id
  where p.id = (f ->> 'number')::uuid;
  return f;
end $$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

begin;
select plan(1);
select has_function('tests', 'authenticate_as', array['uuid'], 'the test fixtures are installed');
select * from finish();
rollback;
