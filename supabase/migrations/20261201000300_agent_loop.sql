-- Closing the loop with the agent and the callee: dispositions the agent reports (each one a
-- row of the outcome table, so the campaign's next step is decided in one place), opt-outs
-- onto the do-not-call list at once, callbacks moved into the callee's calling window,
-- voicemail with its own retry delay, transfers recorded on the call, one import path for
-- contacts (the RPC and the CSV/JSON function), and a compliance record of every dial.

-- Campaign setting ----------------------------------------------------------------------------
alter table public.campaigns add column retry_voicemail_sec integer not null default 7200
  check (retry_voicemail_sec between 0 and 604800);
comment on column public.campaigns.retry_voicemail_sec is 'Delay before calling a callee again whose call reached a voicemail greeting (disposition voicemail), multiplied by retry_backoff per attempt like the other retry delays.';
grant insert (retry_voicemail_sec), update (retry_voicemail_sec) on public.campaigns to authenticated;

-- What the agent reported, on the call ----------------------------------------------------------
alter table public.outbound_calls
  add column disposition text,
  add column reported_at timestamptz,
  add column summary text check (length(summary) <= 10000),
  add column report_data jsonb check (report_data is null or jsonb_typeof(report_data) = 'object'),
  add column callback_at timestamptz,
  add column transferred_to text,
  add column transferred_at timestamptz;
comment on column public.outbound_calls.disposition is 'What the agent in the call reported (call-report): completed, voicemail, voicemail_left, opted_out, callback, transferred, not_interested, wrong_person or failed. For an answered campaign call it decides the contact''s next step (internal.call_outcome).';
comment on column public.outbound_calls.callback_at is 'The time the callee asked to be called back (disposition callback), as reported; the attempt itself is moved into the callee''s calling window.';
comment on column public.outbound_calls.transferred_to is 'Where transfer-call handed the callee (tel: or sip: URI), once LiveKit confirmed the transfer.';

create table public.call_reports (
  id bigint generated always as identity primary key,
  owner_id uuid not null references auth.users (id) on delete cascade,
  call_id uuid not null references public.outbound_calls (id) on delete cascade,
  campaign_call_id uuid references public.campaign_calls (id) on delete set null,
  disposition text not null,
  callback_at timestamptz,
  summary text check (length(summary) <= 10000),
  data jsonb check (data is null or jsonb_typeof(data) = 'object'),
  reported_by text not null check (reported_by in ('agent', 'service')),
  effect text not null,
  created_at timestamptz not null default now(),
  unique (call_id, disposition)
);
comment on table public.call_reports is 'Every disposition reported for a call, once per call and disposition (a repeat changes nothing), with what it did to the call''s campaign contact.';
create index call_reports_owner on public.call_reports (owner_id, created_at desc);

alter table public.do_not_call add column call_id uuid;
comment on column public.do_not_call.call_id is 'The call on which the callee opted out (set by call-report); null for numbers added otherwise.';

-- Dispositions are outcomes: the outcome table decides what each one does to a campaign contact.
alter table internal.call_outcome drop constraint call_outcome_retry_check;
alter table internal.call_outcome add constraint call_outcome_retry_check
  check (retry in ('never', 'busy', 'no_answer', 'failed', 'requeue', 'voicemail', 'callback'));
alter table internal.call_outcome add column reportable boolean not null default false;
comment on column internal.call_outcome.reportable is 'A disposition the agent may report (call-report). For these, call_status is what the campaign contact ends as when it is not retried.';
insert into internal.call_outcome (outcome, call_status, retry, pauses_campaign, meaning, reportable) values
  ('completed', 'completed', 'never', false, 'the agent finished the conversation', true),
  ('voicemail', 'no_answer', 'voicemail', false, 'a voicemail greeting answered and no message was left: called again after retry_voicemail_sec', true),
  ('voicemail_left', 'completed', 'never', false, 'the agent left a voicemail message: the contact is done', true),
  ('opted_out', 'completed', 'never', false, 'the callee asked not to be called again: on the owner''s do-not-call list at once', true),
  ('callback', 'completed', 'callback', false, 'the callee asked to be called back at callback_at, moved into their calling window', true),
  ('transferred', 'completed', 'never', false, 'the agent handed the callee to a person', true),
  ('not_interested', 'completed', 'never', false, 'the callee is not interested', true),
  ('wrong_person', 'completed', 'never', false, 'the agent reached someone other than the contact', true);
update internal.call_outcome set reportable = true where outcome = 'failed';

-- Functions ----------------------------------------------------------------------------------

-- How many callbacks a contact may ask for (beyond max_attempts, which they do not count against).
create function internal.max_callbacks() returns integer
language sql immutable set search_path = '' as $$ select 5 $$;

-- When a requested callback can happen: the first moment at or after it (never before now or the
-- campaign's start) that the callee's calling window is open; null when it never opens.
create function internal.callback_time(c public.campaigns, tz text, requested timestamptz)
returns timestamptz
language sql stable set search_path = '' as $$
  select internal.next_window_start(greatest(requested, now(), coalesce(c.starts_at, requested)),
    coalesce(tz, c.default_timezone), c.window_start, c.window_end, c.weekdays)
$$;
comment on function internal.callback_time is 'A callback''s attempt time: the request moved into the callee''s calling window (in the callee''s zone).';

-- What a campaign contact does after its current call: the agent's disposition when the call was
-- answered and one was reported, else the call's SIP outcome, looked up in internal.call_outcome.
create function internal.settle_contact(call public.outbound_calls, cc public.campaign_calls)
returns void
language plpgsql security definer set search_path = '' as $$
declare
  c public.campaigns;
  rule internal.call_outcome;
  reported boolean := false;
  delay numeric;
  next_at timestamptz;
  final_status public.campaign_call_status;
  last_out text;
  err text := call.error;
begin
  select * into c from public.campaigns where id = cc.campaign_id;
  if call.disposition is not null and call.answered_at is not null then
    select * into rule from internal.call_outcome where outcome = call.disposition and reportable;
    reported := rule.outcome is not null;
  end if;
  if not reported then
    select * into rule from internal.call_outcome where outcome = coalesce(call.outcome, 'failed');
    if rule.outcome is null then
      select * into rule from internal.call_outcome where outcome = 'failed';
    end if;
  end if;
  last_out := case when reported then call.disposition else call.outcome end;
  final_status := case case when reported then rule.call_status else call.status end
    when 'completed' then 'completed' when 'busy' then 'busy' when 'no_answer' then 'no_answer'
    else 'failed' end;

  -- A callback: at the time asked for, moved into the callee's window (not counted against
  -- max_attempts, up to internal.max_callbacks() per contact), never after the campaign ends.
  if rule.retry = 'callback' and call.callback_at is not null and c.status <> 'cancelled' then
    if (select count(*) from public.outbound_calls o
        where o.campaign_call_id = cc.id and o.disposition = 'callback' and o.answered_at is not null)
       > internal.max_callbacks() then
      err := format('not called back: at most %s callbacks per contact', internal.max_callbacks());
    else
      next_at := internal.callback_time(c, cc.timezone, call.callback_at);
      if next_at is null or (c.ends_at is not null and next_at >= c.ends_at) then
        next_at := null;
        err := 'not called back: the callback time falls after the campaign ends';
      end if;
    end if;
  end if;

  if next_at is not null then
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = null,
      current_call_id = call.id, completed_at = null, next_attempt_at = next_at
    where id = cc.id;
  elsif rule.retry = 'requeue' and c.status <> 'cancelled' then
    perform internal.give_back(cc.id, cc.attempts, coalesce(call.error, call.outcome), 1);
    update public.campaign_calls set last_outcome = call.outcome, last_sip_status = call.sip_status_code,
      current_call_id = call.id
    where id = cc.id;
  elsif rule.retry in ('busy', 'no_answer', 'failed', 'voicemail') and final_status <> 'completed'
        and cc.attempts < c.max_attempts and c.status <> 'cancelled' then
    delay := case rule.retry when 'busy' then c.retry_busy_sec when 'no_answer' then c.retry_no_answer_sec
             when 'voicemail' then c.retry_voicemail_sec else c.retry_failed_sec end
             * power(c.retry_backoff, cc.attempts - 1);
    update public.campaign_calls set status = 'queued', lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = err,
      current_call_id = call.id, completed_at = null,
      next_attempt_at = coalesce(internal.next_window_start(now() + make_interval(secs => delay), cc.timezone,
        c.window_start, c.window_end, c.weekdays), 'infinity')
    where id = cc.id;
  else
    update public.campaign_calls set status = final_status, lease_until = null, lease_owner = null,
      last_outcome = last_out, last_sip_status = call.sip_status_code, last_error = err,
      current_call_id = call.id, completed_at = now()
    where id = cc.id;
  end if;

  if rule.pauses_campaign then
    update public.campaigns set status = 'paused',
      status_reason = format('paused: %s (SIP %s on call %s); fix the carrier trunk''s credentials and resume',
                             rule.meaning, coalesce(call.sip_status_code::text, '-'), call.id)
    where id = c.id and status = 'running';
  end if;
  -- A contact queued again after its campaign completed (a report that came later) reopens it.
  if c.status = 'completed'
     and exists (select from public.campaign_calls x where x.id = cc.id and x.status = 'queued') then
    update public.campaigns set status = 'running' where id = c.id and status = 'completed';
    c.status := 'running';
  end if;
  perform internal.check_breaker(c.id);
  perform internal.maybe_complete(c.id);
  -- A free slot is refilled at once rather than at the next cron run (at most twice a second).
  if c.status = 'running' then
    insert into internal.tick_poke as t (campaign_id, poked_at) values (c.id, clock_timestamp())
    on conflict (campaign_id) do update set poked_at = clock_timestamp()
      where t.poked_at < clock_timestamp() - interval '500 milliseconds';
    if found then
      perform internal.call_function('campaign-tick', jsonb_build_object('campaignId', c.id));
    end if;
  end if;
end $$;
comment on function internal.settle_contact is 'Moves a campaign contact on after its current call: retry by rule with backoff inside the window, a callback at the requested time in the window, requeue without counting, pause, or finish; internal.call_outcome decides.';

-- A campaign call's attempt ended: its current dial settles the contact, once.
create function internal.call_finished(call_id uuid) returns void
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
  cc public.campaign_calls;
begin
  select * into call from public.outbound_calls where id = call_id;
  if call.campaign_call_id is null then
    return;
  end if;
  select * into cc from public.campaign_calls where id = call.campaign_call_id for update;
  -- Only the current dial may settle the campaign call, once.
  if cc.status not in ('dialing', 'in_progress') or call.room_name <> format('cc-%s-%s', cc.id, cc.dials) then
    return;
  end if;
  perform internal.settle_contact(call, cc);
end $$;
comment on function internal.call_finished is 'Called when a campaign call''s attempt ends (the dial''s answer, a webhook, reconciliation or lease expiry); internal.settle_contact decides what follows.';

-- The answer call-report gives: the call and its campaign contact as they stand.
create function internal.report_answer(call_id uuid, duplicate boolean) returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'call', jsonb_build_object('id', o.id, 'status', o.status, 'outcome', o.outcome,
      'disposition', o.disposition, 'callbackAt', o.callback_at),
    'campaignCall', case when cc.id is not null then jsonb_build_object('id', cc.id, 'status', cc.status,
      'nextAttemptAt', case when cc.status = 'queued' then cc.next_attempt_at end,
      'attempts', cc.attempts, 'lastOutcome', cc.last_outcome) end,
    'duplicate', duplicate)
  from public.outbound_calls o left join public.campaign_calls cc on cc.id = o.campaign_call_id
  where o.id = report_answer.call_id
$$;

-- A disposition from the agent (or the service). Idempotent per call and disposition; a later
-- report replaces an earlier one only while the call's campaign contact is not final; opt-outs
-- always reach the do-not-call list. Returns the answer, or {error: code, ...}.
create function internal.report_call(
  call_id uuid, disposition text, callback_at timestamptz, summary text, data jsonb, reported_by text
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
  cc public.campaign_calls;
  c public.campaigns;
  is_current boolean := false;
  resettle boolean;
  attempt_at timestamptz;
  effect text;
  affected uuid;
begin
  select * into call from public.outbound_calls o where o.id = report_call.call_id for update;
  if call.id is null then
    return jsonb_build_object('error', 'not_found');
  end if;
  if not exists (select from internal.call_outcome r where r.outcome = report_call.disposition and r.reportable) then
    return jsonb_build_object('error', 'invalid_disposition');
  end if;
  if exists (select from public.call_reports r where r.call_id = call.id and r.disposition = report_call.disposition) then
    return internal.report_answer(call.id, true);
  end if;
  if call.campaign_call_id is not null then
    select * into cc from public.campaign_calls x where x.id = call.campaign_call_id for update;
    select * into c from public.campaigns x where x.id = cc.campaign_id;
    is_current := call.room_name = format('cc-%s-%s', cc.id, cc.dials);
  end if;
  -- A different disposition for a call already reported: only while the contact is not final.
  if call.disposition is not null and report_call.disposition <> 'opted_out' and cc.id is not null
     and cc.status not in ('queued', 'dialing', 'in_progress') then
    return jsonb_build_object('error', 'final', 'disposition', call.disposition, 'contactStatus', cc.status);
  end if;
  if report_call.disposition = 'callback' and is_current then
    attempt_at := internal.callback_time(c, cc.timezone, report_call.callback_at);
    if attempt_at is null or (c.ends_at is not null and attempt_at >= c.ends_at) then
      return jsonb_build_object('error', 'past_campaign_end', 'attemptAt', attempt_at, 'endsAt', c.ends_at);
    end if;
  end if;

  update public.outbound_calls o set disposition = report_call.disposition, reported_at = now(),
    summary = coalesce(report_call.summary, o.summary), report_data = coalesce(report_call.data, o.report_data),
    callback_at = case when report_call.disposition = 'callback' then report_call.callback_at end
  where o.id = call.id
  returning * into call;
  -- The call already ended and settled its contact: the report settles it again, now.
  resettle := is_current and call.answered_at is not null
    and call.status in ('completed', 'busy', 'no_answer', 'failed');

  effect := case
    when cc.id is null then 'recorded on the call'
    when not is_current then 'recorded on the call; a later dial of the contact is under way'
    when call.answered_at is null and call.status in ('completed', 'busy', 'no_answer', 'failed')
      then 'recorded on the call; an unanswered call''s outcome decides'
    when not resettle then 'decides the contact''s next step when the call ends'
    else 'decided the contact''s next step' end;

  if report_call.disposition = 'opted_out' then
    insert into public.do_not_call (owner_id, e164, reason, call_id)
    values (call.owner_id, call.to_number, left(format('opted out during call %s%s', call.id,
      coalesce(': ' || report_call.summary, '')), 500), call.id)
    on conflict (owner_id, e164) do nothing;
    -- The owner's other queued contacts with this number are dropped now (the dial-time check
    -- would refuse them too).
    for affected in
      update public.campaign_calls x set status = 'skipped', last_outcome = 'do_not_call',
        last_error = format('opted out on call %s', call.id), completed_at = now(), lease_until = null,
        lease_owner = null
      where x.owner_id = call.owner_id and x.e164 = call.to_number and x.status = 'queued'
        and x.id is distinct from case when resettle then cc.id end
      returning x.campaign_id
    loop
      perform internal.maybe_complete(affected);
    end loop;
    effect := effect || '; on the do-not-call list';
  end if;

  insert into public.call_reports (owner_id, call_id, campaign_call_id, disposition, callback_at, summary, data,
    reported_by, effect)
  values (call.owner_id, call.id, call.campaign_call_id, report_call.disposition,
    case when report_call.disposition = 'callback' then report_call.callback_at end,
    report_call.summary, report_call.data, report_call.reported_by, effect);

  if resettle then
    select * into cc from public.campaign_calls x where x.id = cc.id;
    perform internal.settle_contact(call, cc);
  end if;
  return internal.report_answer(call.id, false);
end $$;
comment on function internal.report_call is 'call-report: records a disposition (once per call and disposition), puts opt-outs on the do-not-call list at once, and settles the call''s campaign contact by it.';

-- Transfers are recorded on the call and as a call event.
create function internal.record_transfer(call_id uuid, transfer_to text, requested_by text, ok boolean,
  error jsonb) returns void
language plpgsql security definer set search_path = '' as $$
declare
  call public.outbound_calls;
begin
  select * into call from public.outbound_calls o where o.id = record_transfer.call_id;
  if ok then
    update public.outbound_calls set transferred_to = transfer_to, transferred_at = now()
    where id = call.id;
  end if;
  insert into public.call_events (event_id, owner_id, call_id, event, room_name, participant_identity, payload, created_at)
  values (format('transfer-%s-%s', call.id, gen_random_uuid()), call.owner_id, call.id,
    case when ok then 'transfer_succeeded' else 'transfer_failed' end, call.room_name, call.participant_identity,
    jsonb_strip_nulls(jsonb_build_object('transferTo', transfer_to, 'requestedBy', requested_by, 'error', error)),
    now());
end $$;
comment on function internal.record_transfer is 'transfer-call: a transfer''s result, on the call (when it succeeded) and as a call event.';

-- One import path: normalisation (default country), de-duplication, do-not-call, destination
-- and time zone (the prepare trigger), per-contact variables; runs under the caller's RLS.
create function internal.import_contacts(campaign uuid, contacts jsonb) returns jsonb
language plpgsql security invoker set search_path = '' as $$
declare
  c public.campaigns;
  result jsonb;
begin
  if contacts is null or jsonb_typeof(contacts) <> 'array' then
    raise exception 'contacts must be a JSON array' using errcode = '22023';
  end if;
  select * into c from public.campaigns x where x.id = campaign;
  if c.id is null then
    raise exception 'campaign % does not exist', campaign using errcode = 'P0002';
  end if;
  with items as (
    select (t.ord - 1)::integer as idx, jsonb_typeof(t.item) = 'object' as is_object,
      case when jsonb_typeof(t.item) = 'object' then t.item else '{}'::jsonb end as o
    from jsonb_array_elements(contacts) with ordinality t(item, ord)
  ), parsed as (
    select i.idx, i.is_object,
      case when i.o ->> 'row' ~ '^[0-9]{1,9}$' then (i.o ->> 'row')::integer else i.idx + 1 end as rownum,
      nullif(btrim(coalesce(i.o ->> 'phoneNumber', i.o ->> 'phone_number', '')), '') as raw,
      nullif(btrim(i.o ->> 'timezone'), '') as tz,
      left(nullif(btrim(i.o ->> 'name'), ''), 200) as name,
      case when jsonb_typeof(i.o -> 'metadata') = 'object' then i.o -> 'metadata' else '{}'::jsonb end
        || case when jsonb_typeof(i.o -> 'variables') = 'object' then i.o -> 'variables' else '{}'::jsonb end as vars
    from items i
  ), judged as (
    select p.*, n.number, case
      when not p.is_object then 'not a JSON object'
      when p.raw is null then 'no phone number'
      when n.number is null then 'not a valid phone number'
      when p.tz is not null and not internal.is_timezone(p.tz) then 'unknown time zone'
      when pg_column_size(p.vars) > 8192 then 'its variables take more than 8 KiB'
    end as reason
    from parsed p, lateral (select internal.normalise_number(p.raw, c.default_country) as number) n
  ), inserted as (
    insert into public.campaign_calls (campaign_id, owner_id, e164, name, metadata, timezone)
    select c.id, c.owner_id, j.number, j.name, j.vars, j.tz from judged j where j.reason is null order by j.idx
    on conflict on constraint campaign_calls_campaign_id_e164_key do nothing
    returning status
  )
  select jsonb_build_object(
    'added', (select count(*) from inserted where status <> 'skipped'),
    'duplicates', (select count(*) from judged where reason is null) - (select count(*) from inserted),
    'skipped', (select count(*) from inserted where status = 'skipped'),
    'rejected', coalesce((select jsonb_agg(jsonb_build_object('index', idx, 'row', rownum,
        'phoneNumber', coalesce(number, raw), 'reason', reason) order by idx)
      from judged where reason is not null), '[]'::jsonb))
  into result;
  return result;
end $$;
comment on function internal.import_contacts is 'The one contact import path (add_campaign_calls and import-contacts): [{phoneNumber, name?, timezone?, variables? (or metadata), row?}] -> {added, duplicates, skipped, rejected: [{index, row, phoneNumber, reason}]}, under the caller''s RLS.';

create or replace function public.add_campaign_calls(campaign_id uuid, contacts jsonb)
returns jsonb
language plpgsql security invoker set search_path = '' as $$
begin
  if contacts is null or jsonb_typeof(contacts) <> 'array' then
    raise exception 'contacts must be a JSON array' using errcode = '22023';
  end if;
  if jsonb_array_length(contacts) > 10000 then
    raise exception 'at most 10000 contacts per call' using errcode = '22023';
  end if;
  return internal.import_contacts(add_campaign_calls.campaign_id, contacts);
end $$;
comment on function public.add_campaign_calls is 'Bulk import of callees (RPC, runs under the caller''s RLS; at most 10,000 per call, import-contacts takes more): numbers normalised to E.164 with the campaign''s default country, de-duplicated, checked, scheduled; variables (or metadata) reach the agent.';

-- Compliance: what was known and decided when each call was dialed -----------------------------
create table internal.dial_check (
  call_id uuid primary key references public.outbound_calls (id) on delete cascade,
  owner_id uuid not null,
  campaign_id uuid,
  campaign_call_id uuid,
  to_number text not null,
  callee_timezone text,
  timezone_source text check (timezone_source in ('contact', 'number', 'campaign default')),
  window_start time,
  window_end time,
  weekdays smallint[],
  dnc_checked_at timestamptz not null,
  on_dnc_list boolean not null,
  destination_country text,
  allowed_countries text[],
  destination_allowed boolean not null,
  recorded_at timestamptz not null default now()
);
comment on table internal.dial_check is 'One row per call record, written with it (before the dial): the callee''s zone and where it came from, the calling window in force, the do-not-call answer at that instant, and the destination decision. Read through public.dial_compliance.';
alter table internal.dial_check enable row level security;
create policy owner_read on internal.dial_check for select to authenticated
  using (owner_id = (select auth.uid()));

create function internal.record_dial_check() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  cc public.campaign_calls;
  c public.campaigns;
  number_tz text := internal.number_timezone(new.to_number);
  country text := internal.number_country(new.to_number);
begin
  if new.campaign_call_id is not null then
    select * into cc from public.campaign_calls where id = new.campaign_call_id;
    select * into c from public.campaigns where id = coalesce(new.campaign_id, cc.campaign_id);
  end if;
  insert into internal.dial_check (call_id, owner_id, campaign_id, campaign_call_id, to_number, callee_timezone,
    timezone_source, window_start, window_end, weekdays, dnc_checked_at, on_dnc_list, destination_country,
    allowed_countries, destination_allowed)
  values (new.id, new.owner_id, new.campaign_id, new.campaign_call_id, new.to_number,
    coalesce(cc.timezone, number_tz),
    case when cc.id is null then case when number_tz is not null then 'number' end
         when cc.timezone is not distinct from number_tz then 'number'
         when cc.timezone = c.default_timezone then 'campaign default'
         else 'contact' end,
    c.window_start, c.window_end, c.weekdays, clock_timestamp(),
    exists (select from public.do_not_call d where d.owner_id = new.owner_id and d.e164 = new.to_number),
    country, c.allowed_countries,
    country is not null and (c.id is null or country = any (c.allowed_countries)));
  return null;
end $$;
comment on function internal.record_dial_check is 'Writes the compliance record of a call as its record is written, just after the dial helper''s own do-not-call and destination checks and before anything is dialed.';
create trigger dial_check after insert on public.outbound_calls
  for each row execute function internal.record_dial_check();

create view public.dial_compliance with (security_invoker = true) as
select o.id as call_id, o.owner_id, o.campaign_id, o.campaign_call_id, o.attempt, o.to_number, o.from_number,
  coalesce(o.dialed_at, o.created_at) as dialed_at,
  d.callee_timezone,
  d.timezone_source,
  (coalesce(o.dialed_at, o.created_at) at time zone d.callee_timezone) as local_time_at_dial,
  case when d.window_start is null then 'none (a direct call)'
       else format('%s-%s local time, ISO weekdays %s', left(d.window_start::text, 5),
                   left(d.window_end::text, 5), array_to_string(d.weekdays, ',')) end as window_rule,
  case when d.window_start is not null and d.callee_timezone is not null then
    internal.in_window(coalesce(o.dialed_at, o.created_at), d.callee_timezone, d.window_start, d.window_end, d.weekdays)
  end as inside_window,
  d.dnc_checked_at,
  d.on_dnc_list,
  d.destination_country,
  d.allowed_countries,
  d.destination_allowed,
  o.status, o.outcome, o.disposition
from public.outbound_calls o join internal.dial_check d on d.call_id = o.id;
comment on view public.dial_compliance is 'Per dial attempt, for auditors: the callee''s zone and local time at the dial, the calling window that allowed it, when the do-not-call list was checked and its answer, and the destination decision. The owner reads their own (security invoker, RLS applies).';

-- Existing calls get a record from what is known now (their checks were not recorded).
insert into internal.dial_check (call_id, owner_id, campaign_id, campaign_call_id, to_number, callee_timezone,
  timezone_source, window_start, window_end, weekdays, dnc_checked_at, on_dnc_list, destination_country,
  allowed_countries, destination_allowed, recorded_at)
select o.id, o.owner_id, o.campaign_id, o.campaign_call_id, o.to_number,
  coalesce(cc.timezone, internal.number_timezone(o.to_number)), null, c.window_start, c.window_end, c.weekdays,
  o.created_at, false, internal.number_country(o.to_number), c.allowed_countries, true, now()
from public.outbound_calls o
left join public.campaign_calls cc on cc.id = o.campaign_call_id
left join public.campaigns c on c.id = o.campaign_id
on conflict do nothing;

-- Policies -------------------------------------------------------------------------------------
alter table public.call_reports enable row level security;
create policy owner_read on public.call_reports for select to authenticated
  using (owner_id = (select auth.uid()));

-- Grants ---------------------------------------------------------------------------------------
revoke all on table public.call_reports, public.dial_compliance from public, anon, authenticated;
grant select on table public.call_reports, public.dial_compliance to authenticated;
grant all on table public.call_reports, public.dial_compliance to service_role;
revoke all on table internal.dial_check from public, anon, authenticated;
grant select on table internal.dial_check to authenticated;
grant all on table internal.dial_check to service_role;
revoke all on function internal.call_finished, internal.max_callbacks, internal.callback_time, internal.settle_contact,
  internal.report_answer, internal.report_call, internal.record_transfer, internal.record_dial_check,
  internal.import_contacts from public;
grant execute on function internal.import_contacts to authenticated, service_role;
grant execute on function internal.max_callbacks, internal.callback_time, internal.settle_contact,
  internal.report_answer, internal.report_call, internal.record_transfer to service_role;
