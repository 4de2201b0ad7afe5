// Phone metadata from one source: the database's country and time zone of a number
// (internal.number_country, internal.number_timezone, read from the loaded
// supabase/data/phone_metadata.sql) against the TS answers (libphonenumber-js as phone.ts dials
// with it, and the zone map derived afresh from the pinned libraries), over every NANP area
// code, every calling code and every zone prefix.
import assert from "node:assert/strict";
import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import { numberCountry } from "../../supabase/functions/_shared/phone.ts";
import {
  derivePhoneMetadata,
  type PhoneMetadata,
  SOURCES,
  zoneOf,
} from "../../supabase/data/phone_metadata.ts";
import { DATA_FILE, parseDataFile, render } from "../../supabase/data/generate.ts";
import { NANP_STATES } from "../../supabase/data/nanp_states.ts";
import { sql } from "../helpers/stack.ts";

const derived = await derivePhoneMetadata();

interface Answer {
  n: string;
  country: string | null;
  zone: string | null;
}

async function sqlAnswers(numbers: string[]): Promise<Map<string, Answer>> {
  const rows = await sql<Answer[]>`
    select n, internal.number_country(n) as country, internal.number_timezone(n) as zone
    from unnest(${numbers}::text[]) n`;
  return new Map(rows.map((r) => [r.n, r]));
}

/**
 * A string libphonenumber-js reads as another number: it strips a national prefix written after
 * the calling code ("+1 1 ...", "+7 8 ...", "+61 0 ..."). No stored number has that form (phone.ts
 * refuses it at dial time as not E.164, normalise_number never produces it), so it is no
 * number to compare on.
 */
const rewritten = (n: string) => {
  const p = parsePhoneNumberFromString(n);
  return p !== undefined && p.number !== n;
};

/** Numbers on which SQL and TS disagree, with both answers, and how many were compared. */
async function disagreements(all: string[]) {
  const numbers = all.filter((n) => !rewritten(n));
  const db = await sqlAnswers(numbers);
  const out: string[] = [];
  for (const n of numbers) {
    const ts = { country: numberCountry(n), zone: zoneOf(derived, n) };
    const got = db.get(n)!;
    if (got.country !== ts.country || got.zone !== ts.zone) {
      out.push(`${n}: sql ${got.country}/${got.zone}, ts ${ts.country}/${ts.zone}`);
    }
  }
  return Object.assign(out, { compared: numbers.length });
}

const digits = "23456789012345";

Deno.test("the data is generated from the libphonenumber-js the functions dial with", async () => {
  const map = JSON.parse(
    await Deno.readTextFile(new URL("../../import_map.json", import.meta.url)),
  );
  assert.equal(
    map.imports["libphonenumber-js/max"],
    `npm:libphonenumber-js@${SOURCES["libphonenumber-js"]}/max`,
  );
});

Deno.test("the committed data file is what the pinned libraries generate", async () => {
  const text = await Deno.readTextFile(DATA_FILE);
  assert.deepEqual(parseDataFile(text), derived);
  assert.equal(text, render(derived), "run supabase/data/generate.ts");
});

Deno.test("SQL and TS agree on country and zone for every NANP area code", async () => {
  const numbers: string[] = [];
  for (let area = 200; area <= 999; area++) {
    // Exchanges across the range (2XX to 9XX), as the zone map splits some codes by exchange.
    for (let exchange = 200; exchange <= 999; exchange += 53) {
      numbers.push(`+1${area}${exchange}${String(area * exchange % 10000).padStart(4, "0")}`);
    }
  }
  const known = new Set(
    numbers.filter((n) => numberCountry(n) !== null).map((n) => n.slice(2, 5)),
  );
  const zoned = new Set(
    numbers.filter((n) => zoneOf(derived, n) !== null).map((n) => n.slice(2, 5)),
  );
  const bad = await disagreements(numbers);
  console.log(
    `NANP: ${bad.compared} numbers over 800 area codes (${known.size} with a country, ${zoned.size} with a zone): ${bad.length} disagreements`,
  );
  assert.ok(known.size > 350, "libphonenumber-js places most geographic area codes");
  assert.equal(bad.compared, numbers.length, "every NANP number sampled is its own E.164 form");
  assert.deepEqual(bad.slice(0, 20), []);
});

Deno.test("SQL and TS agree on country and zone for every calling code", async () => {
  const numbers: string[] = [];
  // Every 1 to 3 digit code, assigned or not, with national numbers of several lengths.
  for (let code = 1; code <= 999; code++) {
    for (const length of [7, 9, 10, 12]) {
      const n = `+${code}${digits.slice(0, Math.max(0, length - String(code).length))}`;
      if (/^\+[1-9][0-9]{6,14}$/.test(n)) numbers.push(n);
    }
  }
  // And a mobile number of every country sharing a code (where the country is decided by the
  // national number), from libphonenumber-js's own examples.
  // deno-lint-ignore no-import-prefix
  const examples = (await import("npm:libphonenumber-js@1.13.16/mobile/examples"))
    .default as Record<string, string>;
  for (const [code, countries] of Object.entries(derived.callingCodes)) {
    for (const country of countries.length > 1 ? countries : []) {
      if (examples[country]) numbers.push(`+${code}${examples[country]}`);
    }
  }
  const bad = await disagreements(numbers);
  const codes = Object.keys(derived.callingCodes).length;
  console.log(
    `calling codes: ${bad.compared} numbers over every code 1-999 (${codes} assigned; ${
      numbers.length - bad.compared
    } read as another number left out): ${bad.length} disagreements`,
  );
  assert.deepEqual(bad.slice(0, 20), []);
});

Deno.test("SQL and TS agree on the zone under every prefix of the zone map", async () => {
  const numbers = Object.keys(derived.zones).map((p) =>
    `+${p}${digits.slice(0, Math.max(1, 11 - p.length))}`
  );
  const bad = await disagreements(numbers);
  console.log(`zone prefixes: ${bad.compared} numbers: ${bad.length} disagreements`);
  assert.deepEqual(bad.slice(0, 20), []);
});

Deno.test("a shared calling code is told apart as libphonenumber-js does", async () => {
  const cases: Record<string, string | null> = {
    "+14165550100": "CA",
    "+12425550100": "BS",
    "+17875550100": "PR",
    "+441481256789": "GG",
    "+442071234567": "GB",
    "+77012345678": "KZ",
    "+74951234567": "RU",
    "+18005550100": "US",
    "+80012345678": null,
  };
  const db = await sqlAnswers(Object.keys(cases));
  for (const [n, country] of Object.entries(cases)) {
    assert.equal(numberCountry(n), country, `TS ${n}`);
    assert.equal(db.get(n)!.country, country, `SQL ${n}`);
  }
});

Deno.test("the NANP states are loaded with the data: a number's region is its area code's state", async () => {
  const rows = await sql<{ area_code: string; region: string }[]>`
    select area_code, region from internal.nanp_state order by area_code`;
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.area_code, r.region])), NANP_STATES);
  const [{ ny, toronto }] = await sql<{ ny: string; toronto: string }[]>`
    select internal.number_region('+16465550100') as ny,
      internal.number_region('+14165550100') as toronto`;
  assert.deepEqual([ny, toronto], ["New York", "Ontario"]);
});

const tables = ["phone_calling_code", "phone_region", "phone_number_type", "phone_zone"];
async function fingerprint() {
  const out: Record<string, string> = {};
  for (const t of tables) {
    const [{ md5 }] = await sql.unsafe(
      `select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as md5 from internal.${t} t`,
    );
    out[t] = md5;
  }
  return out;
}

Deno.test("loading the data again changes nothing, and a smaller set deletes what it lacks", async () => {
  const meta: PhoneMetadata = parseDataFile(await Deno.readTextFile(DATA_FILE));
  const before = await fingerprint();
  await sql`select internal.load_phone_metadata(${sql.json(meta as never)})`;
  assert.deepEqual(await fingerprint(), before);

  await sql.begin(async (tx) => {
    const smaller = { ...meta, zones: { ...meta.zones } };
    delete smaller.zones["1212"];
    const [{ counts }] = await tx`select internal.load_phone_metadata(${
      tx.json(smaller as never)
    }) as counts`;
    assert.equal(counts.zones, Object.keys(meta.zones).length - 1);
    const [{ zone }] = await tx`select internal.number_timezone('+12125550100') as zone`;
    assert.equal(zone, zoneOf(smaller, "+12125550100"));
    throw new Rollback();
  }).catch((e) => {
    if (!(e instanceof Rollback)) throw e;
  });
  await assert.rejects(
    sql`select internal.load_phone_metadata('{"sources": {}}'::jsonb)`,
    /needs sources, callingCodes, regions and zones/,
  );
  const unknownZone = { ...meta, zones: { ...meta.zones, "1212": "Mars/Olympus_Mons" } };
  await assert.rejects(
    sql`select internal.load_phone_metadata(${sql.json(unknownZone as never)})`,
    /time zones this database does not know/,
  );
  assert.deepEqual(await fingerprint(), before);
});

class Rollback extends Error {}
