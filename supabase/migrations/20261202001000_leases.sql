-- Leases: a named piece of work (provisioning a number, ensuring an account's carrier trunk) is
-- done by one worker at a time without holding a transaction open across its HTTP calls to
-- LiveKit and Twilio. A lease is a row with a holder and an expiry: taken when free or expired,
-- released by its holder, and given up by a crashed holder when it expires.
create table internal.lease (
  key text primary key,
  holder uuid not null,
  until timestamptz not null
);
comment on table internal.lease is 'Who works on what (provision:<e164>, sip_trunk:<account>) until when; a lease past its expiry is free.';
alter table internal.lease enable row level security;

create function internal.take_lease(lease_key text, lease_holder uuid, ttl_sec integer)
returns boolean language sql volatile set search_path = '' as $$
  insert into internal.lease as l (key, holder, until)
  values (lease_key, lease_holder, now() + make_interval(secs => ttl_sec))
  on conflict (key) do update set holder = excluded.holder, until = excluded.until
    where l.until < now() or l.holder = excluded.holder
  returning true
$$;
comment on function internal.take_lease is 'Takes (or renews) the lease when it is free, expired or already ours; true when it is ours.';

create function internal.release_lease(lease_key text, lease_holder uuid)
returns void language sql volatile set search_path = '' as $$
  delete from internal.lease where key = lease_key and holder = lease_holder
$$;

revoke all on table internal.lease from public, anon, authenticated;
revoke all on function internal.take_lease(text, uuid, integer) from public, anon, authenticated;
revoke all on function internal.release_lease(text, uuid) from public, anon, authenticated;
