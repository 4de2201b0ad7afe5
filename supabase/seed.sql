-- Seed data for a local database. Intentionally empty: users, assistants and numbers are
-- created through the API (the demo in `deno task dev` does that), so that no row skips
-- the provisioning path.
select 1;
