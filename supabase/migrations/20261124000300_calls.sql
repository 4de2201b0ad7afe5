-- Placing calls: a per-user rate limit for create-participant.

-- Tables ---------------------------------------------------------------------------------
create table internal.rate_limit (
  owner_id uuid not null,
  bucket text not null,
  window_start timestamptz not null,
  count integer not null default 0,
  primary key (owner_id, bucket, window_start)
);
comment on table internal.rate_limit is 'Fixed one-minute windows counting a user''s calls of a rate-limited function.';
alter table internal.rate_limit enable row level security;

-- Functions --------------------------------------------------------------------------------
create function internal.take_rate_limit(owner uuid, bucket_name text, per_minute integer)
returns integer
language plpgsql security definer set search_path = '' as $$
declare
  this_window timestamptz := date_trunc('minute', now());
  used integer;
begin
  insert into internal.rate_limit (owner_id, bucket, window_start, count)
  values (owner, bucket_name, this_window, 1)
  on conflict (owner_id, bucket, window_start) do update set count = internal.rate_limit.count + 1
  returning count into used;
  if used <= per_minute then
    return 0;
  end if;
  return greatest(1, ceil(extract(epoch from (this_window + interval '1 minute' - now())))::integer);
end $$;
comment on function internal.take_rate_limit is 'Counts one use; returns 0 when allowed, else the seconds until the window resets. Called by create-participant.';

create or replace function internal.cleanup() returns void
language sql security definer set search_path = '' as $$
  delete from cron.job_run_details where end_time < now() - interval '7 days';
  delete from internal.provisioning_job where status = 'done' and done_at < now() - interval '30 days';
  delete from internal.rate_limit where window_start < now() - interval '1 hour';
$$;

-- Grants -----------------------------------------------------------------------------------
revoke all on table internal.rate_limit from public, anon, authenticated;
grant all on table internal.rate_limit to service_role;
revoke all on function internal.take_rate_limit from public;
