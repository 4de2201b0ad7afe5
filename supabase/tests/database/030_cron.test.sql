-- The project's cron jobs are (re)scheduled idempotently by name.
begin;
select plan(3);

select internal.schedule_jobs();
select internal.schedule_jobs();
select is((select count(*)::int from cron.job where jobname = 'provisioning-sweep'), 1,
  'scheduling twice leaves one provisioning sweep');
select is((select count(*)::int from cron.job where jobname = 'campaign-tick'), 1,
  'scheduling twice leaves one campaign tick');
select is((select command from cron.job where jobname = 'campaign-tick'), 'select internal.tick_campaigns()',
  'the tick job calls the campaign tick');

select * from finish();
rollback;
