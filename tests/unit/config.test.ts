import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../supabase/functions/_shared/config.ts";

const base = {
  SUPABASE_URL: "https://ref.supabase.co/",
  SUPABASE_SERVICE_ROLE_KEY: "service",
  SUPABASE_DB_URL: "postgres://x",
};

Deno.test("the service's key may be the legacy service_role key, sb_secret_ keys, or both", () => {
  const only = { SUPABASE_URL: base.SUPABASE_URL, SUPABASE_DB_URL: base.SUPABASE_DB_URL };
  assert.deepEqual(parseConfig(base).serviceKeys, ["service"]);
  assert.deepEqual(
    parseConfig({ ...only, SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a","ci":"sb_secret_b"}' })
      .serviceKeys,
    ["sb_secret_a", "sb_secret_b"],
  );
  assert.deepEqual(
    parseConfig({ ...base, SUPABASE_SECRET_KEYS: "sb_secret_c" }).serviceKeys,
    ["service", "sb_secret_c"],
  );
  for (const bad of ['{"default":"eyJhbGciOi"}', "[]", "nope"]) {
    assert.throws(
      () => parseConfig({ ...only, SUPABASE_SECRET_KEYS: bad }),
      (e: unknown) => e instanceof ConfigError && e.issues[0].variable === "SUPABASE_SECRET_KEYS",
      bad,
    );
  }
  assert.throws(
    () => parseConfig(only),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.issues[0].variable === "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
  );
});

Deno.test("one error names every missing or malformed variable", () => {
  try {
    parseConfig({ SUPABASE_URL: "not a url", TWILIO_ACCOUNT_SID: "XX1", SIP_TRANSPORT: "pigeon" });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const names = e.issues.map((i) => i.variable).sort();
    for (
      const v of [
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
        "SUPABASE_DB_URL",
        "TWILIO_ACCOUNT_SID",
        "SIP_TRANSPORT",
      ]
    ) {
      assert.ok(names.includes(v), `${v} is named`);
    }
    assert.ok(!e.message.includes("XX1") || e.message.includes("TWILIO_ACCOUNT_SID"));
  }
});

Deno.test("LiveKit accepts LIVEKIT_URL as LiveKit's own name for the host", () => {
  const c = parseConfig({
    ...base,
    LIVEKIT_URL: "wss://p.livekit.cloud",
    LIVEKIT_API_KEY: "k",
    LIVEKIT_API_SECRET: "s",
  });
  assert.equal(c.livekit?.host, "wss://p.livekit.cloud");
  assert.equal(c.supabaseUrl, "https://ref.supabase.co");
});

Deno.test("a feature without its settings is reported by name, not crashed on", () => {
  const c = parseConfig(base);
  assert.equal(c.livekit, null);
  assert.deepEqual(c.missing.livekit, [
    "LIVEKIT_HOST (or LIVEKIT_URL)",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
  ]);
  assert.equal(c.twilio, null);
  assert.deepEqual(c.allowedCountries, ["US", "CA"]);
});

Deno.test("static SIP mode comes from SIP_PROVIDER_ADDRESS", () => {
  const c = parseConfig({
    ...base,
    SIP_PROVIDER_ADDRESS: "sip.example.com",
    SIP_USERNAME: "u",
    SIP_PASSWORD: "p",
  });
  assert.deepEqual(c.staticSip, { address: "sip.example.com", username: "u", password: "p" });
});
