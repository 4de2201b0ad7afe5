-- STAND-INS for what a Supabase project has before any migration runs: roles, pg_cron, the
-- auth schema, Vault and pg_net, with the owners and grants of a hosted project. Applied by the
-- local stack only, as the superuser supabase_admin, never part of supabase/migrations. Each
-- piece is skipped where the real thing already exists.

-- Roles -------------------------------------------------------------------------------
-- Applied by the superuser `supabase_admin` (the cluster's bootstrap user, as on Supabase). The
-- project's `postgres` role is what a hosted project gives its owner: not a superuser, with
-- these attributes and memberships; the migrations, the functions' database work and the
-- pgTAP tests run as it. Sources: stack/supabase/README.md, "Roles, owners and grants".
do $$
begin
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres;
  end if;
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    -- The login role PostgREST uses; it switches to the three above per request.
    create role authenticator login noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
    -- The login role the Auth server (GoTrue) uses; it owns the auth schema's tables.
    create role supabase_auth_admin login noinherit noreplication;
  end if;
end $$;
alter role postgres nosuperuser createdb createrole login replication bypassrls inherit;
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
grant pg_read_all_data, pg_signal_backend, pg_monitor to postgres;
-- The project's database is its own (Supabase's setup makes postgres its owner, and with it the
-- owner of the public schema, pg_database_owner).
alter database postgres owner to postgres;
grant all on database postgres to postgres;
alter role postgres set search_path = "$user", public, extensions;
alter role supabase_auth_admin set search_path = auth;

-- Schemas and extensions ----------------------------------------------------------------
create schema if not exists extensions authorization postgres;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pgtap with schema extensions;
grant usage on schema extensions to anon, authenticated, service_role;
-- Only for the Auth stand-in, which hashes passwords with pgcrypto (GoTrue does it in Go).
grant usage on schema extensions to supabase_auth_admin;
alter database postgres set search_path = "$user", public, extensions;
set search_path = "$user", public, extensions;

-- As on Supabase: everything postgres creates in public is granted to the API roles by
-- default, so a migration that forgets to take it back is caught here as it would be in
-- production.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;

-- pg_cron ---------------------------------------------------------------------------------
-- Enabled by the platform (on Supabase the dashboard or `create extension` through supautils
-- creates it as supabase_admin), with the grants Supabase's pg_cron setup gives postgres:
-- everything in cron with grant option, but cron.job only readable (jobs are changed through
-- cron.schedule and cron.unschedule) and no triggers on cron.job_run_details.
create extension if not exists pg_cron;
grant usage on schema cron to postgres with grant option;
grant all on all functions in schema cron to postgres with grant option;
grant all privileges on all tables in schema cron to postgres with grant option;
revoke all on table cron.job from postgres;
grant select on table cron.job to postgres with grant option;
revoke trigger on cron.job_run_details from postgres;

-- auth ------------------------------------------------------------------------------------
do $$
begin
  if exists (select from pg_namespace where nspname = 'auth') then
    return;
  end if;
  create schema auth;
  create table auth.users (
    id uuid primary key default gen_random_uuid(),
    aud text default 'authenticated',
    role text default 'authenticated',
    email text unique,
    raw_app_meta_data jsonb default '{}'::jsonb,
    raw_user_meta_data jsonb default '{}'::jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  );
  -- Same definitions as GoTrue's: claims come from PostgREST's request.jwt.claims.
  create function auth.jwt() returns jsonb language sql stable as $f$
    select coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
  $f$;
  create function auth.uid() returns uuid language sql stable as $f$
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $f$;
  create function auth.role() returns text language sql stable as $f$
    select coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
  $f$;
  grant usage on schema auth to anon, authenticated, service_role;
  grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;
  grant select on auth.users to service_role;
end $$;

-- Auth's own tables (GoTrue's columns), used by the Auth stand-in in stack/supabase/auth.ts.
do $$
begin
  if exists (select from pg_tables where schemaname = 'auth' and tablename = 'sessions') then
    return;
  end if;
  alter table auth.users
    add column if not exists instance_id uuid,
    add column if not exists phone text unique,
    add column if not exists encrypted_password text,
    add column if not exists email_confirmed_at timestamptz,
    add column if not exists phone_confirmed_at timestamptz,
    add column if not exists confirmed_at timestamptz
      generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    add column if not exists last_sign_in_at timestamptz,
    add column if not exists is_anonymous boolean not null default false,
    add column if not exists banned_until timestamptz,
    add column if not exists deleted_at timestamptz;
  create table auth.sessions (
    id uuid primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    factor_id uuid,
    aal text not null default 'aal1' check (aal in ('aal1', 'aal2', 'aal3')),
    not_after timestamptz,
    refreshed_at timestamp,
    user_agent text,
    ip inet,
    tag text
  );
  create index sessions_user_id_idx on auth.sessions (user_id);
  create table auth.refresh_tokens (
    instance_id uuid,
    id bigserial primary key,
    token varchar(255) unique,
    user_id varchar(255),
    revoked boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    parent varchar(255),
    session_id uuid references auth.sessions (id) on delete cascade
  );
  create index refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);
  create index refresh_tokens_parent_idx on auth.refresh_tokens (parent);
  -- How each session was authenticated (the access token's amr claim).
  create table auth.mfa_amr_claims (
    id uuid primary key default gen_random_uuid(),
    session_id uuid not null references auth.sessions (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    authentication_method text not null,
    unique (session_id, authentication_method)
  );
  revoke all on auth.sessions, auth.refresh_tokens, auth.mfa_amr_claims from public, anon, authenticated;
end $$;

-- Owners and grants as on Supabase: the schema is the platform's, GoTrue's role owns its tables
-- and functions, and postgres may use all of them (read, write, reference, trigger) but not
-- create objects in auth.
grant all on schema auth to supabase_auth_admin;
do $$
declare
  r record;
begin
  for r in select c.oid::regclass as t from pg_class c
           where c.relnamespace = 'auth'::regnamespace and c.relkind in ('r', 'v', 'p')
             and pg_get_userbyid(c.relowner) <> 'supabase_auth_admin' loop
    execute format('alter table %s owner to supabase_auth_admin', r.t);
  end loop;
  for r in select p.oid::regprocedure as f from pg_proc p
           where p.pronamespace = 'auth'::regnamespace
             and pg_get_userbyid(p.proowner) <> 'supabase_auth_admin' loop
    execute format('alter function %s owner to supabase_auth_admin', r.f);
  end loop;
end $$;
grant usage on schema auth to postgres;
grant all on all tables in schema auth to postgres;
grant all on all sequences in schema auth to postgres;
grant all on all routines in schema auth to postgres;
alter default privileges for role supabase_auth_admin in schema auth grant all on tables to postgres;
alter default privileges for role supabase_auth_admin in schema auth grant all on sequences to postgres;
alter default privileges for role supabase_auth_admin in schema auth grant all on routines to postgres;

-- Vault -------------------------------------------------------------------------------------
do $$
begin
  if exists (select from pg_namespace where nspname = 'vault') then
    return;
  end if;
  create schema vault;
  -- The stand-in encrypts with a per-cluster key kept in a table only the owner can read.
  create table vault.key (id int primary key default 1 check (id = 1), key text not null);
  insert into vault.key (key) values (encode(extensions.gen_random_bytes(32), 'hex'));
  create table vault.secrets (
    id uuid primary key default gen_random_uuid(),
    name text unique,
    description text not null default '',
    secret text not null,
    key_id uuid,
    nonce bytea,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  );
  create function vault.create_secret(
    new_secret text, new_name text default null, new_description text default '', new_key_id uuid default null
  ) returns uuid language sql security definer set search_path = '' as $f$
    insert into vault.secrets (name, description, secret, key_id)
    values (new_name, coalesce(new_description, ''),
            encode(extensions.pgp_sym_encrypt(new_secret, (select key from vault.key)), 'base64'),
            new_key_id)
    returning id
  $f$;
  create function vault.update_secret(
    secret_id uuid, new_secret text default null, new_name text default null,
    new_description text default null, new_key_id uuid default null
  ) returns void language sql security definer set search_path = '' as $f$
    update vault.secrets set
      secret = case when new_secret is null then secret
               else encode(extensions.pgp_sym_encrypt(new_secret, (select key from vault.key)), 'base64') end,
      name = coalesce(new_name, name),
      description = coalesce(new_description, description),
      key_id = coalesce(new_key_id, key_id),
      updated_at = now()
    where id = secret_id
  $f$;
  create view vault.decrypted_secrets as
    select s.id, s.name, s.description, s.secret,
           extensions.pgp_sym_decrypt(decode(s.secret, 'base64'), k.key) as decrypted_secret,
           s.key_id, s.nonce, s.created_at, s.updated_at
    from vault.secrets s cross join vault.key k;
  revoke all on schema vault from public;
  revoke all on all tables in schema vault from public;
  revoke all on all functions in schema vault from public;
  grant usage on schema vault to service_role;
  grant select on vault.decrypted_secrets to service_role;
  grant execute on function vault.create_secret, vault.update_secret to service_role;
  -- What Supabase's Vault setup grants postgres: read and delete secrets, create and update
  -- them only through the functions (vault.key, the stand-in's key, stays the owner's).
  grant usage on schema vault to postgres with grant option;
  grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
  grant execute on function vault.create_secret, vault.update_secret to postgres with grant option;
end $$;

-- pg_net ----------------------------------------------------------------------------------------
do $$
begin
  if exists (select from pg_namespace where nspname = 'net')
     or exists (select from pg_available_extensions where name = 'pg_net') then
    return;
  end if;
  create schema net;
  create table net.http_request_queue (
    id bigserial primary key,
    method text not null,
    url text not null,
    headers jsonb not null,
    body bytea,
    timeout_milliseconds integer not null
  );
  create table net._http_response (
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,
    timed_out boolean,
    error_msg text,
    created timestamptz not null default now()
  );
  -- Same signature as pg_net's. The request is queued; the local stack's worker sends it
  -- after the transaction commits (NOTIFY is delivered on commit), at most once.
  create function net.http_post(
    url text,
    body jsonb default '{}'::jsonb,
    params jsonb default '{}'::jsonb,
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    timeout_milliseconds integer default 5000
  ) returns bigint language plpgsql set search_path = '' as $f$
  declare
    request_id bigint;
    full_url text := url;
    query text;
  begin
    select string_agg(format('%s=%s', key, value), '&') into query from jsonb_each_text(params);
    if query is not null then
      full_url := full_url || case when position('?' in full_url) > 0 then '&' else '?' end || query;
    end if;
    insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
    values ('POST', full_url, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds)
    returning id into request_id;
    perform pg_notify('net_http_request', request_id::text);
    return request_id;
  end
  $f$;
  -- pg_net's own grants since 0.12 (what a project created today gets): the schema, its
  -- tables and sequences to public, http_post a security invoker function anyone may execute.
  grant usage on schema net to public;
  grant all on all tables in schema net to public;
  grant all on all sequences in schema net to public;
end $$;
