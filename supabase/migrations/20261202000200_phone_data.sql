-- Phone metadata: which country a number belongs to, the time zone it most likely rings in and,
-- under +1, the state, province or territory of its area code. The tables are created empty and
-- filled by supabase/data/phone_metadata.sql (generated from libphonenumber-js and Google
-- libphonenumber's time zone map by supabase/data/generate.ts), loaded after the migrations: a new
-- area code is a regenerated data file, loaded again, not a migration. The lookups decide as
-- libphonenumber-js does at dial time, so import and dial agree on a number's country. Until the
-- data is loaded, number_country, number_timezone and number_region answer null (and
-- normalise_number refuses national and non-NANP numbers). The local stack loads it after the
-- migrations; a deployed project runs `psql "$SUPABASE_DB_URL" -f supabase/data/phone_metadata.sql`
-- after `supabase db push`.

-- Tables ---------------------------------------------------------------------------------
create table internal.phone_calling_code (
  code text primary key check (code ~ '^[1-9][0-9]{0,2}$'),
  countries text[] not null check (array_to_string(countries, ',') ~ '^([A-Z]{2}(,[A-Z]{2})*)?$')
);
comment on table internal.phone_calling_code is
  'Country calling codes known to libphonenumber-js, with their countries in its order (the main country '
  'first); empty for non-geographic codes (800, 808, 870, ...). Filled by internal.load_phone_metadata.';

create table internal.phone_region (
  country text primary key check (country ~ '^[A-Z]{2}$'),
  calling_code text not null references internal.phone_calling_code (code) on delete cascade,
  leading_digits text,
  national_pattern text
);
comment on table internal.phone_region is
  'Each country''s calling code; for countries sharing one (NANP, +7, +44, ...), what tells them apart as '
  'libphonenumber-js does: leading digits, else a valid number of the country (national_pattern and a '
  'type pattern of phone_number_type). Filled by internal.load_phone_metadata.';

create table internal.phone_number_type (
  country text not null references internal.phone_region (country) on delete cascade,
  type text not null,
  pattern text not null,
  lengths int[],
  primary key (country, type)
);
comment on table internal.phone_number_type is
  'libphonenumber-js''s number type patterns (fixed line, mobile, toll free, ...) and allowed national-number '
  'lengths (null: any) of the countries that share a calling code. Filled by internal.load_phone_metadata.';

create table internal.phone_zone (
  prefix text primary key check (prefix ~ '^[1-9][0-9]*$'),
  timezone text check (timezone is null or internal.is_timezone(timezone))
);
comment on table internal.phone_zone is
  'Number prefixes (calling code and more digits) and the IANA zone of the numbers under them, longest '
  'prefix wins; a null zone means no single zone is known (for example a toll-free NANP code). Derived '
  'from Google libphonenumber''s time zone map. Filled by internal.load_phone_metadata.';

create table internal.phone_metadata_source (
  singleton boolean primary key default true check (singleton),
  sources jsonb not null,
  loaded_at timestamptz not null default now()
);
comment on table internal.phone_metadata_source is
  'The library versions the loaded phone metadata was generated from, and when it was loaded.';

create table internal.nanp_state (
  area_code text primary key check (area_code ~ '^[2-9][0-9]{2}$'),
  region text not null
);
comment on table internal.nanp_state is 'NANP area code -> the state, province or territory it serves (local presence: a 646 callee is in the same state as a 212 number).';

-- Loader -----------------------------------------------------------------------------------
create function internal.load_phone_metadata(metadata jsonb) returns jsonb
language plpgsql set search_path = '' as $$
declare
  unknown text[];
  counts jsonb;
begin
  if jsonb_typeof(metadata -> 'callingCodes') is distinct from 'object'
     or jsonb_typeof(metadata -> 'regions') is distinct from 'object'
     or jsonb_typeof(metadata -> 'zones') is distinct from 'object'
     or jsonb_typeof(metadata -> 'sources') is distinct from 'object' then
    raise exception 'phone metadata needs sources, callingCodes, regions and zones objects';
  end if;
  select array_agg(distinct z.value #>> '{}') into unknown
  from jsonb_each(metadata -> 'zones') z
  where jsonb_typeof(z.value) = 'string' and not internal.is_timezone(z.value #>> '{}');
  if unknown is not null then
    raise exception 'phone metadata names time zones this database does not know: %', unknown;
  end if;

  -- Upsert what is there, delete what is not: loading the same file twice changes nothing.
  insert into internal.phone_calling_code (code, countries)
  select c.key, array(select jsonb_array_elements_text(c.value))
  from jsonb_each(metadata -> 'callingCodes') c
  on conflict (code) do update set countries = excluded.countries
    where phone_calling_code.countries is distinct from excluded.countries;

  insert into internal.phone_region (country, calling_code, leading_digits, national_pattern)
  select r.key, r.value ->> 'callingCode', r.value ->> 'leadingDigits', r.value ->> 'nationalPattern'
  from jsonb_each(metadata -> 'regions') r
  on conflict (country) do update set calling_code = excluded.calling_code,
    leading_digits = excluded.leading_digits, national_pattern = excluded.national_pattern
    where (phone_region.calling_code, phone_region.leading_digits, phone_region.national_pattern)
      is distinct from (excluded.calling_code, excluded.leading_digits, excluded.national_pattern);

  insert into internal.phone_number_type (country, type, pattern, lengths)
  select r.key, t.value ->> 0, t.value ->> 1,
    case when jsonb_typeof(t.value -> 2) = 'array'
      then array(select jsonb_array_elements_text(t.value -> 2)::int) end
  from jsonb_each(metadata -> 'regions') r
  cross join jsonb_array_elements(coalesce(r.value -> 'types', '[]')) t
  on conflict (country, type) do update set pattern = excluded.pattern, lengths = excluded.lengths
    where (phone_number_type.pattern, phone_number_type.lengths)
      is distinct from (excluded.pattern, excluded.lengths);

  insert into internal.phone_zone (prefix, timezone)
  select z.key, z.value #>> '{}' from jsonb_each(metadata -> 'zones') z
  on conflict (prefix) do update set timezone = excluded.timezone
    where phone_zone.timezone is distinct from excluded.timezone;

  delete from internal.phone_number_type t
  where not exists (
    select 1 from jsonb_array_elements(coalesce(metadata #> array['regions', t.country, 'types'], '[]')) e
    where e.value ->> 0 = t.type);
  delete from internal.phone_region r where not (metadata -> 'regions') ? r.country;
  delete from internal.phone_calling_code c where not (metadata -> 'callingCodes') ? c.code;
  delete from internal.phone_zone z where not (metadata -> 'zones') ? z.prefix;

  insert into internal.phone_metadata_source (sources) values (metadata -> 'sources')
  on conflict (singleton) do update set sources = excluded.sources, loaded_at = now();

  select jsonb_build_object(
    'callingCodes', (select count(*) from internal.phone_calling_code),
    'regions', (select count(*) from internal.phone_region),
    'numberTypes', (select count(*) from internal.phone_number_type),
    'zones', (select count(*) from internal.phone_zone)) into counts;
  return counts;
end $$;
comment on function internal.load_phone_metadata is
  'Replaces the phone metadata with the given set (the JSON supabase/data/phone_metadata.sql passes): '
  'upserts every row and deletes rows the set no longer has, so running it again is harmless. Refuses a '
  'set naming a time zone the database does not know. Returns the row counts.';

-- Lookups ------------------------------------------------------------------------------------
-- The security definer lets authenticated callers use them without reading the tables.
create function internal.number_country(e164 text) returns text
language plpgsql stable security definer set search_path = '' as $$
declare
  cc internal.phone_calling_code;
  national text;
  r record;
begin
  if e164 is null or e164 !~ '^\+[1-9][0-9]{6,14}$' then
    return null;
  end if;
  select * into cc from internal.phone_calling_code c
  where c.code in (substr(e164, 2, 1), substr(e164, 2, 2), substr(e164, 2, 3))
  order by length(c.code)
  limit 1;
  if not found or cardinality(cc.countries) = 0 then
    return null;
  elsif cardinality(cc.countries) = 1 then
    return cc.countries[1];
  end if;
  -- A shared calling code: the first country, in libphonenumber-js's order, whose leading
  -- digits start the national number or, for a country without them, of which it is a valid
  -- number of some type.
  national := substr(e164, 2 + length(cc.code));
  for r in
    select g.country, g.leading_digits, g.national_pattern
    from unnest(cc.countries) with ordinality u (country, position)
    join internal.phone_region g on g.country = u.country
    order by u.position
  loop
    if coalesce(r.leading_digits, '') <> '' then
      if national ~ ('^(?:' || r.leading_digits || ')') then
        return r.country;
      end if;
    elsif national ~ ('^(?:' || r.national_pattern || ')$') and exists (
      select 1 from internal.phone_number_type t
      where t.country = r.country
        and (t.lengths is null or length(national) = any (t.lengths))
        and national ~ ('^(?:' || t.pattern || ')$')) then
      return r.country;
    end if;
  end loop;
  return null;
end $$;
comment on function internal.number_country is
  'ISO country of an E.164 number as libphonenumber-js decides it (the phone.ts dial-time check): the '
  'calling code''s country, or for a shared code the country its leading digits or number patterns name; '
  'null when none does (an unknown NANP area code, a non-geographic code). Used on import to check a '
  'campaign''s allowed countries.';

create function internal.number_timezone(e164 text) returns text
language sql stable security definer set search_path = '' as $$
  select z.timezone
  from internal.phone_zone z
  where number_timezone.e164 ~ '^\+[1-9][0-9]{6,14}$'
    and z.prefix = any (array(
      select substr(number_timezone.e164, 2, n) from generate_series(1, length(number_timezone.e164) - 1) n))
  order by length(z.prefix) desc
  limit 1
$$;
comment on function internal.number_timezone is
  'Best-guess IANA zone of an E.164 number: that of its longest prefix in phone_zone; null when unknown. '
  'The campaign tick falls back to it when a callee has no explicit time zone (ported and mobile numbers move).';

create function internal.normalise_number(input text, default_country text default 'US') returns text
language plpgsql stable security definer set search_path = '' as $$
declare
  -- "+44 (0)20 ..." keeps the national trunk prefix in brackets; it is never dialed.
  digits text := regexp_replace(replace(btrim(input), '(0)', ''), '[[:space:].()-]', '', 'g');
  home text := upper(btrim(default_country));
  code text;
  number text;
begin
  if digits is null or digits !~ '^\+?[0-9]+$' then
    return null;
  end if;

  if digits like '+%' then
    number := digits;
  elsif digits like '00%' then
    number := '+' || substr(digits, 3);
  else
    -- A national number: the default country's calling code.
    code := (select r.calling_code from internal.phone_region r where r.country = home);
    if code is null then
      return null;
    elsif code = '1' then
      number := case
        when digits like '011%' then '+' || substr(digits, 4)
        when length(digits) = 11 and digits like '1%' then '+' || digits
        when length(digits) = 10 then '+1' || digits
      end;
    else
      number := '+' || code || case
        -- Countries whose numbers keep their leading 0 after the calling code.
        when home in ('IT', 'SM', 'VA', 'CI', 'CG') then digits
        when home in ('RU', 'KZ') and digits ~ '^8[0-9]{10}$' then substr(digits, 2)
        else regexp_replace(digits, '^0', '')
      end;
    end if;
  end if;

  if number is null or number !~ '^\+[1-9][0-9]{6,14}$' then
    return null;
  elsif number like '+1%' then
    -- NANP: NXX-NXX-XXXX, area code and exchange never start with 0 or 1.
    return case when number ~ '^\+1[2-9][0-9]{2}[2-9][0-9]{6}$' then number end;
  elsif internal.number_country(number) is null then
    return null;
  end if;
  return number;
end $$;
comment on function internal.normalise_number is
  'E.164 form of a typed phone number, or null when it cannot be one. Accepts +, 00 and (for NANP defaults) 011 '
  'international prefixes, and national numbers of default_country (trunk prefix dropped). Separators '
  '(spaces, dots, dashes, brackets) are ignored; the number must belong to a country. Used on campaign '
  'import and wherever a person types a number.';

create function internal.number_region(e164 text) returns text
language sql stable security definer set search_path = '' as $$
  select coalesce(
    (select s.region from internal.nanp_state s
     where number_region.e164 like '+1%' and s.area_code = substr(number_region.e164, 3, 3)),
    internal.number_timezone(number_region.e164))
$$;
comment on function internal.number_region is 'The region a number rings in, for local presence: the state, province or territory of a NANP area code, else the number''s time zone (the mapping that gives callees theirs); null when unknown.';

-- Policies -------------------------------------------------------------------------------------
-- No policies: only service_role (which bypasses RLS) and the functions above read them.
alter table internal.phone_calling_code enable row level security;
alter table internal.phone_region enable row level security;
alter table internal.phone_number_type enable row level security;
alter table internal.phone_zone enable row level security;
alter table internal.phone_metadata_source enable row level security;
alter table internal.nanp_state enable row level security;

-- Grants ---------------------------------------------------------------------------------------
revoke all on table internal.phone_calling_code, internal.phone_region, internal.phone_number_type,
  internal.phone_zone, internal.phone_metadata_source from public, anon, authenticated;
grant select on table internal.phone_calling_code, internal.phone_region, internal.phone_number_type,
  internal.phone_zone, internal.phone_metadata_source to service_role;
revoke all on function internal.load_phone_metadata from public, anon, authenticated, service_role;
revoke all on table internal.nanp_state from public, anon, authenticated;
grant all on table internal.nanp_state to service_role;
revoke all on function internal.number_country, internal.number_timezone, internal.normalise_number from public;
grant execute on function internal.number_country, internal.number_timezone, internal.normalise_number
  to authenticated, service_role;
revoke all on function internal.number_region from public;
