-- The console's live updates: the tables it watches join Supabase Realtime's publication when the
-- project has one, and nothing happens without it (the local stack). Realtime only sends a change
-- to users RLS lets read the row, so every watched table must have RLS on.
begin;
select plan(7);

drop publication if exists supabase_realtime;
select is(internal.publish_watched_tables(), '{}'::text[],
  'without the supabase_realtime publication it adds nothing and does not fail');

create publication supabase_realtime;
select is(
  (select array_agg(t order by t) from unnest(internal.publish_watched_tables()) t),
  array['campaign_calls', 'campaigns', 'outbound_calls', 'phone_number', 'phone_number_health',
    'webhook_deliveries'],
  'with it, the six watched tables are added');
select is(
  (select array_agg(tablename::text order by tablename) from pg_publication_tables
   where pubname = 'supabase_realtime' and schemaname = 'public'),
  array['campaign_calls', 'campaigns', 'outbound_calls', 'phone_number', 'phone_number_health',
    'webhook_deliveries'],
  'the publication holds them');
select is(internal.publish_watched_tables(), '{}'::text[], 'running it again adds nothing');

select ok(
  (select bool_and(c.relrowsecurity) from pg_class c
   join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
   where c.relname in ('campaign_calls', 'campaigns', 'outbound_calls', 'phone_number',
     'phone_number_health', 'webhook_deliveries')),
  'every watched table has RLS on, so Realtime sends each user only their rows');
select ok(not has_function_privilege('authenticated', 'internal.publish_watched_tables()', 'execute'),
  'users may not run it');
select ok(not has_function_privilege('anon', 'internal.publish_watched_tables()', 'execute'),
  'anon may not run it');

select * from finish();
rollback;
