-- A lease is one holder's at a time: taken when free or expired, renewed by its holder,
-- released only by its holder, and never reachable through the API.
begin;
select plan(8);

select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000a', 60), true,
  'a free lease is taken');
select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000b', 60), null,
  'a held lease is not taken by another');
select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000a', 60), true,
  'its holder renews it');
select internal.release_lease('k', '00000000-0000-0000-0000-00000000000b');
select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000b', 60), null,
  'only the holder releases it');
select internal.release_lease('k', '00000000-0000-0000-0000-00000000000a');
select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000b', 60), true,
  'a released lease is free');
update internal.lease set until = now() - interval '1 second' where key = 'k';
select is(internal.take_lease('k', '00000000-0000-0000-0000-00000000000c', 60), true,
  'an expired lease is free (its holder crashed)');
select ok(not has_table_privilege('authenticated', 'internal.lease', 'select'),
  'the API roles cannot read leases');
select ok(not has_function_privilege('authenticated', 'internal.take_lease(text, uuid, integer)', 'execute'),
  'the API roles cannot take leases');

select * from finish();
rollback;
