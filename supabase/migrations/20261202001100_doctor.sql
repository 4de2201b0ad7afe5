-- What `deno task doctor` (tools/doctor.ts) sees of a deployed project from the outside: one
-- RPC, `public.doctor()`, that only the service role may call through the REST API. It reports
-- the migration versions the CLI recorded, the schema objects, the extensions, whether
-- internal.configure stored the project URL and service key in Vault (presence and whether they
-- match what the doctor was given, compared here: never a value), the cron jobs and their recent
-- runs, and pg_net's recent answers from the functions. Each part is read on its own: a part the
-- database lacks (no pg_net, no CLI history) or may not read is reported as such, not an error.

-- Functions ------------------------------------------------------------------------------
create function internal.doctor_json(value text) returns jsonb
language plpgsql immutable set search_path = '' as $$
begin
  return value::jsonb;
exception when others then
  return null;
end $$;
comment on function internal.doctor_json is 'The text as jsonb, or null when it is not JSON (pg_net answers may be anything).';

create function public.doctor(
  project_url text default null,
  service_key_sha256 text default null,
  schemas text[] default array['public', 'internal']
) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  result jsonb := jsonb_build_object('checkedAt', now(), 'postgres', current_setting('server_version'));
  part jsonb;
  url_value text;
  key_value text;
begin
  -- Migration versions as the Supabase CLI records them (absent where nothing recorded them).
  begin
    if to_regclass('supabase_migrations.schema_migrations') is null then
      part := null;
    else
      execute 'select coalesce(jsonb_agg(version::text order by version), ''[]''::jsonb)
               from supabase_migrations.schema_migrations' into part;
    end if;
    result := result || jsonb_build_object('migrations', part);
  exception when others then
    result := result || jsonb_build_object('migrations', null, 'migrationsError', sqlerrm);
  end;

  -- Schema objects, keyed as tests/unit/migrations.test.ts keys them.
  begin
    select coalesce(jsonb_agg(k order by k), '[]'::jsonb) into part from (
      select 'function ' || n.nspname || '.' || p.proname as k
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(schemas)
      union
      select 'relation ' || n.nspname || '.' || c.relname
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(schemas) and c.relkind in ('r', 'p', 'v', 'm', 'f')
      union
      select 'trigger ' || n.nspname || '.' || c.relname || '.' || t.tgname
        from pg_catalog.pg_trigger t join pg_catalog.pg_class c on c.oid = t.tgrelid
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(schemas) and not t.tgisinternal
      union
      select 'policy ' || p.schemaname || '.' || p.tablename || '.' || p.policyname
        from pg_catalog.pg_policies p where p.schemaname = any(schemas)
    ) o;
    result := result || jsonb_build_object('objects', part);
  exception when others then
    result := result || jsonb_build_object('objects', null, 'objectsError', sqlerrm);
  end;

  -- Extensions, and the pg_net / Vault interfaces the project calls (stand-ins locally).
  result := result || jsonb_build_object('extensions', jsonb_build_object(
    'installed', (select coalesce(jsonb_object_agg(extname, extversion), '{}'::jsonb)
                  from pg_catalog.pg_extension
                  where extname in ('pg_cron', 'pg_net', 'supabase_vault', 'pgcrypto')),
    'cron', to_regclass('cron.job') is not null,
    'net', to_regprocedure('net.http_post(text, jsonb, jsonb, jsonb, integer)') is not null,
    'vault', to_regclass('vault.decrypted_secrets') is not null));

  -- internal.configure: what the jobs read from Vault. Presence and comparisons only.
  begin
    url_value := internal.secret('project_url');
    key_value := internal.secret('service_role_key');
    result := result || jsonb_build_object('configure', jsonb_build_object(
      'projectUrl', jsonb_build_object(
        'present', coalesce(url_value, '') <> '',
        'matches', case when url_value is null or project_url is null then null
                   else rtrim(url_value, '/') = rtrim(project_url, '/') end),
      'serviceRoleKey', jsonb_build_object(
        'present', coalesce(key_value, '') <> '',
        'matches', case when key_value is null or service_key_sha256 is null then null
                   else encode(sha256(convert_to(key_value, 'UTF8')), 'hex') = lower(service_key_sha256) end)));
  exception when others then
    result := result || jsonb_build_object('configure', jsonb_build_object('error', sqlerrm));
  end;
  url_value := null;
  key_value := null;

  -- The cron jobs and their runs: the latest finished run, and counts over the last day.
  begin
    if to_regclass('cron.job') is null then
      part := null;
    else
      execute $q$
        select coalesce(jsonb_agg(jsonb_build_object(
          'name', j.jobname, 'schedule', j.schedule, 'active', j.active,
          'last', case when last.status is null then null else jsonb_build_object(
            'status', last.status, 'start', last.start_time, 'end', last.end_time,
            'message', case when last.status = 'failed' then left(last.return_message, 300) end) end,
          'lastSuccess', ok.end_time,
          'runsDay', agg.runs, 'failedDay', agg.failed, 'running', agg.running
        ) order by j.jobname), '[]'::jsonb)
        from cron.job j
        left join lateral (
          select d.status, d.start_time, d.end_time, d.return_message from cron.job_run_details d
          where d.jobid = j.jobid and d.status in ('succeeded', 'failed')
          order by d.runid desc limit 1) last on true
        left join lateral (
          select d.end_time from cron.job_run_details d
          where d.jobid = j.jobid and d.status = 'succeeded'
          order by d.runid desc limit 1) ok on true
        left join lateral (
          select count(*) filter (where d.start_time > now() - interval '1 day') as runs,
                 count(*) filter (where d.status = 'failed' and d.start_time > now() - interval '1 day') as failed,
                 count(*) filter (where d.status not in ('succeeded', 'failed')) as running
          from cron.job_run_details d where d.jobid = j.jobid) agg on true
      $q$ into part;
    end if;
    result := result || jsonb_build_object('cron', part);
  exception when others then
    result := result || jsonb_build_object('cron', null, 'cronError', sqlerrm);
  end;

  -- pg_net: requests waiting, and the answers of the last hour (newest first), with the error
  -- code and missing variables of an error answer (never its other content).
  begin
    if to_regclass('net._http_response') is null then
      part := null;
    else
      execute $q$
        select jsonb_build_object(
          'queued', (select count(*) from net.http_request_queue),
          'responses', coalesce((select jsonb_agg(jsonb_build_object(
              'id', r.id, 'status', r.status_code, 'timedOut', r.timed_out,
              'error', left(r.error_msg, 300), 'created', r.created,
              'fromFunction', exists (select from jsonb_object_keys(coalesce(r.headers, '{}'::jsonb)) k
                                      where lower(k) = 'x-request-id'),
              'code', r.body -> 'error' ->> 'code',
              'message', left(r.body -> 'error' ->> 'message', 300),
              'variables', r.body -> 'error' -> 'details' -> 'variables'
            ) order by r.created desc, r.id desc)
            from (select x.*, case when x.status_code >= 400 and length(x.content) < 20000
                                   then internal.doctor_json(x.content) end as body
                  from net._http_response x
                  where x.created > now() - interval '1 hour'
                  order by x.created desc, x.id desc limit 100) r), '[]'::jsonb))
      $q$ into part;
    end if;
    result := result || jsonb_build_object('net', part);
  exception when others then
    result := result || jsonb_build_object('net', null, 'netError', sqlerrm);
  end;

  return result;
end $$;
comment on function public.doctor is 'For `deno task doctor` with the service key: migrations, objects, extensions, internal.configure (presence only), cron runs and pg_net answers of this project.';

-- Grants -------------------------------------------------------------------------------
revoke all on function internal.doctor_json from public;
revoke all on function public.doctor from public, anon, authenticated;
grant execute on function public.doctor to service_role;
