-- Number pools and number health: a campaign dials from a set of its owner's ready numbers
-- (campaigns.caller_number_ids and caller_id_strategy), kept honest as numbers move between
-- assistants and owners; each number's health is kept as its calls end (answer rate, share of
-- very short calls, carrier rejections), and a number past a threshold rests, so no campaign dials
-- from it until the rest ends. Choosing a number per callee is part of the claim
-- (20261202000600_dialing.sql), which records the least recently used number here.

-- Tables -------------------------------------------------------------------------------------
create table internal.number_health_settings (
  id boolean primary key default true check (id),
  window_calls integer not null default 50 check (window_calls between 1 and 1000),
  window_sec integer not null default 86400 check (window_sec between 60 and 2592000),
  min_sample integer not null default 20 check (min_sample >= 1),
  min_answered integer not null default 10 check (min_answered >= 1),
  min_answer_rate numeric(4, 3) not null default 0.10 check (min_answer_rate between 0 and 1),
  short_call_sec numeric(8, 3) not null default 12 check (short_call_sec >= 0),
  max_short_share numeric(4, 3) not null default 0.5 check (max_short_share between 0 and 1),
  max_rejection_share numeric(4, 3) not null default 0.2 check (max_rejection_share between 0 and 1),
  rest_sec integer not null default 86400 check (rest_sec between 60 and 2592000)
);
comment on table internal.number_health_settings is 'Thresholds of number health (one row). A number is judged over its last window_calls calls ended within window_sec: rested for rest_sec when the answer rate is under min_answer_rate or carrier rejections pass max_rejection_share (both once min_sample calls ended), or when more than max_short_share of its answered calls ended under short_call_sec (once min_answered were answered; 0 turns that rule off).';
insert into internal.number_health_settings default values;

create table public.phone_number_health (
  phone_number_id uuid primary key references public.phone_number (id) on delete cascade,
  calls integer not null default 0,
  answered integer not null default 0,
  short_calls integer not null default 0,
  carrier_rejections integer not null default 0,
  answer_rate numeric(5, 4),
  short_share numeric(5, 4),
  rejection_share numeric(5, 4),
  since timestamptz not null default '-infinity',
  last_call_at timestamptz,
  rested_at timestamptz,
  rests integer not null default 0
);
comment on table public.phone_number_health is 'Each number''s health over its recent calls (internal.number_health_settings), updated as each call ends (of calls ending at the same moment, one writes); calls ended before since (a rest''s end, or when its owner cleared it) are not judged again.';

create table internal.number_usage (
  phone_number_id uuid primary key references public.phone_number (id) on delete cascade,
  last_used_at timestamptz not null default '-infinity'
);
comment on table internal.number_usage is 'When each number was last given to a callee, by any campaign: local presence takes the least recently used among equals. Written only by the claim, never waited on (a row another claim holds is skipped).';

-- Functions ----------------------------------------------------------------------------------
-- Only the owner's ready numbers of the campaign's assistant may join a pool.
create function internal.check_caller_numbers() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  bad uuid;
  before uuid[] := '{}';
  same_assistant boolean := false;
begin
  if tg_op = 'UPDATE' then
    before := coalesce(old.caller_number_ids, '{}');
    same_assistant := new.assistant_id = old.assistant_id;
  end if;
  if new.caller_number_ids is not null then
    -- Duplicates dropped, order kept (fixed dials from the first usable one).
    select array_agg(u.id order by u.ord) into new.caller_number_ids
    from (select x.id, min(x.ord) as ord from unnest(new.caller_number_ids) with ordinality x(id, ord)
          where x.id is not null group by x.id) u;
  end if;
  -- Numbers already in the pool may stay while they are not ready (they are skipped then).
  select x.id into bad
  from unnest(new.caller_number_ids) x(id)
  where not (same_assistant and x.id = any (before))
    and not exists (select from public.phone_number p
                    where p.id = x.id and p.owner_id = new.owner_id and p.assistant_id = new.assistant_id
                      and p.trunk_status = 'ready')
  limit 1;
  if bad is not null then
    raise exception 'number % cannot be a caller number of this campaign: only the owner''s ready numbers assigned to the campaign''s assistant can', bad
      using errcode = '23514', column = 'caller_number_ids', constraint = 'campaigns_caller_number_ids_ready';
  end if;
  return new;
end $$;
comment on function internal.check_caller_numbers is 'campaigns: caller_number_ids may only hold the owner''s ready numbers assigned to the campaign''s assistant (duplicates dropped).';

-- A number leaving its assistant or owner leaves the pools that held it.
create function internal.number_left_pools() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'DELETE' then
    update public.campaigns c set caller_number_ids = nullif(array_remove(c.caller_number_ids, old.id), '{}')
    where c.caller_number_ids @> array[old.id];
    return null;
  end if;
  update public.campaigns c set caller_number_ids = nullif(array_remove(c.caller_number_ids, new.id), '{}')
  where c.caller_number_ids @> array[new.id]
    and (c.owner_id <> new.owner_id or new.assistant_id is null or c.assistant_id <> new.assistant_id);
  return null;
end $$;
comment on function internal.number_left_pools is 'phone_number: a number unassigned, moved to another assistant or owner, or deleted leaves every campaign pool holding it.';

-- A rest its owner cleared (or that ended) starts a fresh sample.
create function internal.number_rest_changed() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.rest_until is null then
    new.rest_reason := null;
  end if;
  if old.rest_until > now() and (new.rest_until is null or new.rest_until <= now()) then
    update public.phone_number_health set since = clock_timestamp() where phone_number_id = new.id;
  end if;
  return new;
end $$;
comment on function internal.number_rest_changed is 'phone_number: clearing a rest clears its reason, and only calls ending afterwards judge the number again.';

-- Health as calls end: one index range read of the number's last calls.
create function internal.record_number_health() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  s internal.number_health_settings;
  h public.phone_number_health;
  p public.phone_number;
  n record;
  reason text;
begin
  select * into s from internal.number_health_settings where id;
  insert into public.phone_number_health (phone_number_id) values (new.phone_number_id) on conflict do nothing;
  select * into h from public.phone_number_health where phone_number_id = new.phone_number_id;
  select count(*)::integer as calls,
    (count(*) filter (where x.answered_at is not null))::integer as answered,
    (count(*) filter (where x.answered_at is not null and s.short_call_sec > 0
                        and x.ended_at - x.answered_at < make_interval(secs => s.short_call_sec)))::integer as short_calls,
    (count(*) filter (where x.outcome = 'blocked'))::integer as rejections
  into n
  from (select o.answered_at, o.ended_at, o.outcome from public.outbound_calls o
        where o.phone_number_id = new.phone_number_id and o.ended_at is not null
          and o.ended_at >= greatest(h.since, now() - make_interval(secs => s.window_sec))
          and internal.call_is_final(o.status)
          -- Not the number's doing: the trunk's budget or credentials, LiveKit, an unknown end.
          and coalesce(o.outcome, 'failed') not in ('cps_limited', 'auth_failed', 'carrier_error', 'livekit_error', 'lost')
        order by o.ended_at desc
        limit s.window_calls) x;
  -- Calls ending at once do not queue for the row: one that finds it taken leaves the write to
  -- the other, and the next call's end writes the counts afresh.
  update public.phone_number_health set calls = n.calls, answered = n.answered, short_calls = n.short_calls,
    carrier_rejections = n.rejections,
    answer_rate = round(n.answered::numeric / nullif(n.calls, 0), 4),
    short_share = round(n.short_calls::numeric / nullif(n.answered, 0), 4),
    rejection_share = round(n.rejections::numeric / nullif(n.calls, 0), 4),
    last_call_at = new.ended_at
  where phone_number_id = (select l.phone_number_id from public.phone_number_health l
                           where l.phone_number_id = new.phone_number_id for update skip locked);

  select * into p from public.phone_number where id = new.phone_number_id;
  if p.rest_until > now() then
    return null;
  end if;
  reason := case
    when s.short_call_sec > 0 and n.answered >= s.min_answered and n.short_calls::numeric / n.answered > s.max_short_share then
      format('%s of its last %s answered calls ended under %s s (limit %s %%)',
             n.short_calls, n.answered, s.short_call_sec::float8, round(s.max_short_share * 100, 1))
    when n.calls >= s.min_sample and n.answered::numeric / n.calls < s.min_answer_rate then
      format('answer rate %s %% over its last %s calls (minimum %s %%)',
             round(n.answered * 100.0 / n.calls, 1), n.calls, round(s.min_answer_rate * 100, 1))
    when n.calls >= s.min_sample and n.rejections::numeric / n.calls > s.max_rejection_share then
      format('the carrier rejected %s of its last %s calls (limit %s %%)',
             n.rejections, n.calls, round(s.max_rejection_share * 100, 1))
  end;
  if reason is not null then
    -- The health row first, then the number: two ends resting the same number take turns, and
    -- the second finds it resting. A number being changed right now (its owner, provisioning) is
    -- not waited for: the next call's end judges it again. Only a change skips it: the key-share
    -- locks of rows that merely reference the number (a call being written from it, a contact
    -- given it as caller) do not conflict with this non-key update.
    perform 1 from public.phone_number_health where phone_number_id = p.id for update;
    update public.phone_number set rest_until = now() + make_interval(secs => s.rest_sec), rest_reason = reason
    where id = (select x.id from public.phone_number x
                where x.id = p.id and (x.rest_until is null or x.rest_until <= now())
                for no key update skip locked);
    if not found then
      return null;
    end if;
    -- What was judged is not judged again after the rest.
    update public.phone_number_health set rested_at = now(), rests = rests + 1,
      since = now() + make_interval(secs => s.rest_sec)
    where phone_number_id = p.id;
  end if;
  return null;
end $$;
comment on function internal.record_number_health is 'Trigger: when a call ends, its number''s health over its recent calls is recomputed, and the number rests when past a threshold (internal.number_health_settings).';

-- Triggers -----------------------------------------------------------------------------------
create trigger caller_numbers before insert or update of caller_number_ids, assistant_id on public.campaigns
  for each row execute function internal.check_caller_numbers();
create trigger left_pools after update of assistant_id, owner_id on public.phone_number
  for each row when (old.assistant_id is distinct from new.assistant_id or old.owner_id is distinct from new.owner_id)
  execute function internal.number_left_pools();
create trigger left_pools_on_delete after delete on public.phone_number
  for each row execute function internal.number_left_pools();
create trigger rest_changed before update of rest_until on public.phone_number
  for each row when (old.rest_until is distinct from new.rest_until)
  execute function internal.number_rest_changed();
create trigger number_health after update of status on public.outbound_calls
  for each row when (not internal.call_is_final(old.status) and internal.call_is_final(new.status)
                     and new.phone_number_id is not null)
  execute function internal.record_number_health();

-- Policies -------------------------------------------------------------------------------------
alter table internal.number_health_settings enable row level security;
alter table public.phone_number_health enable row level security;
alter table internal.number_usage enable row level security;
create policy owner_read on public.phone_number_health for select to authenticated
  using (exists (select from public.phone_number p where p.id = phone_number_id and p.owner_id = (select internal.account_uid())));

-- Grants -------------------------------------------------------------------------------------
revoke all on public.phone_number_health from anon, authenticated;
grant select on public.phone_number_health to authenticated;
grant all on public.phone_number_health to service_role;
revoke all on table internal.number_health_settings, internal.number_usage from public, anon, authenticated;
grant all on table internal.number_health_settings, internal.number_usage to service_role;
revoke all on function internal.check_caller_numbers, internal.number_left_pools,
  internal.number_rest_changed, internal.record_number_health from public;
