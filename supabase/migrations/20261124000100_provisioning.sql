-- Database-triggered provisioning: any change of a number's assistant (function, PostgREST
-- or plain SQL) writes an outbox job in the same transaction and pokes create-trunks; a
-- pg_cron sweep retries what is still open, with backoff.

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
  on conflict (e164) where status <> 'done' do update
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
    and not exists (select from internal.provisioning_job j where j.e164 = p.e164 and j.status <> 'done')
  on conflict do nothing;
  for job in
    select id from internal.provisioning_job
    where status <> 'done' and run_after <= now() and (locked_until is null or locked_until < now())
    order by run_after limit 100
  loop
    perform internal.call_function('create-trunks', jsonb_build_object('jobId', job.id));
    poked := poked + 1;
  end loop;
  return poked;
end $$;
comment on function internal.sweep_provisioning is 'pg_cron: pokes create-trunks for every due open job; adds jobs for numbers left unprovisioned.';

-- Triggers -----------------------------------------------------------------------------
create trigger number_status before insert or update of assistant_id on public.phone_number
  for each row execute function internal.number_status();
create trigger enqueue_provisioning after insert or delete on public.phone_number
  for each row execute function internal.enqueue_provisioning();
-- Only a real change of assistant is work: re-saving the same assistant writes no job.
create trigger enqueue_provisioning_on_change after update of assistant_id on public.phone_number
  for each row when (old.assistant_id is distinct from new.assistant_id)
  execute function internal.enqueue_provisioning();

-- Grants --------------------------------------------------------------------------------
revoke all on function internal.number_status, internal.enqueue_provisioning,
  internal.sweep_provisioning from public;
