// Field schemas shared by the functions' request validation.
import { z } from "zod";
import { readPhoneNumber } from "./phone.ts";

/**
 * A call's ringing timeout and its length, in seconds: the limits and defaults of
 * public.campaigns' columns, which tests/e2e/rules.test.ts ties these to.
 */
export const RINGING_TIMEOUT_SEC = { min: 5, max: 80, fallback: 30 } as const;
export const CALL_DURATION_SEC = { min: 10, max: 86_400, fallback: 1_800 } as const;
/** Where calls may go when the deployment names no countries: public.campaigns' default too. */
export const DEFAULT_ALLOWED_COUNTRIES = ["US", "CA"] as const;

export const uuid = z.uuid({ message: "must be a UUID" });
/**
 * A phone number in international format, normalised to E.164 as imports normalise theirs
 * ("+1 (212) 555-0123" is +12125550123); without a country code it cannot be read.
 */
export const e164 = z.string().max(40).transform((input, ctx) => {
  const parsed = readPhoneNumber(input);
  if (!parsed) {
    ctx.addIssue({
      code: "custom",
      message: "must be a phone number with its country code, like +15551234567",
    });
    return z.NEVER;
  }
  return parsed.e164;
});
export const phoneSid = z.string().regex(
  /^PN[0-9a-fA-F]{32}$/,
  "must be a Twilio number SID (PN + 32 hex)",
);
