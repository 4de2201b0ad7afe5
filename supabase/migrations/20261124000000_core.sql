-- Core schema: assistants, phone numbers, campaigns and their calls, the do-not-call
-- list, outbound call records and call events (exposed through RLS), and the
-- provisioning outbox and secrets' metadata (private schema `internal`).

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

-- Types ---------------------------------------------------------------------------------
create domain public.e164 as text
  check (value ~ '^\+[1-9][0-9]{6,14}$');
comment on domain public.e164 is 'A phone number in E.164 form: + then 7 to 15 digits.';

create type public.trunk_status as enum ('pending', 'ready', 'error', 'released');
create type public.campaign_status as enum
  ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled');
create type public.campaign_call_status as enum
  ('queued', 'dialing', 'in_progress', 'completed', 'busy', 'no_answer', 'failed', 'skipped', 'cancelled');
create type public.call_status as enum
  ('dialing', 'ringing', 'in_progress', 'completed', 'busy', 'no_answer', 'failed');

-- Functions used by the tables ------------------------------------------------------------
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

-- Tables ------------------------------------------------------------------------------------
create table public.assistant (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  agent_name text not null check (agent_name ~ '^[A-Za-z0-9_.-]{1,128}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, owner_id)
);
comment on table public.assistant is 'An AI agent that talks on the phone; agent_name is the LiveKit agent dispatched into its calls.';

create table public.phone_number (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  e164 public.e164 not null unique,
  twilio_sid text check (twilio_sid ~ '^PN[0-9a-fA-F]{32}$'),
  label text check (length(label) <= 200),
  assistant_id uuid,
  trunk_status public.trunk_status not null default 'released',
  trunk_error text,
  inbound_trunk_id text,
  inbound_trunk_name text,
  outbound_trunk_id text,
  outbound_trunk_name text,
  dispatch_rule_id text,
  provisioned_assistant_id uuid,
  provisioned_at timestamptz,
  calls_per_second numeric(6, 2) not null default 1 check (calls_per_second > 0 and calls_per_second <= 100),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, owner_id),
  -- A number can only be assigned to an assistant of the same owner.
  foreign key (assistant_id, owner_id) references public.assistant (id, owner_id)
    on delete set null (assistant_id)
);
comment on table public.phone_number is 'A Twilio number and the LiveKit trunks provisioned for its assistant. trunk_status/trunk_error say where provisioning stands.';
comment on column public.phone_number.provisioned_assistant_id is 'The assistant LiveKit currently reflects (differs from assistant_id while a change is pending).';
comment on column public.phone_number.calls_per_second is 'The carrier trunk''s calls-per-second budget, shared by every campaign dialing from this number.';

create table public.campaigns (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  assistant_id uuid not null,
  phone_number_id uuid,
  status public.campaign_status not null default 'draft',
  status_reason text,
  starts_at timestamptz,
  ends_at timestamptz,
  window_start time not null default '09:00',
  window_end time not null default '20:00',
  weekdays smallint[] not null default '{1,2,3,4,5}'
    check (weekdays <@ '{1,2,3,4,5,6,7}'::smallint[] and cardinality(weekdays) > 0),
  default_timezone text not null default 'UTC' check (internal.is_timezone(default_timezone)),
  default_country text not null default 'US' check (default_country ~ '^[A-Z]{2}$'),
  allowed_countries text[] not null default '{US,CA}'
    check (cardinality(allowed_countries) > 0 and array_to_string(allowed_countries, ',') ~ '^[A-Z]{2}(,[A-Z]{2})*$'),
  max_concurrent integer not null default 5 check (max_concurrent between 1 and 1000),
  max_attempts integer not null default 3 check (max_attempts between 1 and 10),
  retry_busy_sec integer not null default 600 check (retry_busy_sec between 0 and 604800),
  retry_no_answer_sec integer not null default 1800 check (retry_no_answer_sec between 0 and 604800),
  retry_failed_sec integer not null default 900 check (retry_failed_sec between 0 and 604800),
  retry_backoff numeric(4, 2) not null default 2 check (retry_backoff between 1 and 10),
  ringing_timeout_sec integer not null default 30 check (ringing_timeout_sec between 5 and 80),
  max_call_duration_sec integer not null default 1800 check (max_call_duration_sec between 10 and 86400),
  failure_threshold numeric(3, 2) not null default 0.5 check (failure_threshold > 0 and failure_threshold <= 1),
  failure_window_sec integer not null default 120 check (failure_window_sec between 10 and 3600),
  failure_min_calls integer not null default 10 check (failure_min_calls between 1 and 10000),
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, owner_id),
  check (window_start < window_end),
  check (ends_at is null or starts_at is null or starts_at < ends_at),
  foreign key (assistant_id, owner_id) references public.assistant (id, owner_id),
  foreign key (phone_number_id, owner_id) references public.phone_number (id, owner_id)
);
comment on table public.campaigns is 'A list of people an assistant calls, with its calling window, limits and retry rules.';
comment on column public.campaigns.weekdays is 'ISO weekdays (1 = Monday .. 7 = Sunday) on which calls may be placed, in the callee''s time zone.';

create table public.campaign_calls (
  id uuid primary key default gen_random_uuid(),
  campaign_id uuid not null,
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  e164 public.e164 not null,
  name text check (length(name) <= 200),
  metadata jsonb not null default '{}'::jsonb
    check (jsonb_typeof(metadata) = 'object' and pg_column_size(metadata) <= 8192),
  timezone text check (timezone is null or internal.is_timezone(timezone)),
  status public.campaign_call_status not null default 'queued',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  lease_until timestamptz,
  lease_owner uuid,
  last_outcome text,
  last_error text,
  last_sip_status integer,
  current_call_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  unique (campaign_id, e164),
  foreign key (campaign_id, owner_id) references public.campaigns (id, owner_id) on delete cascade
);
comment on table public.campaign_calls is 'One callee of a campaign; queued until its attempts end in a final state.';
comment on column public.campaign_calls.lease_until is 'A tick that claimed this call owns it until then; an expired lease gives it back.';

create table public.do_not_call (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  e164 public.e164 not null,
  reason text check (length(reason) <= 500),
  created_at timestamptz not null default now(),
  unique (owner_id, e164)
);
comment on table public.do_not_call is 'Numbers an owner must never call; checked on import and before every dial.';

create table public.outbound_calls (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  assistant_id uuid references public.assistant (id) on delete set null,
  phone_number_id uuid references public.phone_number (id) on delete set null,
  campaign_id uuid references public.campaigns (id) on delete set null,
  campaign_call_id uuid references public.campaign_calls (id) on delete set null,
  attempt integer,
  from_number public.e164 not null,
  to_number public.e164 not null,
  room_name text not null unique,
  participant_identity text not null,
  participant_id text,
  sip_call_id text,
  dispatch_id text,
  outbound_trunk_id text not null,
  status public.call_status not null default 'dialing',
  outcome text,
  sip_status_code integer,
  sip_status text,
  disconnect_reason text,
  error text,
  answered_at timestamptz,
  ended_at timestamptz,
  duration_sec integer,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.outbound_calls is 'Every call placed through an outbound trunk, written before dialing and moved to its outcome by webhooks.';

create table public.call_events (
  id bigint generated always as identity primary key,
  event_id text not null unique,
  owner_id uuid references auth.users (id) on delete cascade,
  call_id uuid references public.outbound_calls (id) on delete cascade,
  event text not null,
  room_name text,
  participant_identity text,
  payload jsonb not null,
  created_at timestamptz not null,
  received_at timestamptz not null default now()
);
comment on table public.call_events is 'LiveKit webhook events, stored once per event id.';

create table internal.provisioning_job (
  id bigint generated always as identity primary key,
  phone_number_id uuid,
  e164 text not null,
  owner_id uuid,
  status text not null default 'pending' check (status in ('pending', 'running', 'done')),
  attempts integer not null default 0,
  generation integer not null default 1,
  run_after timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  done_at timestamptz
);
comment on table internal.provisioning_job is 'Outbox: one open row per number whose LiveKit/Twilio side must be reconciled to the database. Written in the same transaction as the change.';
comment on column internal.provisioning_job.generation is 'Bumped by every new change; a worker only closes the job if no change arrived while it worked.';

create table internal.sip_trunk (
  account_sid text primary key,
  trunk_sid text,
  domain_name text,
  credential_list_sid text,
  origination_url_sid text,
  sip_username text,
  password_secret_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table internal.sip_trunk is 'The Twilio Elastic SIP trunk per account and its termination credential; the password lives in Vault.';

-- Indexes -------------------------------------------------------------------------------------
create index assistant_owner on public.assistant (owner_id);
create index phone_number_owner on public.phone_number (owner_id);
create index phone_number_assistant on public.phone_number (assistant_id) where assistant_id is not null;
create index campaigns_owner on public.campaigns (owner_id);
create index campaigns_active on public.campaigns (id) where status in ('scheduled', 'running');
create index campaign_calls_owner on public.campaign_calls (owner_id);
create index campaign_calls_due on public.campaign_calls (campaign_id, next_attempt_at) where status = 'queued';
create index campaign_calls_live on public.campaign_calls (campaign_id, lease_until)
  where status in ('dialing', 'in_progress');
create index outbound_calls_owner on public.outbound_calls (owner_id, created_at desc);
create index outbound_calls_campaign_call on public.outbound_calls (campaign_call_id)
  where campaign_call_id is not null;
create index outbound_calls_open on public.outbound_calls (updated_at)
  where status in ('dialing', 'ringing', 'in_progress');
create index call_events_call on public.call_events (call_id);
create unique index provisioning_job_open on internal.provisioning_job (e164) where status <> 'done';
create index provisioning_job_due on internal.provisioning_job (run_after) where status <> 'done';

-- Triggers ---------------------------------------------------------------------------------------
create trigger touch before update on public.assistant for each row execute function internal.touch();
create trigger touch before update on public.phone_number for each row execute function internal.touch();
create trigger touch before update on public.campaigns for each row execute function internal.touch();
create trigger touch before update on public.campaign_calls for each row execute function internal.touch();
create trigger touch before update on public.outbound_calls for each row execute function internal.touch();
create trigger touch before update on internal.provisioning_job for each row execute function internal.touch();

-- Policies -----------------------------------------------------------------------------------------
alter table public.assistant enable row level security;
alter table public.phone_number enable row level security;
alter table public.campaigns enable row level security;
alter table public.campaign_calls enable row level security;
alter table public.do_not_call enable row level security;
alter table public.outbound_calls enable row level security;
alter table public.call_events enable row level security;
alter table internal.provisioning_job enable row level security;
alter table internal.sip_trunk enable row level security;

create policy owner_all on public.assistant for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy owner_all on public.phone_number for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy owner_all on public.campaigns for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy owner_all on public.campaign_calls for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy owner_all on public.do_not_call for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy owner_read on public.outbound_calls for select to authenticated
  using (owner_id = (select auth.uid()));
create policy owner_read on public.call_events for select to authenticated
  using (owner_id = (select auth.uid()));

-- Grants -------------------------------------------------------------------------------------------
-- Supabase grants everything in public to anon and authenticated by default: take it
-- back and grant exactly what the API needs.
revoke all on all tables in schema public from anon, authenticated;
revoke all on all tables in schema internal from anon, authenticated, public;
revoke all on function internal.touch from public;

grant select, insert, delete on public.assistant to authenticated;
grant update (name, agent_name) on public.assistant to authenticated;
grant select, delete on public.phone_number to authenticated;
grant insert (e164, twilio_sid, label, assistant_id, calls_per_second) on public.phone_number to authenticated;
grant update (label, assistant_id, calls_per_second) on public.phone_number to authenticated;
grant select, delete on public.campaigns to authenticated;
grant insert (name, assistant_id, phone_number_id, status, starts_at, ends_at, window_start, window_end,
  weekdays, default_timezone, default_country, allowed_countries, max_concurrent, max_attempts,
  retry_busy_sec, retry_no_answer_sec, retry_failed_sec, retry_backoff, ringing_timeout_sec,
  max_call_duration_sec, failure_threshold, failure_window_sec, failure_min_calls)
  on public.campaigns to authenticated;
grant update (name, phone_number_id, status, starts_at, ends_at, window_start, window_end, weekdays,
  default_timezone, default_country, allowed_countries, max_concurrent, max_attempts, retry_busy_sec,
  retry_no_answer_sec, retry_failed_sec, retry_backoff, ringing_timeout_sec, max_call_duration_sec,
  failure_threshold, failure_window_sec, failure_min_calls)
  on public.campaigns to authenticated;
grant select, delete on public.campaign_calls to authenticated;
grant insert (campaign_id, owner_id, e164, name, metadata, timezone) on public.campaign_calls to authenticated;
grant update (name, metadata, timezone) on public.campaign_calls to authenticated;
grant select, insert, delete on public.do_not_call to authenticated;
grant select on public.outbound_calls to authenticated;
grant select on public.call_events to authenticated;

grant all on all tables in schema public to service_role;
grant all on all tables in schema internal to service_role;
grant usage on all sequences in schema internal to service_role;
