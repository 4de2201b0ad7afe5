// Phone numbers: E.164 normalisation (national formats with a default country), the
// destination country, and the checks that stop toll fraud.
import { type CountryCode, parsePhoneNumberFromString } from "libphonenumber-js/max";
import type { Config } from "./config.ts";
import { PreconditionError } from "./errors.ts";

export interface ParsedNumber {
  e164: string;
  country: string | null;
  type: string | null;
}

/** Parses "+1 415 555 0100" or "(415) 555-0100" (with a default country) into E.164; null if invalid. */
export function normalise(input: string, defaultCountry?: string): ParsedNumber | null {
  const trimmed = input.trim();
  if (trimmed.length === 0 || trimmed.length > 40) return null;
  const p = parsePhoneNumberFromString(
    trimmed,
    defaultCountry?.toUpperCase() as CountryCode | undefined,
  );
  if (!p || !p.isPossible()) return null;
  return { e164: p.number, country: p.country ?? null, type: p.getType() ?? null };
}

/**
 * The country libphonenumber-js gives an E.164 number, or null: the country checkDestination
 * checks, and the one internal.number_country computes from the same metadata
 * (supabase/data/phone_metadata.sql), so import and dial agree.
 */
export function numberCountry(e164: string): string | null {
  if (!/^\+[1-9][0-9]{6,14}$/.test(e164)) return null;
  return parsePhoneNumberFromString(e164)?.country ?? null;
}

/**
 * A number a requester typed, with its country code: ASCII digits and the usual separators only,
 * so no extension, pause, post-dial digit, letter or look-alike plus reaches a dial.
 */
export function readPhoneNumber(input: string): ParsedNumber | null {
  return /^\s*\+[0-9][0-9 ().-]*$/.test(input) ? normalise(input) : null;
}

/**
 * Types no AI dialer should ever call: premium-rate and shared-cost ranges are the classic fraud;
 * personal numbers forward to anywhere at the caller's cost.
 */
const BLOCKED_TYPES = new Set(["PREMIUM_RATE", "SHARED_COST", "UAN", "PAGER", "PERSONAL_NUMBER"]);

/** NANP ranges the metadata types too loosely: 600 (Canadian non-geographic), 976 exchanges (pay-per-call). */
function nanpBlocked(e164: string): string | null {
  if (!e164.startsWith("+1") || e164.length !== 12) return null;
  if (e164.slice(2, 5) === "600") return "non-geographic";
  if (e164.slice(5, 8) === "976") return "pay-per-call (976)";
  return null;
}

export type DestinationCheck =
  | { ok: true; country: string }
  | { ok: false; reason: string };

/** Is this E.164 number a destination the allowlist permits? */
export function checkDestination(e164: string, allowed: readonly string[]): DestinationCheck {
  const p = normalise(e164);
  if (!p || p.e164 !== e164) return { ok: false, reason: `${e164} is not a valid E.164 number` };
  if (!p.country) return { ok: false, reason: `the country of ${e164} cannot be determined` };
  if (!allowed.includes(p.country)) {
    return {
      ok: false,
      reason: `calls to ${p.country} are not allowed (allowed: ${allowed.join(", ")})`,
    };
  }
  if (p.type && BLOCKED_TYPES.has(p.type)) {
    return { ok: false, reason: `${e164} is a ${p.type.toLowerCase().replace("_", "-")} number` };
  }
  const nanp = nanpBlocked(e164);
  if (nanp) return { ok: false, reason: `${e164} is a ${nanp} number` };
  return { ok: true, country: p.country };
}

/** Callee checks that need no database: a valid number in an allowed country. */
export function checkDestinationAllowed(config: Config, to: string, narrow?: readonly string[]) {
  const allowed = narrow
    ? config.allowedCountries.filter((c) => narrow.includes(c))
    : config.allowedCountries;
  const dest = checkDestination(to, allowed);
  if (!dest.ok) {
    throw new PreconditionError("destination_not_allowed", `Cannot call ${to}: ${dest.reason}.`, {
      allowed,
    });
  }
}
