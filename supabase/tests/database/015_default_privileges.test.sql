-- A table added without grants is invisible to the API roles (default privileges revoked).
begin;
select plan(4);

create table public.probe_without_grants (id integer);
select ok(not has_table_privilege('anon', 'public.probe_without_grants', 'select'),
  'anon cannot read a new table that grants nothing');
select ok(not has_table_privilege('authenticated', 'public.probe_without_grants', 'select'),
  'authenticated cannot read a new table that grants nothing');
select ok(not has_table_privilege('authenticated', 'public.probe_without_grants', 'insert'),
  'authenticated cannot write a new table that grants nothing');
select ok(has_table_privilege('service_role', 'public.probe_without_grants', 'select'),
  'the service role still can');

select * from finish();
rollback;
