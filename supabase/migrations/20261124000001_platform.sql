-- How the database calls the project's functions: the project URL and service key live
-- in Vault; internal.call_function queues an HTTP POST with pg_net; internal.schedule_jobs
-- (re)schedules the project's pg_cron jobs by name.

-- Functions ------------------------------------------------------------------------------
create function internal.secret(secret_name text) returns text
language sql stable security definer set search_path = '' as $$
  select decrypted_secret from vault.decrypted_secrets where name = secret_name order by created_at desc limit 1
$$;
comment on function internal.secret is 'Reads a Vault secret by name; for internal callers only.';

create function internal.put_secret(secret_name text, secret_value text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  existing uuid;
begin
  select id into existing from vault.secrets where name = secret_name;
  if existing is null then
    return vault.create_secret(secret_value, secret_name);
  end if;
  perform vault.update_secret(existing, secret_value);
  return existing;
end $$;
comment on function internal.put_secret is 'Creates or replaces a Vault secret by name.';

create function internal.call_function(function_name text, body jsonb default '{}'::jsonb)
returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  project_url text := internal.secret('project_url');
  service_key text := internal.secret('service_role_key');
begin
  if project_url is null or service_key is null then
    -- Not configured yet: the durable records stay and the sweeps pick them up later.
    raise warning 'project_url / service_role_key are not in Vault; % not called', function_name;
    return null;
  end if;
  return net.http_post(
    url := project_url || '/functions/v1/' || function_name,
    body := body,
    headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || service_key),
    timeout_milliseconds := 60000
  );
end $$;
comment on function internal.call_function is 'Queues a POST to an edge function with the service key (pg_net: sent after commit, at most once).';

create function internal.schedule_jobs() returns setof cron.job
language plpgsql security definer set search_path = '' as $$
declare
  seconds boolean := (select (regexp_match(extversion, '^(\d+)\.(\d+)'))::int[] >= '{1,5}'::int[]
                      from pg_extension where extname = 'pg_cron');
begin
  perform cron.schedule('provisioning-sweep', case when seconds then '15 seconds' else '* * * * *' end,
    'select internal.sweep_provisioning()');
  perform cron.schedule('campaign-tick', case when seconds then '5 seconds' else '* * * * *' end,
    'select internal.tick_campaigns()');
  perform cron.schedule('cleanup', '17 3 * * *', 'select internal.cleanup()');
  return query select * from cron.job
    where jobname in ('provisioning-sweep', 'campaign-tick', 'cleanup') order by jobname;
end $$;
comment on function internal.schedule_jobs is 'Idempotently (re)schedules the project''s cron jobs by name; seconds schedules where pg_cron >= 1.5.';

create function internal.configure(project_url text, service_key text) returns void
language plpgsql security definer set search_path = '' as $$
begin
  perform internal.put_secret('project_url', rtrim(project_url, '/'));
  perform internal.put_secret('service_role_key', service_key);
  perform internal.schedule_jobs();
end $$;
comment on function internal.configure is 'Stores the project URL and service key in Vault and schedules the cron jobs. Run once per project (see README).';

create function internal.cleanup() returns void
language sql security definer set search_path = '' as $$
  delete from cron.job_run_details where end_time < now() - interval '7 days';
  delete from internal.provisioning_job where status = 'done' and done_at < now() - interval '30 days';
$$;
comment on function internal.cleanup is 'Daily: trims pg_cron''s run log (never cleaned by itself) and old finished jobs.';

-- Grants -------------------------------------------------------------------------------
revoke all on function internal.secret, internal.put_secret, internal.call_function,
  internal.schedule_jobs, internal.configure, internal.cleanup from public;
