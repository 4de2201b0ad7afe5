-- Numbers and their provisioning: assistants, the Twilio numbers assigned to them and the LiveKit
-- and Twilio trunks each number needs. Any change of a number's assistant (function, PostgREST or
-- plain SQL) writes an outbox job in the same transaction and pokes create-trunks; a pg_cron sweep
-- retries what is still open, with backoff. The account's Elastic SIP trunk and its termination
-- credential are kept in `internal` (the password in Vault).

-- Types ---------------------------------------------------------------------------------
create type public.trunk_status as enum ('pending', 'ready', 'error', 'released');

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
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  carrier_trunk text,
  rest_until timestamptz,
  rest_reason text check (length(rest_reason) <= 500),
  unique (id, owner_id),
  -- A number can only be assigned to an assistant of the same owner.
  foreign key (assistant_id, owner_id) references public.assistant (id, owner_id)
    on delete set null (assistant_id)
);
comment on table public.phone_number is 'A Twilio number and the LiveKit trunks provisioned for its assistant. trunk_status/trunk_error say where provisioning stands.';
comment on column public.phone_number.provisioned_assistant_id is 'The assistant LiveKit currently reflects (differs from assistant_id while a change is pending).';
comment on column public.phone_number.carrier_trunk is 'The carrier trunk (Twilio Elastic SIP trunk termination domain, or the static SIP provider address) this number''s outbound trunk dials through; calls-per-second budgets belong to it.';
comment on column public.phone_number.rest_until is 'A number rested for poor health is skipped by every campaign until then; its owner may clear it (set null).';
comment on column public.phone_number.rest_reason is 'Why the number rests: the health measure, its value and the threshold.';

create table internal.provisioning_job (
  id bigint generated always as identity primary key,
  phone_number_id uuid,
  e164 text not null,
  owner_id uuid,
  status text not null default 'pending' check (status in ('pending', 'running', 'done', 'failed')),
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
comment on column internal.provisioning_job.status is 'pending or running: open (one per number); done; failed: given up for a reason no retry can fix (last_error says it), until the number changes again.';
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
create unique index provisioning_job_open on internal.provisioning_job (e164) where status in ('pending', 'running');
create index provisioning_job_due on internal.provisioning_job (run_after) where status in ('pending', 'running');

-- Functions ----------------------------------------------------------------------------
create function internal.number_status() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    new.trunk_status := case when new.assistant_id is null then 'released' else 'pending' end::public.trunk_status;
    new.trunk_error := null;
  elsif new.assistant_id is distinct from old.assistant_id then
    new.trunk_status := 'pending';
    new.trunk_error := null;
  end if;
  return new;
end $$;
comment on function internal.number_status is 'A number whose assistant changes is pending until provisioning says otherwise.';

create function internal.enqueue_provisioning() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  r record := case when tg_op = 'DELETE' then old else new end;
  job_id bigint;
begin
  if tg_op = 'INSERT' and new.assistant_id is null then
    return null;
  end if;
  insert into internal.provisioning_job (phone_number_id, e164, owner_id)
  values (case when tg_op = 'DELETE' then null else r.id end, r.e164, r.owner_id)
  on conflict (e164) where status in ('pending', 'running') do update
    set generation = internal.provisioning_job.generation + 1,
        phone_number_id = excluded.phone_number_id,
        attempts = 0,
        run_after = now()
  returning id into job_id;
  perform internal.call_function('create-trunks', jsonb_build_object('jobId', job_id));
  return null;
end $$;
comment on function internal.enqueue_provisioning is 'Writes the provisioning job with the change and pokes create-trunks after commit.';

create function internal.sweep_provisioning() returns integer
language plpgsql security definer set search_path = '' as $$
declare
  job record;
  poked integer := 0;
begin
  -- Numbers that should have trunks but have no open job (assigned before this existed,
  -- or restored from a backup) get one.
  insert into internal.provisioning_job (phone_number_id, e164, owner_id)
  select p.id, p.e164, p.owner_id from public.phone_number p
  where p.assistant_id is not null
    and (p.outbound_trunk_id is null or p.trunk_status <> 'ready'
         or p.provisioned_assistant_id is distinct from p.assistant_id)
    and not exists (select from internal.provisioning_job j where j.e164 = p.e164 and j.status in ('pending', 'running'))
    -- A number whose last job gave up waits for its owner to change it.
    and (select j.status from internal.provisioning_job j where j.e164 = p.e164 order by j.id desc limit 1)
      is distinct from 'failed'
  on conflict do nothing;
  for job in
    select id from internal.provisioning_job
    where status in ('pending', 'running') and run_after <= now() and (locked_until is null or locked_until < now())
    order by run_after limit 100
  loop
    perform internal.call_function('create-trunks', jsonb_build_object('jobId', job.id));
    poked := poked + 1;
  end loop;
  return poked;
end $$;
comment on function internal.sweep_provisioning is 'pg_cron: pokes create-trunks for every due open job; adds jobs for numbers left unprovisioned.';

-- Triggers -----------------------------------------------------------------------------
create trigger touch before update on public.assistant for each row execute function internal.touch();
create trigger touch before update on public.phone_number for each row execute function internal.touch();
create trigger touch before update on internal.provisioning_job for each row execute function internal.touch();
create trigger number_status before insert or update of assistant_id on public.phone_number
  for each row execute function internal.number_status();
create trigger enqueue_provisioning after insert or delete on public.phone_number
  for each row execute function internal.enqueue_provisioning();
-- Only a real change of assistant is work: re-saving the same assistant writes no job.
create trigger enqueue_provisioning_on_change after update of assistant_id on public.phone_number
  for each row when (old.assistant_id is distinct from new.assistant_id)
  execute function internal.enqueue_provisioning();

-- Policies -----------------------------------------------------------------------------------------
alter table public.assistant enable row level security;
alter table public.phone_number enable row level security;
alter table internal.provisioning_job enable row level security;
alter table internal.sip_trunk enable row level security;

create policy owner_all on public.assistant for all to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));
create policy owner_all on public.phone_number for all to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));

-- Grants -------------------------------------------------------------------------------------------
revoke all on public.assistant, public.phone_number from anon, authenticated;
revoke all on internal.provisioning_job, internal.sip_trunk from anon, authenticated, public;

grant select, insert, delete on public.assistant to authenticated;
grant update (name, agent_name) on public.assistant to authenticated;
-- Numbers enter through map-number (or the service), which checks the carrier account first: a
-- user inserting a row could claim any number, another tenant's included.
grant select, delete on public.phone_number to authenticated;
grant update (label, assistant_id, rest_until, rest_reason) on public.phone_number to authenticated;
grant all on public.assistant, public.phone_number to service_role;
grant all on internal.provisioning_job, internal.sip_trunk to service_role;
grant usage on sequence internal.provisioning_job_id_seq to service_role;

revoke all on function internal.number_status, internal.enqueue_provisioning,
  internal.sweep_provisioning from public;
