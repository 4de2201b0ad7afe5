-- The project's cron jobs are (re)scheduled idempotently by name.
begin;
select plan(5);

select internal.schedule_jobs();
select internal.schedule_jobs();
select is((select count(*)::int from cron.job where jobname = 'provisioning-sweep'), 1,
  'scheduling twice leaves one provisioning sweep');
select is((select count(*)::int from cron.job where jobname = 'campaign-tick'), 1,
  'scheduling twice leaves one campaign tick');
select is((select command from cron.job where jobname = 'campaign-tick'), 'select internal.tick_campaigns()',
  'the tick job calls the campaign tick');

-- Nothing depends on pg_cron's objects, so once its jobs are unscheduled it can be dropped (on
-- Supabase postgres drops it through supautils, which runs the drop as the superuser; the local
-- stack has no supautils, and tests/e2e/roles.test.ts drops it as the superuser). What would
-- block the drop: an object that depends on the extension or one of its members and would not go
-- with them (what DROP EXTENSION without CASCADE refuses).
create function pg_temp.cron_dependents() returns setof text language sql as $$
  with ext as (select oid from pg_extension where extname = 'pg_cron'),
  part as (  -- the extension, its members, and what goes with them (defaults, policies, ...)
    select 'pg_extension'::regclass::oid as classid, oid as objid from ext
    union
    select m.classid, m.objid from pg_depend m, ext
    where m.refclassid = 'pg_extension'::regclass and m.refobjid = ext.oid and m.deptype = 'e'
  )
  select pg_describe_object(d.classid, d.objid, d.objsubid)
  from pg_depend d
  join part r on r.classid = d.refclassid and r.objid = d.refobjid
  where d.deptype = 'n'
    and not exists (select from pg_depend o join part r2 on r2.classid = o.refclassid and r2.objid = o.refobjid
                    where o.classid = d.classid and o.objid = d.objid and o.deptype in ('a', 'i', 'e'))
$$;
select is_empty('select * from pg_temp.cron_dependents()',
  'nothing outside pg_cron depends on its objects: it can be dropped after its jobs are unscheduled');
create view public.cron_dependent_probe as select jobid from cron.job;
select ok(exists (select from pg_temp.cron_dependents() v where v like '%cron_dependent_probe%'),
  'a view on cron.job would be found as a dependent');

select * from finish();
rollback;
