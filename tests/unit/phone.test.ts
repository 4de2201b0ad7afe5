import assert from "node:assert/strict";
import { checkDestination, normalise } from "../../supabase/functions/_shared/phone.ts";

Deno.test("national formats normalise to E.164 with a default country", () => {
  assert.equal(normalise("(415) 555-0100", "US")?.e164, "+14155550100");
  assert.equal(normalise("020 7123 4567", "GB")?.e164, "+442071234567");
  assert.equal(normalise("+1 415 555 0100")?.country, "US");
  assert.equal(normalise("not a number", "US"), null);
  assert.equal(normalise("x".repeat(100), "US"), null);
});

Deno.test("destinations outside the allowlist and premium-rate numbers are refused", () => {
  assert.deepEqual(checkDestination("+14155550100", ["US"]), { ok: true, country: "US" });
  assert.equal(checkDestination("+442071234567", ["US", "CA"]).ok, false);
  const premium = checkDestination("+19005551234", ["US"]);
  assert.equal(premium.ok, false);
  assert.match((premium as { reason: string }).reason, /premium/);
  assert.equal(checkDestination("+1415555010", ["US"]).ok, false, "too short");
});

Deno.test("request numbers are read as imports read them: formatted international numbers normalise", async () => {
  const { e164 } = await import("../../supabase/functions/_shared/schemas.ts");
  const read = (x: string) => {
    const r = e164.safeParse(x);
    return r.success ? r.data : null;
  };
  assert.equal(read("+1 (212) 555-0123"), "+12125550123");
  assert.equal(read("+1.212.555.0123"), "+12125550123");
  assert.equal(read(" +44 20 7123 4567 "), "+442071234567");
  assert.equal(read("+12125550123"), "+12125550123");
  // No country code, post-dial digits, extensions, look-alike plus signs: not a number to dial.
  for (const bad of ["(212) 555-0123", "+12125550123,1", "+1212555x0123", "＋12125550123", "+1"]) {
    assert.equal(read(bad), null, bad);
  }
});

Deno.test("personal numbers, NANP non-geographic 600 and 976 pay-per-call exchanges are never dialed", async () => {
  const { checkDestination } = await import("../../supabase/functions/_shared/phone.ts");
  for (const n of ["+15002345678", "+16002345678", "+12129765555", "+447012345678"]) {
    const r = checkDestination(n, ["US", "CA", "GB"]);
    assert.equal(r.ok, false, n);
  }
  assert.equal(checkDestination("+12125550100", ["US"]).ok, true);
});
