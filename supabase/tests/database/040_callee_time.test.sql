-- Callee time: number normalisation, a number's country and zone, and calling windows in
-- the callee's local time.
begin;
select plan(79);

-- Normalisation ---------------------------------------------------------------------------
select is(internal.normalise_number('+1 (415) 555-0100'), '+14155550100',
  'an international NANP number with brackets and dashes is normalised');
select is(internal.normalise_number('415.555.0100'), '+14155550100',
  'a dotted ten-digit number is a US number by default');
select is(internal.normalise_number('1-415-555-0100'), '+14155550100',
  'a national NANP number with its leading 1 is normalised');
select is(internal.normalise_number('604 555 0100', 'CA'), '+16045550100',
  'a Canadian default country dials under +1 too');
select is(internal.normalise_number('00 44 20 7123 4567'), '+442071234567',
  'the 00 international prefix is understood');
select is(internal.normalise_number('011 44 20 7123 4567'), '+442071234567',
  'the 011 international prefix is understood for a NANP default country');
select is(internal.normalise_number('020 7123 4567', 'GB'), '+442071234567',
  'a British national number drops its trunk 0 and gains +44');
select is(internal.normalise_number('020 7123 4567', 'gb'), '+442071234567',
  'the default country is case-insensitive');
select is(internal.normalise_number('+44 (0)20 7123 4567'), '+442071234567',
  'a bracketed trunk prefix in an international number is dropped');
select is(internal.normalise_number('0113 496 0000', 'GB'), '+441134960000',
  'a British number starting 011 is national, not an international prefix');
select is(internal.normalise_number('06 1234 5678', 'IT'), '+390612345678',
  'an Italian number keeps its leading 0');
select is(internal.normalise_number('8 (495) 123-45-67', 'RU'), '+74951234567',
  'a Russian national number drops its trunk 8');
select is(internal.normalise_number('+14155550100'), '+14155550100',
  'an E.164 number is returned unchanged');
select is(internal.normalise_number('+1 800 555 0100'), '+18005550100',
  'a toll-free NANP number is a valid number');
select is(internal.normalise_number('415-555-CALL'), null, 'a number with letters is refused');
select is(internal.normalise_number('555-0100'), null, 'a seven-digit US number is too short');
select is(internal.normalise_number('01234', 'GB'), null, 'a number under seven digits is refused');
select is(internal.normalise_number('+1234567890123456'), null, 'a number over fifteen digits is refused');
select is(internal.normalise_number('+1 115 555 0100'), null, 'a NANP area code cannot start with 1');
select is(internal.normalise_number('(415) 155-0100'), null, 'a NANP exchange cannot start with 1');
select is(internal.normalise_number('415 555 01000'), null, 'an eleven-digit US number not starting with 1 is refused');
select is(internal.normalise_number('020 7123 4567', 'ZZ'), null, 'a national number of an unknown country is refused');
select is(internal.normalise_number('020 7123 4567', null), null, 'a national number without a country is refused');
select is(internal.normalise_number('+999 1234 5678'), null, 'an unassigned calling code is refused');
select is(internal.normalise_number('+44+20 7123 4567'), null, 'a plus sign inside the number is refused');
select is(internal.normalise_number(''), null, 'an empty string is not a number');
select is(internal.normalise_number(null), null, 'null is not a number');

-- Country and zone of a number ----------------------------------------------------------------
select is(array[internal.number_country('+12125550100'), internal.number_timezone('+12125550100')],
  array['US', 'America/New_York'], 'a 212 number is in New York');
select is(array[internal.number_country('+13125550100'), internal.number_timezone('+13125550100')],
  array['US', 'America/Chicago'], 'a 312 number is in Chicago');
select is(array[internal.number_country('+13035550100'), internal.number_timezone('+13035550100')],
  array['US', 'America/Denver'], 'a 303 number is on Mountain time');
select is(array[internal.number_country('+16025550100'), internal.number_timezone('+16025550100')],
  array['US', 'America/Phoenix'], 'a 602 number is on Arizona time');
select is(array[internal.number_country('+14155550100'), internal.number_timezone('+14155550100')],
  array['US', 'America/Los_Angeles'], 'a 415 number is on Pacific time');
select is(internal.number_timezone('+19075550100'), 'America/Anchorage', 'a 907 number is in Alaska');
select is(internal.number_timezone('+18085550100'), 'Pacific/Honolulu', 'an 808 number is in Hawaii');
select is(array[internal.number_country('+14165550100'), internal.number_timezone('+14165550100')],
  array['CA', 'America/Toronto'], 'a 416 number is in Toronto, Canada');
select is(array[internal.number_country('+16045550100'), internal.number_timezone('+16045550100')],
  array['CA', 'America/Vancouver'], 'a 604 number is in Vancouver, Canada');
select is(internal.number_timezone('+17095550100'), 'America/St_Johns', 'a 709 number is on Newfoundland time');
select is(array[internal.number_country('+17875550100'), internal.number_timezone('+17875550100')],
  array['PR', 'America/Puerto_Rico'], 'a 787 number is in Puerto Rico');
select is(array[internal.number_country('+18765550100'), internal.number_timezone('+18765550100')],
  array['JM', 'America/Jamaica'], 'an 876 number is in Jamaica');
select is(array[internal.number_country('+18005550100'), internal.number_timezone('+18005550100')],
  array['US', null]::text[], 'a toll-free 800 number is in the US, as libphonenumber-js has it, and has no zone');
select is(array[internal.number_country('+442071234567'), internal.number_timezone('+442071234567')],
  array['GB', 'Europe/London'], 'a +44 number is in Great Britain');
select is(array[internal.number_country('+33142685300'), internal.number_timezone('+33142685300')],
  array['FR', 'Europe/Paris'], 'a +33 number is in France');
select is(array[internal.number_country('+919876543210'), internal.number_timezone('+919876543210')],
  array['IN', 'Asia/Calcutta'], 'a +91 number is in India (CLDR''s name for Asia/Kolkata)');
select is(array[internal.number_country('+61291234567'), internal.number_timezone('+61291234567')],
  array['AU', 'Australia/Sydney'], 'a +61 number is in Australia, on Sydney time');
select is(array[internal.number_country('+77012345678'), internal.number_country('+74951234567')],
  array['KZ', 'RU'], 'the longest calling-code prefix wins within +7');
select is(internal.number_timezone('not a number'), null, 'a malformed number has no zone');

-- Calling windows ------------------------------------------------------------------------------
-- 2026-06-16 is a Tuesday; New York is on EDT (UTC-4).
select ok(internal.in_window('2026-06-16 14:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  'a Tuesday afternoon in New York is inside a weekday 9-to-5 window');
select is(internal.next_window_start('2026-06-16 14:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-06-16 14:00-04'::timestamptz, 'inside the window the next start is now');
select ok(internal.in_window('2026-06-16 09:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  'the window is open at its start time');
select ok(not internal.in_window('2026-06-16 17:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  'the window is closed at its end time');
select is(internal.next_window_start('2026-06-16 07:30-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-06-16 09:00-04'::timestamptz, 'before opening, the window starts later the same day');
select is(internal.next_window_start('2026-06-16 21:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-06-17 09:00-04'::timestamptz, 'after closing, the window starts on the next allowed day');
select is(internal.next_window_start('2026-06-20 12:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-06-22 09:00-04'::timestamptz, 'a weekday-only window skips Saturday and Sunday');
select is(internal.next_window_start('2026-06-19 20:30-04', 'America/New_York', '09:00', '20:00', '{1,2,3,4,5}'),
  '2026-06-22 09:00-04'::timestamptz, 'Friday evening jumps to Monday morning');
select ok(internal.in_window('2026-06-20 01:00+00', 'America/New_York', '09:00', '22:00', '{1,2,3,4,5}'),
  'the callee''s weekday counts: Saturday in UTC is still Friday evening in New York');
select ok(not internal.in_window('2026-06-16 14:00-04', 'America/New_York', '09:00', '17:00', '{6,7}'),
  'a weekend-only window is closed on a Tuesday');

-- DST in New York: spring forward on Sunday 2026-03-08, fall back on Sunday 2026-11-01.
select is(internal.next_window_start('2026-03-08 06:00+00', 'America/New_York', '09:00', '21:00', '{1,2,3,4,5,6,7}'),
  '2026-03-08 13:00+00'::timestamptz, 'on the spring-forward day the window opens at 9:00 EDT');
select is(internal.next_window_start('2026-03-07 22:00-05', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-03-09 09:00-04'::timestamptz, 'a weekend that springs forward still opens at 9:00 local on Monday');
select ok(not internal.in_window('2026-03-08 13:30+00', 'America/New_York', '10:00', '21:00', '{7}'),
  'after springing forward 13:30 UTC is 9:30 local, before a 10:00 window');
select is(internal.next_window_start('2026-11-01 03:00+00', 'America/New_York', '09:00', '21:00', '{1,2,3,4,5,6,7}'),
  '2026-11-01 14:00+00'::timestamptz, 'on the fall-back day the window opens at 9:00 EST');
select ok(not internal.in_window('2026-11-01 13:30+00', 'America/New_York', '09:00', '21:00', '{1,2,3,4,5,6,7}'),
  'after falling back 13:30 UTC is 8:30 local, before the window');
select is(internal.next_window_start('2026-10-30 18:00-04', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-11-02 09:00-05'::timestamptz, 'a weekend that falls back still opens at 9:00 local on Monday');

select is(internal.next_window_start('2026-03-08 05:00+00', 'America/New_York', '02:30', '03:30', '{7}'),
  '2026-03-08 07:00+00'::timestamptz, 'a start time skipped by spring-forward opens when the clocks jump to 3:00');
select is(internal.next_window_start('2026-11-01 05:00+00', 'America/New_York', '01:30', '02:00', '{7}'),
  '2026-11-01 05:30+00'::timestamptz, 'a start time repeated by fall-back opens at its first occurrence');
select is(internal.next_window_start('2026-11-01 05:40+00', 'America/New_York', '00:30', '01:30', '{7}'),
  '2026-11-01 06:00+00'::timestamptz, 'falling back from 1:59 to 1:00 reopens a window that ends at 1:30');

-- No DST in Phoenix: 9:00 there is 16:00 UTC in summer and winter alike.
select ok(not internal.in_window('2026-07-15 15:30+00', 'America/Phoenix', '09:00', '17:00', '{1,2,3,4,5}')
  and internal.in_window('2026-07-15 15:30+00', 'America/New_York', '09:00', '17:00', '{1,2,3,4,5}'),
  'on a summer morning New York is open while Phoenix is not yet');
select is(internal.next_window_start('2026-07-15 15:30+00', 'America/Phoenix', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-07-15 16:00+00'::timestamptz, 'Phoenix opens at 16:00 UTC in summer (no DST)');
select is(internal.next_window_start('2026-01-15 15:30+00', 'America/Phoenix', '09:00', '17:00', '{1,2,3,4,5}'),
  '2026-01-15 16:00+00'::timestamptz, 'Phoenix opens at 16:00 UTC in winter too');

-- Half-hour offsets.
select is(internal.next_window_start('2026-06-16 03:00+00', 'Asia/Kolkata', '09:00', '21:00', '{1,2,3,4,5}'),
  '2026-06-16 03:30+00'::timestamptz, 'Kolkata (UTC+5:30) opens at 03:30 UTC');
select ok(internal.in_window('2026-06-16 03:30+00', 'Asia/Kolkata', '09:00', '21:00', '{1,2,3,4,5}'),
  'Kolkata is inside the window at 9:00 local');
select is(internal.next_window_start('2026-06-16 11:00+00', 'America/St_Johns', '09:00', '21:00', '{1,2,3,4,5}'),
  '2026-06-16 11:30+00'::timestamptz, 'St. John''s (UTC-2:30 in summer) opens at 11:30 UTC');

-- Windows that never open.
select is(internal.next_window_start('2026-06-16 14:00-04', 'America/New_York', '09:00', '17:00', '{}'),
  null, 'a window with no weekdays never opens');
select is(internal.next_window_start('2026-06-16 14:00-04', 'America/New_York', '17:00', '09:00', '{1,2,3,4,5}'),
  null, 'a window that closes before it opens never opens');

-- Data -------------------------------------------------------------------------------------------
-- Loaded from supabase/data/phone_metadata.sql (tests/e2e/phone_metadata.test.ts compares it with
-- libphonenumber-js number by number).
select is((select count(*)::int from internal.phone_zone z
  where z.timezone is not null and not internal.is_timezone(z.timezone)), 0,
  'every zone of the zone map is a known IANA zone');
select ok((select count(*) from internal.phone_zone where prefix ~ '^1[2-9][0-9]{2}$') >= 300,
  'the zone map covers at least 300 NANP area codes');
select is((select count(*)::int from unnest(array['500', '600', '700', '710', '800', '833', '844', '855', '866',
  '877', '888', '900']) a where internal.number_timezone('+1' || a || '5550100') is not null), 0,
  'non-geographic NANP codes have no zone');

-- Privileges ---------------------------------------------------------------------------------------
select tests.authenticate_as(tests.create_user('callee-time@example.com'));
select is(internal.number_timezone('+12125550100'), 'America/New_York',
  'a signed-in user can look up a number''s zone');
select throws_ok('select * from internal.phone_zone', '42501', null,
  'a signed-in user cannot read the zone map directly');
select tests.authenticate_as_anon();
select throws_ok($$select internal.normalise_number('+14155550100')$$, '42501', null,
  'an anonymous caller cannot use the number functions');
select tests.clear_authentication();

select * from finish();
rollback;
