-- Supabase grants every new table and sequence in public to anon and authenticated. Take that
-- default back: a table the API should see says so with explicit grants in its migration.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
