-- Customer event webhooks. Every fact a customer hears about (a call started, answered, ended
-- or reported; a campaign started, paused or completed; a number ready or in error) is written
-- to an outbox of events by AFTER triggers in the same transaction as the fact, with a
-- sequence number per call, campaign and number, and fanned out to the owner's endpoints as
-- deliveries. The webhook-deliver function sends them by the Standard Webhooks spec: one
-- ordered lane per endpoint (leased, so two runs never send to one endpoint at once), retried
-- with backoff, the endpoint disabled after a day of failures with the reason visible. pg_cron
-- sweeps, and every commit that queues a delivery pokes the function.

-- Tables -------------------------------------------------------------------------------------
create function internal.webhook_event_types() returns text[]
language sql immutable set search_path = '' as $$
  select '{call.started,call.answered,call.ended,call.reported,campaign.started,campaign.paused,campaign.completed,number.ready,number.error}'::text[]
$$;
comment on function internal.webhook_event_types is 'Every event type an endpoint can subscribe to (api.md, webhook-endpoints).';
grant execute on function internal.webhook_event_types to authenticated, service_role;

create table public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  url text not null check (length(url) <= 2048 and url ~ '^https?://[^[:space:]]+$'),
  events text[] not null default internal.webhook_event_types()
    check (cardinality(events) > 0 and events <@ internal.webhook_event_types()),
  enabled boolean not null default true,
  disabled_reason text,
  disabled_at timestamptz,
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.webhook_endpoints is 'A customer''s server that receives events. Created by the webhook-endpoints function (its signing secret lives in Vault, never in a column); the owner reads, deletes and re-enables it.';
comment on column public.webhook_endpoints.failing_since is 'The first failed attempt since the last successful one; after internal.webhook_settings.disable_after_sec of failures the endpoint is disabled.';
comment on column public.webhook_endpoints.disabled_reason is 'Why the endpoint stopped receiving (set when it is disabled). Deliveries stay queued; setting enabled = true resumes them.';

create table internal.webhook_endpoint_secret (
  endpoint_id uuid primary key references public.webhook_endpoints (id) on delete cascade,
  secret_id uuid not null
);
comment on table internal.webhook_endpoint_secret is 'The Vault secret (whsec_...) each endpoint''s deliveries are signed with.';

create table internal.webhook_lane (
  endpoint_id uuid primary key references public.webhook_endpoints (id) on delete cascade,
  retry_at timestamptz not null default now(),
  lease_owner uuid,
  lease_until timestamptz
);
comment on table internal.webhook_lane is 'Per endpoint: when its next delivery may be sent (the head''s backoff) and which webhook-deliver run holds it. Deliveries to one endpoint go one at a time, in order.';

create table internal.events (
  id bigint generated always as identity primary key,
  event_id text not null unique default ('msg_' || replace(gen_random_uuid()::text, '-', '')),
  owner_id uuid not null,
  type text not null check (type = any (internal.webhook_event_types())),
  subject text not null,
  sequence integer not null,
  call_id uuid,
  campaign_id uuid,
  phone_number_id uuid,
  data jsonb not null,
  created_at timestamptz not null default clock_timestamp()
);
comment on table internal.events is 'Outbox of customer events, written by triggers in the transaction of the fact. event_id is the webhook-id (stable across retries and replays); sequence counts the subject''s (call, campaign or number) events from 1.';

create table public.webhook_deliveries (
  id bigint generated always as identity primary key,
  owner_id uuid not null,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  event_ref bigint not null references internal.events (id) on delete cascade,
  event_id text not null,
  event_type text not null,
  sequence integer not null,
  call_id uuid,
  campaign_id uuid,
  phone_number_id uuid,
  replay boolean not null default false,
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
  attempt_count integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_attempt_at timestamptz,
  last_status_code integer,
  last_error text,
  attempts jsonb not null default '[]'::jsonb,
  delivered_at timestamptz,
  created_at timestamptz not null default now()
);
comment on table public.webhook_deliveries is 'One event to one endpoint: pending until a 2xx answer (succeeded) or until its retries run out (failed). attempts lists every try: when, the HTTP status or the error, and how long it took. Owners read their own (RLS).';

create table internal.webhook_settings (
  id boolean primary key default true check (id),
  retry_delays_sec integer[] not null default '{5,300,1800,7200,18000,36000,50400,72000,86400}'
    check (cardinality(retry_delays_sec) > 0),
  time_scale numeric not null default 1 check (time_scale > 0 and time_scale <= 1),
  disable_after_sec integer not null default 86400 check (disable_after_sec > 0),
  max_lanes integer not null default 32 check (max_lanes between 1 and 1000),
  batch_size integer not null default 20 check (batch_size between 1 and 500),
  lease_sec integer not null default 30 check (lease_sec >= 15)
);
comment on table internal.webhook_settings is 'Delivery policy (one row): the delay before each retry (the first attempt is immediate; Standard Webhooks'' schedule, 5 s to 24 h, about 3 days in all), time_scale multiplying those delays (below 1 only to test retries quickly), how long an endpoint may fail before it is disabled, how many endpoints are sent to at once, deliveries per lane claim, and the lane lease.';
insert into internal.webhook_settings default values;

create table internal.webhook_poke (
  id boolean primary key default true check (id),
  poked_at timestamptz not null default 'epoch'
);
comment on table internal.webhook_poke is 'When a commit last poked webhook-deliver (pokes are debounced; pg_cron sweeps behind them).';
insert into internal.webhook_poke default values;

-- Indexes ------------------------------------------------------------------------------------
create index webhook_endpoints_owner on public.webhook_endpoints (owner_id);
create index events_subject on internal.events (subject, sequence desc);
create index events_owner on internal.events (owner_id, id);
create index events_call on internal.events (call_id) where call_id is not null;
create index events_campaign on internal.events (campaign_id) where campaign_id is not null;
create index events_created on internal.events (created_at);
create index webhook_deliveries_lane on public.webhook_deliveries (endpoint_id, id) where status = 'pending';
create index webhook_deliveries_owner on public.webhook_deliveries (owner_id, id desc);
create index webhook_deliveries_endpoint on public.webhook_deliveries (endpoint_id, created_at);
create index webhook_deliveries_event on public.webhook_deliveries (event_ref);
create index webhook_lane_due on internal.webhook_lane (retry_at);

-- Functions: the outbox -------------------------------------------------------------------------
create function internal.poke_webhook_delivery() returns void
language plpgsql security definer set search_path = '' as $$
begin
  -- Never waits: a transaction that finds the row taken leaves the poke to the one holding it
  -- (whose run sees this commit too, or the sweep does).
  perform 1 from internal.webhook_poke
  where id and poked_at < clock_timestamp() - interval '200 milliseconds'
  for update skip locked;
  if found then
    update internal.webhook_poke set poked_at = clock_timestamp() where id;
    perform internal.call_function('webhook-deliver', '{}'::jsonb);
  end if;
end $$;
comment on function internal.poke_webhook_delivery is 'Pokes webhook-deliver after commit (pg_net), at most five times a second.';

create function internal.emit_event(
  owner uuid, event_type text, subject text, of_call uuid, of_campaign uuid, of_number uuid, data jsonb
) returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  seq integer;
  ev internal.events;
begin
  -- Every event of a subject comes from a trigger on the subject's own row, whose lock
  -- serializes them: max + 1 is safe and keeps the numbering gapless.
  select coalesce(max(e.sequence), 0) + 1 into seq from internal.events e where e.subject = emit_event.subject;
  insert into internal.events (owner_id, type, subject, sequence, call_id, campaign_id, phone_number_id, data)
  values (owner, event_type, subject, seq, of_call, of_campaign, of_number, data || jsonb_build_object('sequence', seq))
  returning * into ev;
  insert into public.webhook_deliveries (owner_id, endpoint_id, event_ref, event_id, event_type, sequence,
    call_id, campaign_id, phone_number_id)
  select ev.owner_id, w.id, ev.id, ev.event_id, ev.type, ev.sequence, ev.call_id, ev.campaign_id, ev.phone_number_id
  from public.webhook_endpoints w
  where w.owner_id = ev.owner_id and ev.type = any (w.events)
  order by w.id;
  if found then
    perform internal.poke_webhook_delivery();
  end if;
  return ev.id;
end $$;
comment on function internal.emit_event is 'Writes one event to the outbox (next sequence of its subject) and queues it for each of the owner''s endpoints subscribed to its type. Called by the event triggers.';

create function internal.call_event_data(c public.outbound_calls) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object(
    'callId', c.id, 'roomName', c.room_name, 'assistantId', c.assistant_id,
    'phoneNumberId', c.phone_number_id, 'campaignId', c.campaign_id, 'campaignCallId', c.campaign_call_id,
    'attempt', c.attempt, 'from', c.from_number, 'to', c.to_number, 'status', c.status,
    'outcome', c.outcome, 'sipStatusCode', c.sip_status_code, 'sipStatus', c.sip_status, 'error', c.error,
    'createdAt', c.created_at, 'answeredAt', c.answered_at, 'endedAt', c.ended_at, 'durationSec', c.duration_sec)
$$;
comment on function internal.call_event_data is 'The data of a call.* event: the call as the customer sees it.';

-- What a report added to the call (call-report's columns, whichever of them exist).
create function internal.call_report_data(c jsonb) returns jsonb
language sql immutable set search_path = '' as $$
  select coalesce(jsonb_object_agg(
    lower(left(k, 1)) || substr(replace(initcap(replace(k, '_', ' ')), ' ', ''), 2), c -> k), '{}'::jsonb)
  from unnest('{disposition,disposition_at,reported_at,callback_at,summary,report_data,disposition_data,transferred_to,transferred_at}'::text[]) k
  where c ? k
$$;
comment on function internal.call_report_data is 'The call-report fields of a call row that has them (disposition and what goes with it), camelCased.';

create function internal.emit_call_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  final constant public.call_status[] := '{completed,busy,no_answer,failed}';
  subject text := 'call:' || case when tg_op = 'DELETE' then old.id else new.id end;
  data jsonb;
  reported jsonb;
begin
  if tg_op = 'DELETE' then
    -- A record withdrawn before its dial (no agent joined, no carrier slot) closes what
    -- call.started opened; a deleted owner hears nothing.
    if not (old.status = any (final)) and exists (select from auth.users u where u.id = old.owner_id) then
      perform internal.emit_event(old.owner_id, 'call.ended', subject, old.id, old.campaign_id, old.phone_number_id,
        internal.call_event_data(old) || jsonb_build_object('status', 'failed', 'outcome', 'not_dialed',
          'error', coalesce(old.error, 'not dialed: the call was withdrawn before its dial was sent')));
    end if;
    return null;
  end if;
  data := internal.call_event_data(new);
  if tg_op = 'INSERT' then
    perform internal.emit_event(new.owner_id, 'call.started', subject, new.id, new.campaign_id, new.phone_number_id, data);
  end if;
  if new.answered_at is not null and (tg_op = 'INSERT' or old.answered_at is null) then
    perform internal.emit_event(new.owner_id, 'call.answered', subject, new.id, new.campaign_id, new.phone_number_id, data);
  end if;
  if new.status = any (final) and (tg_op = 'INSERT' or not (old.status = any (final))) then
    perform internal.emit_event(new.owner_id, 'call.ended', subject, new.id, new.campaign_id, new.phone_number_id, data);
  end if;
  -- call.reported fires on a change of outbound_calls.disposition, a column call-report adds;
  -- read through jsonb so this trigger works before and after that column exists.
  reported := internal.call_report_data(to_jsonb(new));
  if coalesce(reported -> 'disposition', 'null'::jsonb) <> 'null'::jsonb
     and (tg_op = 'INSERT' or (reported -> 'disposition') is distinct from (to_jsonb(old) -> 'disposition')) then
    perform internal.emit_event(new.owner_id, 'call.reported', subject, new.id, new.campaign_id, new.phone_number_id,
      data || reported);
  end if;
  return null;
end $$;
comment on function internal.emit_call_events is 'outbound_calls: call.started (inserted), call.answered (answered_at set), call.ended (a final status, or withdrawn undialed), call.reported (disposition changed).';

create function internal.campaign_event_data(c public.campaigns) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object(
    'campaignId', c.id, 'name', c.name, 'assistantId', c.assistant_id, 'phoneNumberId', c.phone_number_id,
    'status', c.status, 'statusReason', c.status_reason, 'startedAt', c.started_at, 'completedAt', c.completed_at)
$$;
comment on function internal.campaign_event_data is 'The data of a campaign.* event.';

create function internal.emit_campaign_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  previous public.campaign_status;
  data jsonb;
  subject text := 'campaign:' || new.id;
begin
  if tg_op = 'UPDATE' then
    previous := old.status;
  end if;
  data := internal.campaign_event_data(new) || jsonb_build_object('previousStatus', previous);
  if new.status = 'running' then
    perform internal.emit_event(new.owner_id, 'campaign.started', subject, null, new.id, new.phone_number_id, data);
  elsif new.status = 'paused' then
    perform internal.emit_event(new.owner_id, 'campaign.paused', subject, null, new.id, new.phone_number_id, data);
  elsif new.status in ('completed', 'cancelled') and tg_op = 'UPDATE' then
    -- The campaign is over: completed by the engine, or cancelled by its owner (status says which).
    perform internal.emit_event(new.owner_id, 'campaign.completed', subject, null, new.id, new.phone_number_id,
      data || (select jsonb_build_object('calls', jsonb_build_object(
          'total', count(*), 'completed', count(*) filter (where cc.status = 'completed'),
          'busy', count(*) filter (where cc.status = 'busy'), 'noAnswer', count(*) filter (where cc.status = 'no_answer'),
          'failed', count(*) filter (where cc.status = 'failed'), 'skipped', count(*) filter (where cc.status = 'skipped'),
          'cancelled', count(*) filter (where cc.status = 'cancelled')))
        from public.campaign_calls cc where cc.campaign_id = new.id));
  end if;
  return null;
end $$;
comment on function internal.emit_campaign_events is 'campaigns: campaign.started (running, also on resume), campaign.paused (with status_reason), campaign.completed (completed or cancelled, with the calls'' counts).';

create function internal.emit_number_events() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  data jsonb := jsonb_build_object('phoneNumberId', new.id, 'e164', new.e164, 'label', new.label,
    'assistantId', new.assistant_id, 'trunkStatus', new.trunk_status, 'trunkError', new.trunk_error,
    'inboundTrunkId', new.inbound_trunk_id, 'outboundTrunkId', new.outbound_trunk_id,
    'dispatchRuleId', new.dispatch_rule_id, 'carrierTrunk', new.carrier_trunk);
begin
  if new.trunk_status = 'ready' then
    perform internal.emit_event(new.owner_id, 'number.ready', 'number:' || new.id, null, null, new.id, data);
  elsif new.trunk_status = 'error' then
    perform internal.emit_event(new.owner_id, 'number.error', 'number:' || new.id, null, null, new.id, data);
  end if;
  return null;
end $$;
comment on function internal.emit_number_events is 'phone_number: number.ready and number.error when provisioning moves trunk_status there.';

-- Functions: endpoints ----------------------------------------------------------------------------
create function internal.create_webhook_endpoint(owner uuid, endpoint_url text, event_types text[], secret text)
returns public.webhook_endpoints
language plpgsql security definer set search_path = '' as $$
declare
  ep public.webhook_endpoints;
begin
  -- One owner's creations take turns, so the limit holds under concurrent requests.
  perform pg_advisory_xact_lock(hashtext('webhook_endpoints:' || owner::text));
  if (select count(*) from public.webhook_endpoints w where w.owner_id = owner) >= 20 then
    raise exception 'at most 20 webhook endpoints per user: delete one first' using errcode = '22023';
  end if;
  insert into public.webhook_endpoints (owner_id, url, events)
  values (owner, endpoint_url, coalesce(event_types, internal.webhook_event_types()))
  returning * into ep;
  insert into internal.webhook_lane (endpoint_id) values (ep.id);
  insert into internal.webhook_endpoint_secret (endpoint_id, secret_id)
  values (ep.id, vault.create_secret(secret, 'webhook_secret:' || ep.id, 'signs the deliveries of webhook endpoint ' || ep.id));
  return ep;
end $$;
comment on function internal.create_webhook_endpoint is 'webhook-endpoints: creates an endpoint for its owner, its delivery lane, and its signing secret in Vault.';

create function internal.webhook_endpoint_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.enabled and not old.enabled then
    -- Re-enabled by its owner: the failure clock restarts and queued deliveries go at once.
    new.disabled_reason := null;
    new.disabled_at := null;
    new.failing_since := null;
    update internal.webhook_lane set retry_at = now() where endpoint_id = new.id;
  elsif old.enabled and not new.enabled then
    new.disabled_at := coalesce(new.disabled_at, now());
    new.disabled_reason := coalesce(new.disabled_reason, 'disabled by its owner');
  end if;
  return new;
end $$;
comment on function internal.webhook_endpoint_changed is 'enabled toggled: a re-enabled endpoint resumes at once; a disabled one says why.';

create function internal.drop_webhook_secret() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from vault.secrets where id = old.secret_id;
  return null;
end $$;
comment on function internal.drop_webhook_secret is 'A deleted endpoint''s signing secret leaves Vault with it.';

create function internal.replay_webhook_events(
  endpoint uuid, since timestamptz default null, of_call uuid default null, of_campaign uuid default null,
  max_events integer default 10000
) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  ep public.webhook_endpoints;
  matched integer;
  queued integer;
begin
  select * into ep from public.webhook_endpoints where id = endpoint;
  if ep.id is null then
    raise exception 'webhook endpoint % does not exist', endpoint using errcode = 'P0002';
  end if;
  -- Oldest first, after whatever the endpoint has queued; the event ids are the originals.
  with picked as (
    select e.* from internal.events e
    where e.owner_id = ep.owner_id and e.type = any (ep.events)
      and (since is null or e.created_at >= since)
      and (of_call is null or e.call_id = of_call)
      and (of_campaign is null or e.campaign_id = of_campaign)
    order by e.id
    limit max_events + 1
  ), queued_rows as (
    insert into public.webhook_deliveries (owner_id, endpoint_id, event_ref, event_id, event_type, sequence,
      call_id, campaign_id, phone_number_id, replay)
    select p.owner_id, ep.id, p.id, p.event_id, p.type, p.sequence, p.call_id, p.campaign_id, p.phone_number_id, true
    from (select * from picked order by id limit max_events) p
    order by p.id
    returning 1
  )
  select (select count(*) from picked), (select count(*) from queued_rows) into matched, queued;
  if queued > 0 then
    perform internal.poke_webhook_delivery();
  end if;
  return jsonb_build_object('queued', queued, 'more', matched > max_events);
end $$;
comment on function internal.replay_webhook_events is 'webhook-endpoints: queues the owner''s past events again for one endpoint (by time, call or campaign), with their original ids, at most max_events at a time.';

-- Functions: delivery ---------------------------------------------------------------------------
create function internal.claim_webhook_lanes(run_id uuid, max_lanes integer, only_endpoint uuid default null)
returns table (endpoint_id uuid, url text, secret text, deliveries jsonb)
language plpgsql security definer set search_path = '' as $$
#variable_conflict use_column
declare
  s internal.webhook_settings;
  free integer;
  lane record;
begin
  select * into s from internal.webhook_settings;
  -- Claims take turns, so the cap on endpoints in flight holds across concurrent runs.
  perform pg_advisory_xact_lock(hashtext('webhook-claim'));
  free := least(max_lanes, s.max_lanes - (select count(*) from internal.webhook_lane l where l.lease_until > now()));
  if free <= 0 then
    return;
  end if;
  for lane in
    select l.endpoint_id, w.url, k.secret_id from internal.webhook_lane l
    join public.webhook_endpoints w on w.id = l.endpoint_id
    join internal.webhook_endpoint_secret k on k.endpoint_id = l.endpoint_id
    where w.enabled and l.retry_at <= now() and (l.lease_until is null or l.lease_until < now())
      and (only_endpoint is null or l.endpoint_id = only_endpoint)
      and exists (select from public.webhook_deliveries d where d.endpoint_id = l.endpoint_id and d.status = 'pending')
    order by l.retry_at
    limit free
    for update of l skip locked
  loop
    update internal.webhook_lane l set lease_owner = run_id, lease_until = now() + make_interval(secs => s.lease_sec)
    where l.endpoint_id = lane.endpoint_id;
    endpoint_id := lane.endpoint_id;
    url := lane.url;
    secret := (select v.decrypted_secret from vault.decrypted_secrets v where v.id = lane.secret_id);
    deliveries := (
      select jsonb_agg(jsonb_build_object('id', d.id, 'eventId', e.event_id, 'type', e.type,
          'timestamp', e.created_at, 'data', e.data, 'attemptCount', d.attempt_count) order by d.id)
      from (select x.* from public.webhook_deliveries x
            where x.endpoint_id = lane.endpoint_id and x.status = 'pending'
            order by x.id limit s.batch_size) d
      join internal.events e on e.id = d.event_ref);
    return next;
  end loop;
end $$;
comment on function internal.claim_webhook_lanes is 'webhook-deliver: leases up to max_lanes endpoints whose next delivery is due (within the settings'' cap on endpoints in flight), with their URL, secret and next pending deliveries in order.';

create function internal.record_webhook_attempt(
  run_id uuid, delivery_id bigint, succeeded boolean, status_code integer, error text, duration_ms integer,
  retry_after_sec numeric default null, gone boolean default false
) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  s internal.webhook_settings;
  d public.webhook_deliveries;
  w public.webhook_endpoints;
  held boolean;
  delay numeric := 0;
  answer text := coalesce('HTTP ' || status_code, error, 'no answer');
begin
  select * into s from internal.webhook_settings;
  update public.webhook_deliveries x set attempt_count = x.attempt_count + 1, last_attempt_at = now(),
    last_status_code = status_code, last_error = error,
    attempts = x.attempts || jsonb_build_object('at', now(), 'succeeded', succeeded, 'statusCode', status_code,
      'error', error, 'durationMs', duration_ms)
  where x.id = delivery_id
  returning * into d;
  if d.id is null then
    return false; -- its endpoint was deleted meanwhile
  end if;
  select l.lease_owner = run_id and l.lease_until > now() into held
  from internal.webhook_lane l where l.endpoint_id = d.endpoint_id for update;

  if succeeded then
    update public.webhook_deliveries set status = 'succeeded', delivered_at = now()
    where id = d.id and status = 'pending';
    update public.webhook_endpoints set failing_since = null where id = d.endpoint_id and failing_since is not null;
    if held then
      update internal.webhook_lane set lease_until = now() + make_interval(secs => s.lease_sec)
      where endpoint_id = d.endpoint_id;
    end if;
    return coalesce(held, false);
  end if;

  if d.attempt_count > cardinality(s.retry_delays_sec) then
    -- Its schedule ran out: it is given up, and the next delivery takes its place.
    update public.webhook_deliveries set status = 'failed' where id = d.id and status = 'pending';
  else
    delay := s.retry_delays_sec[d.attempt_count] * s.time_scale * (0.9 + random() * 0.2);
    -- A receiver's Retry-After (up to a day) is honoured as the least wait.
    delay := greatest(delay, least(coalesce(retry_after_sec, 0), 86400));
    update public.webhook_deliveries set next_attempt_at = now() + make_interval(secs => delay) where id = d.id;
  end if;
  -- The endpoint waits with its head: later deliveries never overtake it.
  update internal.webhook_lane set retry_at = now() + make_interval(secs => delay), lease_owner = null, lease_until = null
  where endpoint_id = d.endpoint_id and lease_owner = run_id;

  update public.webhook_endpoints set failing_since = coalesce(failing_since, now())
  where id = d.endpoint_id returning * into w;
  if w.enabled and (gone or w.failing_since <= now() - make_interval(secs => s.disable_after_sec)) then
    update public.webhook_endpoints set enabled = false, disabled_at = now(),
      disabled_reason = case when gone
        then format('disabled at %s: the endpoint answered 410 Gone to event %s. Set enabled = true to resume.',
                    now(), d.event_id)
        else format('disabled at %s: no delivery succeeded since %s (event %s failed %s times; the last answer: %s). Fix the receiver, then set enabled = true: its queued deliveries resume in order.',
                    now(), w.failing_since, d.event_id, d.attempt_count, answer) end
    where id = d.endpoint_id;
  end if;
  return false;
end $$;
comment on function internal.record_webhook_attempt is 'webhook-deliver: records one attempt. Success: the delivery is done and the lane''s lease extended (true: go on while the lease is held). Failure: the next retry by the schedule (the lane waits with it), given up past the schedule, the endpoint disabled after disable_after_sec of failures or on 410 Gone (false: stop).';

create function internal.release_webhook_lane(run_id uuid, endpoint uuid) returns void
language sql security definer set search_path = '' as $$
  update internal.webhook_lane set lease_owner = null, lease_until = null
  where endpoint_id = endpoint and lease_owner = run_id
$$;
comment on function internal.release_webhook_lane is 'webhook-deliver: gives an endpoint''s lane back (more pending deliveries are claimable at once).';

create function internal.sweep_webhooks() returns bigint
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (
    select from internal.webhook_lane l join public.webhook_endpoints w on w.id = l.endpoint_id
    where w.enabled and l.retry_at <= now() and (l.lease_until is null or l.lease_until < now())
      and exists (select from public.webhook_deliveries d where d.endpoint_id = l.endpoint_id and d.status = 'pending')
  ) then
    return null;
  end if;
  return internal.call_function('webhook-deliver', '{}'::jsonb);
end $$;
comment on function internal.sweep_webhooks is 'pg_cron: pokes webhook-deliver when a delivery is due (retries, lost pokes, leases of runs that died).';

create function internal.cleanup_webhooks() returns void
language sql security definer set search_path = '' as $$
  delete from public.webhook_deliveries where created_at < now() - interval '30 days';
  delete from internal.events e where e.created_at < now() - interval '30 days'
    and not exists (select from public.webhook_deliveries d where d.event_ref = e.id);
$$;
comment on function internal.cleanup_webhooks is 'Daily: events and deliveries are kept 30 days (replays reach that far back).';

-- Triggers -------------------------------------------------------------------------------------
create trigger emit_events after insert or delete on public.outbound_calls
  for each row execute function internal.emit_call_events();
create trigger emit_events_on_change after update on public.outbound_calls
  for each row when (old.status is distinct from new.status
    or (old.answered_at is null and new.answered_at is not null)
    or (to_jsonb(old) -> 'disposition') is distinct from (to_jsonb(new) -> 'disposition'))
  execute function internal.emit_call_events();
create trigger emit_events after insert on public.campaigns
  for each row execute function internal.emit_campaign_events();
create trigger emit_events_on_change after update on public.campaigns
  for each row when (old.status is distinct from new.status)
  execute function internal.emit_campaign_events();
create trigger emit_events_on_change after update on public.phone_number
  for each row when (old.trunk_status is distinct from new.trunk_status)
  execute function internal.emit_number_events();
create trigger touch before update on public.webhook_endpoints
  for each row execute function internal.touch();
create trigger enabled_change before update of enabled on public.webhook_endpoints
  for each row execute function internal.webhook_endpoint_changed();
create trigger drop_secret after delete on internal.webhook_endpoint_secret
  for each row execute function internal.drop_webhook_secret();

-- Policies -------------------------------------------------------------------------------------
alter table public.webhook_endpoints enable row level security;
alter table public.webhook_deliveries enable row level security;
alter table internal.webhook_endpoint_secret enable row level security;
alter table internal.webhook_lane enable row level security;
alter table internal.events enable row level security;
alter table internal.webhook_settings enable row level security;
alter table internal.webhook_poke enable row level security;

create policy owner_read on public.webhook_endpoints for select to authenticated
  using (owner_id = (select internal.account_uid()));
create policy owner_update on public.webhook_endpoints for update to authenticated
  using (owner_id = (select internal.account_uid())) with check (owner_id = (select internal.account_uid()));
create policy owner_delete on public.webhook_endpoints for delete to authenticated
  using (owner_id = (select internal.account_uid()));
create policy owner_read on public.webhook_deliveries for select to authenticated
  using (owner_id = (select internal.account_uid()));

-- Grants ---------------------------------------------------------------------------------------
revoke all on public.webhook_endpoints, public.webhook_deliveries from anon, authenticated, public;
grant select, delete on public.webhook_endpoints to authenticated;
grant update (enabled) on public.webhook_endpoints to authenticated;
grant select on public.webhook_deliveries to authenticated;
grant all on public.webhook_endpoints, public.webhook_deliveries to service_role;
revoke all on internal.webhook_endpoint_secret, internal.webhook_lane, internal.events, internal.webhook_settings,
  internal.webhook_poke from public, anon, authenticated;
grant all on internal.webhook_endpoint_secret, internal.webhook_lane, internal.events, internal.webhook_settings,
  internal.webhook_poke to service_role;
revoke all on function internal.poke_webhook_delivery, internal.emit_event, internal.call_event_data,
  internal.call_report_data, internal.emit_call_events, internal.campaign_event_data, internal.emit_campaign_events,
  internal.emit_number_events, internal.create_webhook_endpoint, internal.webhook_endpoint_changed,
  internal.drop_webhook_secret, internal.replay_webhook_events, internal.claim_webhook_lanes,
  internal.record_webhook_attempt, internal.release_webhook_lane, internal.sweep_webhooks,
  internal.cleanup_webhooks from public;

