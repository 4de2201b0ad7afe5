-- Every transition of a number's provisioning and of its outbox job, in the database: the
-- functions make LiveKit and Twilio match the row and report what they made; these record it.
-- No function's TypeScript writes public.phone_number's provisioning state or
-- internal.provisioning_job.
--
--   assign_number                                      a user assigns (or releases) their number
--   number_ready / number_released / number_failed     what provisioning made of the number
--   claim_provisioning_job                             a worker takes a due job (lease: 2 min)
--   provisioning_job_done / provisioning_job_failed    it closes or retries, with the backoff
--   requeue_trunk_numbers                              new SIP credentials: every number again

-- The one retry schedule of provisioning: 10 s doubling, at most an hour.
create function internal.provisioning_retry_sec(attempt integer) returns integer
language sql immutable parallel safe set search_path = '' as $$
  select least(3600, 10 * power(2, greatest(0, attempt - 1))::bigint)::integer
$$;
comment on function internal.provisioning_retry_sec is 'Seconds before provisioning retry n (1-based): 10 s doubling, at most an hour.';

-- The number -------------------------------------------------------------------------------------
create function internal.number_ready(number_id uuid, assistant uuid, twilio text, inbound_id text,
  inbound_name text, outbound_id text, outbound_name text, rule_id text, carrier text)
returns setof public.phone_number
language sql security definer set search_path = '' as $$
  update public.phone_number set trunk_status = 'ready', trunk_error = null,
    twilio_sid = coalesce(number_ready.twilio, twilio_sid),
    inbound_trunk_id = number_ready.inbound_id, inbound_trunk_name = number_ready.inbound_name,
    outbound_trunk_id = number_ready.outbound_id, outbound_trunk_name = number_ready.outbound_name,
    dispatch_rule_id = number_ready.rule_id, provisioned_assistant_id = number_ready.assistant,
    carrier_trunk = number_ready.carrier, provisioned_at = now()
  where id = number_ready.number_id
  returning *
$$;
comment on function internal.number_ready is 'Provisioning made the number''s trunks and dispatch rule for its assistant: it can call and be called.';

create function internal.number_released(number_id uuid) returns setof public.phone_number
language sql security definer set search_path = '' as $$
  update public.phone_number set trunk_status = 'released', trunk_error = null,
    inbound_trunk_id = null, inbound_trunk_name = null, outbound_trunk_id = null,
    outbound_trunk_name = null, dispatch_rule_id = null, provisioned_assistant_id = null,
    carrier_trunk = null, provisioned_at = now()
  where id = number_released.number_id
  returning *
$$;
comment on function internal.number_released is 'A number with no assistant: its trunks are gone.';

-- Provisioning failed. given_up (the number is not in the carrier account): its trunks are gone
-- and the reason stays until its owner changes it. Otherwise a number already ready for this
-- assistant stays usable (its trunks were there a moment ago), the error is shown, and a job is
-- left to retry it with the backoff (one already open retries it anyway).
create function internal.number_failed(number_id uuid, message text, given_up boolean)
returns setof public.phone_number
language plpgsql security definer set search_path = '' as $$
declare
  n public.phone_number;
begin
  if given_up then
    update public.phone_number set trunk_status = 'error', trunk_error = message,
      inbound_trunk_id = null, inbound_trunk_name = null, outbound_trunk_id = null,
      outbound_trunk_name = null, dispatch_rule_id = null, provisioned_assistant_id = null,
      carrier_trunk = null
    where id = number_id returning * into n;
  else
    update public.phone_number p set trunk_status = case
        when p.trunk_status = 'ready' and p.provisioned_assistant_id is not distinct from p.assistant_id
        then 'ready' else 'error' end::public.trunk_status,
      trunk_error = message
    where id = number_id returning * into n;
    if n.id is not null then
      insert into internal.provisioning_job (phone_number_id, e164, owner_id, attempts, run_after, last_error)
      values (n.id, n.e164, n.owner_id, 1, now() + make_interval(secs => internal.provisioning_retry_sec(1)), message)
      on conflict (e164) where status in ('pending', 'running') do nothing;
    end if;
  end if;
  if n.id is not null then
    return next n;
  end if;
end $$;
comment on function internal.number_failed is 'Provisioning failed: the number shows why; it is retried with backoff unless given up.';

-- A user's number, assigned to their assistant (or to none), for map-number once it has
-- authenticated the user and found the number in the carrier account: users may not insert rows
-- themselves (a row could claim anyone's number). Returns the number as it now is: unchanged when
-- it is another of the owner's assistants' and force is not set (map-number answers 409), nothing
-- when it is another account's. The triggers mark it pending and write its outbox job with the
-- change.
create function internal.assign_number(owner uuid, number text, twilio text, label text, assistant uuid,
  force boolean)
returns setof public.phone_number
language plpgsql security definer set search_path = '' as $$
declare
  n public.phone_number;
begin
  if assistant is not null and not exists (select from public.assistant a where a.id = assistant and a.owner_id = owner) then
    raise exception 'assistant % is not the owner''s', assistant using errcode = '42501';
  end if;
  for tries in 1..2 loop
    select * into n from public.phone_number p where p.e164 = number for update;
    if found then
      if n.owner_id <> owner then
        return;
      end if;
      if n.assistant_id is not null and assistant is not null and n.assistant_id <> assistant and not force then
        return next n;
        return;
      end if;
      update public.phone_number p set assistant_id = assistant, label = coalesce(assign_number.label, p.label)
      where p.id = n.id returning * into n;
      return next n;
      return;
    end if;
    insert into public.phone_number (owner_id, e164, twilio_sid, label, assistant_id)
    values (owner, number, twilio, assign_number.label, assistant)
    on conflict (e164) do nothing returning * into n;
    if n.id is not null then
      return next n;
      return;
    end if;
    -- Lost an insert race (a double-click): the winner's row, now committed, may be the owner's.
  end loop;
end $$;
comment on function internal.assign_number is 'map-number: assigns a user''s number (checked against the carrier account) to one of their assistants, or releases it.';

-- The job ---------------------------------------------------------------------------------------
create function internal.claim_provisioning_job(job_id bigint)
returns table (id bigint, phone_number_id uuid, e164 text, attempts integer, generation integer)
language sql security definer set search_path = '' as $$
  update internal.provisioning_job j set status = 'running', attempts = j.attempts + 1,
    locked_until = now() + interval '2 minutes'
  where j.id = claim_provisioning_job.job_id and j.status in ('pending', 'running')
    and (j.locked_until is null or j.locked_until < now())
  returning j.id, j.phone_number_id, j.e164, j.attempts, j.generation
$$;
comment on function internal.claim_provisioning_job is 'create-trunks: takes a due open job for 2 minutes; nothing when another worker holds it or it is closed.';

-- Done, unless a change arrived while the worker ran (the generation moved): then it is pending
-- again, due now. Returns the job's status.
create function internal.provisioning_job_done(job_id bigint, seen_generation integer) returns text
language sql security definer set search_path = '' as $$
  update internal.provisioning_job j set
    status = case when j.generation = seen_generation then 'done' else 'pending' end,
    done_at = case when j.generation = seen_generation then now() end,
    locked_until = null, last_error = null, run_after = now(), attempts = 0
  where j.id = provisioning_job_done.job_id
  returning j.status
$$;

-- Failed: retried after the backoff for its attempts, or given up (closed 'failed').
create function internal.provisioning_job_failed(job_id bigint, error text, given_up boolean) returns void
language sql security definer set search_path = '' as $$
  update internal.provisioning_job j set
    status = case when given_up then 'failed' else 'pending' end,
    done_at = case when given_up then now() end,
    run_after = case when given_up then j.run_after
                     else now() + make_interval(secs => internal.provisioning_retry_sec(j.attempts)) end,
    locked_until = null, last_error = provisioning_job_failed.error
  where j.id = provisioning_job_failed.job_id
$$;
comment on function internal.provisioning_job_failed is 'create-trunks: a job that failed is retried with the backoff (internal.provisioning_retry_sec), or closed as failed when no retry can fix it.';

-- The account's SIP credentials changed: every assigned number's outbound trunk needs the new pair.
create function internal.requeue_trunk_numbers() returns void
language sql security definer set search_path = '' as $$
  insert into internal.provisioning_job (phone_number_id, e164, owner_id)
  select id, e164, owner_id from public.phone_number where assistant_id is not null and outbound_trunk_id is not null
  on conflict (e164) where status in ('pending', 'running') do update
    set generation = internal.provisioning_job.generation + 1, run_after = now()
$$;

-- Grants -------------------------------------------------------------------------------------------
revoke all on function internal.assign_number, internal.number_ready, internal.number_released, internal.number_failed,
  internal.claim_provisioning_job, internal.provisioning_job_done, internal.provisioning_job_failed,
  internal.requeue_trunk_numbers from public, anon, authenticated;
grant execute on function internal.assign_number, internal.number_ready, internal.number_released, internal.number_failed,
  internal.claim_provisioning_job, internal.provisioning_job_done, internal.provisioning_job_failed,
  internal.requeue_trunk_numbers to service_role;
