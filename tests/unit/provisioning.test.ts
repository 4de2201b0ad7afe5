import assert from "node:assert/strict";
import { wallClock } from "../../supabase/functions/_shared/clock.ts";
import { SIPOutboundTrunkInfo, SIPTransport } from "@livekit/protocol";
import {
  type Config,
  originationUrl,
  parseConfig,
  parseSipHost,
} from "../../supabase/functions/_shared/config.ts";
import { NotConfiguredError } from "../../supabase/functions/_shared/errors.ts";
import {
  exactNumber,
  requireOrigination,
  sipCredentials,
} from "../../supabase/functions/_shared/carrier_trunk.ts";
import {
  outboundChanges,
  type OutboundSpec,
  outboundSpec,
  passwordFingerprint,
  type SipCredentials,
  type TrunkOwner,
} from "../../supabase/functions/_shared/trunks.ts";

/** The carrier side of a config, with no Twilio client (these configurations never reach it). */
const carrier = (config: Config) => ({
  config,
  twilio: () => Promise.reject(new Error("no Twilio client in this test")),
  clock: wallClock,
});

const base = {
  SUPABASE_URL: "https://ref.supabase.co",
  SUPABASE_ANON_KEY: "anon",
  SUPABASE_SERVICE_ROLE_KEY: "service",
  SUPABASE_DB_URL: "postgres://x",
  LIVEKIT_URL: "wss://p.livekit.cloud",
  LIVEKIT_API_KEY: "key",
  LIVEKIT_API_SECRET: "secret",
};
const twilioMode = {
  ...base,
  TWILIO_ACCOUNT_SID: "AC" + "0".repeat(32),
  TWILIO_AUTH_TOKEN: "token",
};

Deno.test("LIVEKIT_SIP_HOST pasted as a SIP URI is reduced to its host[:port]", () => {
  const cases: [string, string][] = [
    ["abc123.sip.livekit.cloud", "abc123.sip.livekit.cloud"],
    ["sip:abc123.sip.livekit.cloud", "abc123.sip.livekit.cloud"],
    ["sip:abc123.sip.livekit.cloud;transport=tcp", "abc123.sip.livekit.cloud"],
    [" SIPS:ABC123.sip.livekit.cloud:5061;transport=tls ", "abc123.sip.livekit.cloud:5061"],
    ["10.0.0.7:5060", "10.0.0.7:5060"],
    ["[2001:db8::1]:5060", "[2001:db8::1]:5060"],
  ];
  for (const [raw, host] of cases) assert.deepEqual(parseSipHost(raw), { host }, raw);
});

Deno.test("LIVEKIT_SIP_HOST that is not a host[:port] is refused with the reason", () => {
  const cases: [string, RegExp][] = [
    ["https://abc123.sip.livekit.cloud", /is a URL/],
    ["sip:agent@abc123.sip.livekit.cloud", /has a user part/],
    ["abc123.sip.livekit.cloud/", /not a host\[:port\]/],
    ["abc 123.sip.livekit.cloud", /not a host\[:port\]/],
    ["abc123.sip.livekit.cloud:0", /not a host\[:port\]/],
    ["abc123.sip.livekit.cloud:70000", /not a host\[:port\]/],
    ["sip:;transport=tcp", /not a host\[:port\]/],
    ["-bad-.example.com", /not a host\[:port\]/],
  ];
  for (const [raw, problem] of cases) {
    const parsed = parseSipHost(raw);
    assert.ok("problem" in parsed, `${raw} is refused`);
    assert.match(parsed.problem, problem, raw);
    assert.match(parsed.problem, /<project id>\.sip\.livekit\.cloud/);
  }
});

Deno.test("the origination URL is built from the normalised host, never a doubled prefix or suffix", () => {
  const c = parseConfig({
    ...twilioMode,
    LIVEKIT_SIP_HOST: "sip:abc.sip.livekit.cloud;transport=tcp",
  });
  assert.equal(c.livekit?.sipHost, "abc.sip.livekit.cloud");
  assert.equal(c.livekit?.sipHostProblem, null);
  assert.equal(requireOrigination(c), "sip:abc.sip.livekit.cloud;transport=tcp");
  assert.equal(originationUrl("h.example:5080"), "sip:h.example:5080;transport=tcp");
});

Deno.test("a malformed LIVEKIT_SIP_HOST does not fail the whole config, only Twilio provisioning", () => {
  const c = parseConfig({ ...twilioMode, LIVEKIT_SIP_HOST: "sip:agent@abc.sip.livekit.cloud" });
  assert.ok(c.livekit, "LiveKit itself stays configured (calls and webhooks keep working)");
  assert.equal(c.livekit.sipHost, null);
  assert.match(c.livekit.sipHostProblem ?? "", /user part/);
  assert.throws(() => requireOrigination(c), (e: unknown) => {
    assert.ok(e instanceof NotConfiguredError);
    assert.equal(e.status, 503);
    assert.equal(e.code, "not_configured");
    assert.deepEqual(e.details, { variables: ["LIVEKIT_SIP_HOST"] });
    assert.match(e.message, /LIVEKIT_SIP_HOST is invalid/);
    assert.match(e.message, /host\[:port\]/);
    return true;
  });
});

Deno.test("Twilio mode without LIVEKIT_SIP_HOST refuses before anything is made on Twilio", async () => {
  const c = parseConfig(twilioMode);
  assert.equal(c.livekit?.sipHost, null);
  // No transaction and no Twilio: the refusal comes first, so passing none proves it.
  await assert.rejects(() => sipCredentials(carrier(c), undefined as never), (e: unknown) => {
    assert.ok(e instanceof NotConfiguredError);
    assert.deepEqual(e.variables, ["LIVEKIT_SIP_HOST"]);
    assert.match(e.message, /set LIVEKIT_SIP_HOST/);
    return true;
  });
});

Deno.test("static SIP mode does not need LIVEKIT_SIP_HOST", async () => {
  const c = parseConfig({ ...twilioMode, SIP_PROVIDER_ADDRESS: "sip.provider.example" });
  const creds = await sipCredentials(carrier(c), undefined as never);
  assert.equal(creds.address, "sip.provider.example");
});

Deno.test("a Twilio number lookup takes only the exact E.164 match, never the first partial one", () => {
  const listed = [
    { sid: "PN0", phoneNumber: "+14156661000" },
    { sid: "PN1", phoneNumber: "+14156661001" },
    { sid: "PN5", phoneNumber: "+14156661005" },
  ];
  assert.equal(exactNumber(listed, "+14156661005")?.sid, "PN5");
  assert.equal(exactNumber(listed, "+1415666100"), null);
  assert.equal(exactNumber([{ sid: "PNx", phoneNumber: "+141566610050" }], "+14156661005"), null);
});

const owner: TrunkOwner = {
  phoneNumberId: "11111111-1111-1111-1111-111111111111",
  e164: "+14155550100",
  assistantId: "22222222-2222-2222-2222-222222222222",
  agentName: "agent",
  ownerId: "33333333-3333-3333-3333-333333333333",
};
const creds: SipCredentials = {
  address: "voice-ai-12345678.pstn.twilio.com",
  username: "lkuser",
  password: "Strong-Password-123",
  transport: "tcp",
  destinationCountry: "US",
};

async function wanted(c: SipCredentials = creds): Promise<OutboundSpec> {
  return outboundSpec(owner, c, c.password ? await passwordFingerprint("k", c.password) : null);
}

function trunkAs(spec: OutboundSpec, edit: Partial<OutboundSpec> = {}) {
  return new SIPOutboundTrunkInfo({ sipTrunkId: "ST_abc", ...spec, ...edit });
}

Deno.test("an outbound trunk that matches what we set needs no update", async () => {
  const want = await wanted();
  assert.equal(outboundChanges(trunkAs(want), want), null);
  // Numbers compare as a set; metadata as JSON, whatever its key order.
  const reordered = JSON.stringify(Object.fromEntries(
    Object.entries(JSON.parse(want.metadata)).reverse(),
  ));
  assert.equal(outboundChanges(trunkAs(want, { metadata: reordered }), want), null);
});

Deno.test("each field we set that differs on the trunk is updated, and only that field", async () => {
  const want = await wanted();
  const cases: [Partial<OutboundSpec>, string][] = [
    [{ address: "old-domain.pstn.twilio.com" }, "address"],
    [{ numbers: ["+14155550100", "+14155550199"] }, "numbers"],
    [{ transport: SIPTransport.SIP_TRANSPORT_UDP }, "transport"],
    [{ destinationCountry: "GB" }, "destinationCountry"],
    [{ authUsername: "someone-else" }, "authUsername"],
    [{ authPassword: "Old-Password-123" }, "authPassword"],
    [{ name: "renamed" }, "name"],
  ];
  for (const [edit, field] of cases) {
    const changes = outboundChanges(trunkAs(want, edit), want);
    assert.ok(changes, `${field} differs`);
    assert.deepEqual(changes.fields, [field]);
    const json = changes.update.toJson() as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), [field], `only ${field} is sent`);
  }
  const transport = outboundChanges(
    trunkAs(want, { transport: SIPTransport.SIP_TRANSPORT_UDP }),
    want,
  );
  assert.equal(transport?.update.transport, SIPTransport.SIP_TRANSPORT_TCP);
  const numbers = outboundChanges(trunkAs(want, { numbers: ["+14155550199"] }), want);
  assert.deepEqual(numbers?.update.numbers?.set, ["+14155550100"]);
});

Deno.test("clearing the destination country is sent as an explicit empty value", async () => {
  const want = await wanted({ ...creds, destinationCountry: null });
  const changes = outboundChanges(trunkAs(want, { destinationCountry: "US" }), want);
  assert.deepEqual(changes?.fields, ["destinationCountry"]);
  assert.deepEqual(changes?.update.toJson(), { destinationCountry: "" });
});

Deno.test("where LiveKit does not return the password, the fingerprint in the metadata decides", async () => {
  const want = await wanted();
  // Same password as we last set: nothing to do.
  assert.equal(outboundChanges(trunkAs(want, { authPassword: "" }), want), null);
  // A new password: the fingerprint differs, so the password and metadata are sent.
  const rotated = await wanted({ ...creds, password: "Rotated-Password-456" });
  const changes = outboundChanges(trunkAs(want, { authPassword: "" }), rotated);
  assert.deepEqual(changes?.fields.sort(), ["authPassword", "metadata"]);
  assert.equal(changes?.update.authPassword, "Rotated-Password-456");
  // A trunk made before fingerprints existed gets the password once, with the fingerprint.
  const legacy = JSON.stringify({
    managedBy: "voice-lines",
    phoneNumberId: owner.phoneNumberId,
    assistantId: owner.assistantId,
    e164: owner.e164,
  });
  const once = outboundChanges(trunkAs(want, { authPassword: "", metadata: legacy }), want);
  assert.deepEqual(once?.fields.sort(), ["authPassword", "metadata"]);
});

Deno.test("the password fingerprint is keyed and never contains the password", async () => {
  const a = await passwordFingerprint("key-1", "Strong-Password-123");
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.equal(a, await passwordFingerprint("key-1", "Strong-Password-123"));
  assert.notEqual(a, await passwordFingerprint("key-2", "Strong-Password-123"));
  assert.notEqual(a, await passwordFingerprint("key-1", "Strong-Password-124"));
  const spec = await wanted();
  assert.ok(!spec.metadata.includes(creds.password!));
  assert.equal(
    JSON.parse(spec.metadata).authFingerprint,
    await passwordFingerprint("k", creds.password!),
  );
});
