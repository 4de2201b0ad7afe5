-- The console (console/): a web app built on the public API alone. It needs nothing new to read or
-- change (tables and views under RLS, the RPCs and the functions cover every screen); what it adds
-- is live updates on a project with Supabase Realtime: the tables it watches join the
-- `supabase_realtime` publication, where the project has one (hosted projects do; the local stack
-- has no Realtime, and the console polls there). Realtime sends each change only to the users RLS
-- lets read the row.

-- Functions ----------------------------------------------------------------------------------
create function internal.publish_watched_tables() returns text[]
language plpgsql set search_path = '' as $$
declare
  watched text[] := array['phone_number', 'phone_number_health', 'campaigns', 'campaign_calls',
    'outbound_calls', 'webhook_deliveries'];
  t text;
  added text[] := '{}';
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    return added;
  end if;
  foreach t in array watched loop
    if not exists (select from pg_catalog.pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t) then
      execute format('alter publication supabase_realtime add table public.%I', t);
      added := added || t;
    end if;
  end loop;
  return added;
end $$;
comment on function internal.publish_watched_tables is 'Adds the tables the console watches to the supabase_realtime publication when it exists (else does nothing); returns the tables it added. Run by this migration; safe to run again.';

-- Grants -------------------------------------------------------------------------------------
revoke all on function internal.publish_watched_tables from public, anon, authenticated;

select internal.publish_watched_tables();
