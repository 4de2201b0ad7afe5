-- The project's cron jobs are (re)scheduled idempotently by name.
begin;
select plan(4);

select internal.schedule_jobs();
select internal.schedule_jobs();
select is((select count(*)::int from cron.job where jobname = 'provisioning-sweep'), 1,
  'scheduling twice leaves one provisioning sweep');
select is((select count(*)::int from cron.job where jobname = 'campaign-tick'), 1,
  'scheduling twice leaves one campaign tick');
select is((select command from cron.job where jobname = 'campaign-tick'), 'select internal.tick_campaigns()',
  'the tick job calls the campaign tick');

-- Nothing depends on pg_cron's objects: once its jobs are unscheduled it can be dropped.
select lives_ok($$select cron.unschedule(jobid) from cron.job; drop extension pg_cron$$,
  'pg_cron can be dropped after the project''s jobs are unscheduled');

select * from finish();
rollback;
