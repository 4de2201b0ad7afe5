-- public.doctor() (what `deno task doctor` reads through the REST API): the service role's only,
-- it reports whether internal.configure's Vault secrets are there and match what it was given
-- without ever returning them, and it lists the cron jobs, migrations and schema objects.
begin;
select plan(11);

select ok(has_function_privilege('service_role', 'public.doctor(text, text, text[])', 'execute'),
  'the service role may call it');
select ok(not has_function_privilege('anon', 'public.doctor(text, text, text[])', 'execute'),
  'anon may not');
select ok(not has_function_privilege('authenticated', 'public.doctor(text, text, text[])', 'execute'),
  'users may not');

select internal.put_secret('project_url', 'https://pgtap-doctor.supabase.co');
select internal.put_secret('service_role_key', 'pgtap-doctor-secret-value');
select internal.schedule_jobs();

create temporary table report on commit drop as
  select public.doctor('https://pgtap-doctor.supabase.co/',
    encode(sha256(convert_to('pgtap-doctor-secret-value', 'UTF8')), 'hex')) as r;

select is((select r #>> '{configure,serviceRoleKey,present}' from report), 'true',
  'the service key in Vault is reported present');
select is((select r #>> '{configure,serviceRoleKey,matches}' from report), 'true',
  'and matching the hash it was given');
select is((select r #>> '{configure,projectUrl,matches}' from report), 'true',
  'the project URL matches (a trailing slash aside)');
select is((select public.doctor(null, encode(sha256('another key'::bytea), 'hex')) #>> '{configure,serviceRoleKey,matches}'),
  'false', 'another key does not match');
select ok((select position('pgtap-doctor-secret-value' in r::text) = 0 from report),
  'the secret itself is never in the report');
select ok((select r -> 'cron' @> '[{"name": "campaign-tick", "active": true}]' from report),
  'the cron jobs are listed');
select ok((select r -> 'objects' ? 'function public.doctor' and r -> 'objects' ? 'relation internal.lease' from report),
  'the schema objects are listed as the migrations create them');
select is(internal.doctor_json('not json'), null, 'an answer that is not JSON is read as null');

select * from finish();
rollback;
