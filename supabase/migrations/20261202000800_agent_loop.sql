-- Closing the loop with the agent and the callee: dispositions the agent reports (each one a row
-- of the outcome table, so the campaign's next step is decided in one place by
-- internal.settle_contact), opt-outs onto the do-not-call list at once, callbacks moved into the
-- callee's calling window, transfers recorded on the call, and a compliance record of every dial.

-- Tables -------------------------------------------------------------------------------------
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

-- Functions ----------------------------------------------------------------------------------
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
    is_current := call.room_name = internal.dial_room(cc.id, cc.dials);
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
    and internal.call_is_final(call.status);

  effect := case
    when cc.id is null then 'recorded on the call'
    when not is_current then 'recorded on the call; a later dial of the contact is under way'
    when call.answered_at is null and internal.call_is_final(call.status)
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

-- Triggers -----------------------------------------------------------------------------------
create trigger dial_check after insert on public.outbound_calls
  for each row execute function internal.record_dial_check();

-- Views ------------------------------------------------------------------------------------------
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

-- Policies -------------------------------------------------------------------------------------
alter table public.call_reports enable row level security;
alter table internal.dial_check enable row level security;
create policy owner_read on public.call_reports for select to authenticated
  using (owner_id = (select internal.account_uid()));
create policy owner_read on internal.dial_check for select to authenticated
  using (owner_id = (select internal.account_uid()));

-- Grants ---------------------------------------------------------------------------------------
revoke all on table public.call_reports, public.dial_compliance from public, anon, authenticated;
grant select on table public.call_reports, public.dial_compliance to authenticated;
grant all on table public.call_reports, public.dial_compliance to service_role;
revoke all on table internal.dial_check from public, anon, authenticated;
grant select on table internal.dial_check to authenticated;
grant all on table internal.dial_check to service_role;
revoke all on function internal.report_answer, internal.report_call, internal.record_transfer,
  internal.record_dial_check from public;
grant execute on function internal.report_answer, internal.report_call, internal.record_transfer to service_role;
