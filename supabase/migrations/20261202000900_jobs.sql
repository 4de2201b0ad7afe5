-- The project's pg_cron jobs, scheduled once every function they run exists: the provisioning
-- sweep, the campaign tick, webhook delivery and the daily cleanups. internal.configure stores the
-- project URL and service key in Vault and schedules them; internal.schedule_jobs (re)schedules
-- them by name, so running either again is harmless.

-- Functions ------------------------------------------------------------------------------
create function internal.cleanup() returns void
language sql security definer set search_path = '' as $$
  delete from cron.job_run_details where end_time < now() - interval '7 days';
  delete from internal.provisioning_job where status = 'done' and done_at < now() - interval '30 days';
  delete from internal.rate_limit where window_start < now() - interval '1 hour';
$$;
comment on function internal.cleanup is 'Daily: trims pg_cron''s run log (never cleaned by itself) and old finished jobs.';

-- Returns its own row type, not cron.job: nothing of the project depends on pg_cron's objects, so
-- the extension can be dropped or reinstalled (from the dashboard too) once the jobs are unscheduled.
create function internal.schedule_jobs() returns table (jobname text, schedule text, command text)
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
  perform cron.schedule('webhook-deliver', case when seconds then '5 seconds' else '* * * * *' end,
    'select internal.sweep_webhooks()');
  perform cron.schedule('webhook-cleanup', '29 3 * * *', 'select internal.cleanup_webhooks()');
  return query select j.jobname::text, j.schedule::text, j.command::text from cron.job j
    where j.jobname in ('provisioning-sweep', 'campaign-tick', 'cleanup', 'webhook-deliver', 'webhook-cleanup')
    order by j.jobname;
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

-- Grants -------------------------------------------------------------------------------
revoke all on function internal.cleanup, internal.schedule_jobs, internal.configure from public;
