-- The platform every feature builds on: the extensions (pg_cron; pg_net and Vault where the
-- platform provides them), the private schema `internal`, the API roles' default privileges
-- taken back, the E.164 domain, and the shared helpers: time zone names, updated_at, Vault
-- secrets, and calling the project's edge functions from the database (pg_net). The cron jobs
-- are scheduled by 20261202000900_jobs.sql, once every function they run exists.

-- Extensions ---------------------------------------------------------------------------
create extension if not exists pg_cron;
do $$
begin
  -- On Supabase pg_net and Vault are extensions; the local stack provides stand-ins.
  if exists (select from pg_available_extensions where name = 'pg_net') then
    create extension if not exists pg_net with schema extensions;
  end if;
  if exists (select from pg_available_extensions where name = 'supabase_vault') then
    create extension if not exists supabase_vault with schema vault;
  end if;
end $$;

create schema if not exists internal;
revoke all on schema internal from public;
comment on schema internal is 'Tables and functions the API never exposes: outbox, secrets metadata, pacing.';

-- Default privileges ---------------------------------------------------------------------
-- Supabase grants every new table and sequence in public to anon and authenticated. Take that
-- default back: a table the API should see says so with explicit grants in its migration.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;

-- Types ---------------------------------------------------------------------------------
create domain public.e164 as text
  check (value ~ '^\+[1-9][0-9]{6,14}$');
comment on domain public.e164 is 'A phone number in E.164 form: + then 7 to 15 digits.';

-- Helpers ---------------------------------------------------------------------------------
create function internal.is_timezone(tz text) returns boolean
language plpgsql immutable set search_path = '' as $$
begin
  perform now() at time zone tz;
  return true;
exception when others then
  return false;
end $$;
comment on function internal.is_timezone is 'True for a time zone name Postgres knows (IANA).';
grant usage on schema internal to authenticated, service_role;
grant execute on function internal.is_timezone to authenticated, service_role;

create function internal.touch() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end $$;
comment on function internal.touch is 'Keeps updated_at current on every update.';

-- Accounts: who a request acts for. An anonymous session (Supabase Auth's signInAnonymously)
-- acts for nobody, so it reads nothing and changes nothing, unless the operator allows them.
create table internal.platform_settings (
  singleton boolean primary key default true check (singleton),
  allow_anonymous boolean not null default false,
  -- Per account (tenant) limits; null: none.
  max_running_campaigns integer check (max_running_campaigns > 0),
  max_concurrent_calls integer check (max_concurrent_calls > 0),
  max_call_duration_sec integer check (max_call_duration_sec between 10 and 86400)
);
insert into internal.platform_settings default values;
comment on table internal.platform_settings is 'Operator switches (one row, SQL editor). allow_anonymous: anonymous sessions are tenants like signed-up users (off: they can do nothing). max_running_campaigns, max_concurrent_calls, max_call_duration_sec: limits per account over all its campaigns and calls (null: none); a campaign held back by one says so in campaign_progress.throttle_reason.';

create function internal.account_uid() returns uuid
language sql stable set search_path = '' as $$
  select case
    when coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false)
         and not coalesce((select allow_anonymous from internal.platform_settings), false) then null
    else auth.uid() end
$$;
comment on function internal.account_uid is 'The account a request acts for: auth.uid(), except null for an anonymous session unless platform_settings allows them. Every policy compares owner_id with it.';

-- Calling the project's functions: the project URL and service key live in Vault;
-- internal.call_function queues an HTTP POST with pg_net.
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

-- Grants -------------------------------------------------------------------------------
revoke all on function internal.touch from public;
revoke all on internal.platform_settings from public, anon, authenticated;
-- Read by account_uid in every policy, as the requester: a switch, nobody's data.
grant select on internal.platform_settings to authenticated, service_role;
revoke all on function internal.account_uid from public;
grant execute on function internal.account_uid to authenticated, service_role;
revoke all on function internal.secret, internal.put_secret, internal.call_function from public;
