import type { Config } from "../../supabase/functions/_shared/config.ts";
import { wallClock } from "../../supabase/functions/_shared/clock.ts";
import assert from "node:assert/strict";
import { claimRoom, cpuRoom, dialPace } from "../../supabase/functions/campaign-tick/tick.ts";
import { generatePassword } from "../../supabase/functions/_shared/carrier_trunk.ts";
import { parseMetadata, roomPrefix, trunkNames } from "../../supabase/functions/_shared/trunks.ts";
import { logger, setLogSink } from "../../supabase/functions/_shared/log.ts";

/** The carrier side of a config, with no Twilio client (these configurations never reach it). */
const carrier = (config: Config) => ({
  config,
  twilio: () => Promise.reject(new Error("no Twilio client in this test")),
  clock: wallClock,
});

Deno.test("generated SIP passwords meet Twilio's rules and differ", () => {
  const a = generatePassword();
  const b = generatePassword();
  assert.notEqual(a, b);
  for (const p of [a, b]) {
    assert.ok(p.length >= 12);
    assert.match(p, /[A-Z]/);
    assert.match(p, /[a-z]/);
    assert.match(p, /[0-9]/);
  }
});

Deno.test("trunk names and metadata identify the number and assistant", () => {
  const names = trunkNames({
    e164: "+14155550100",
    assistantId: "0f1e2d3c-0000-4000-8000-000000000000",
  });
  assert.deepEqual(names, {
    inbound: "in-14155550100-0f1e2d3c",
    outbound: "out-14155550100-0f1e2d3c",
    rule: "rule-14155550100-0f1e2d3c",
  });
  assert.equal(roomPrefix("0f1e2d3c-0000"), "call-0f1e2d3c-");
  assert.equal(parseMetadata('{"managedBy":"someone-else","assistantId":"x"}'), null);
  assert.equal(parseMetadata("not json"), null);
  assert.equal(
    parseMetadata('{"managedBy":"voice-lines","assistantId":"a","phoneNumberId":"p","e164":"+1"}')
      ?.assistantId,
    "a",
  );
});

Deno.test("log lines redact fields that may hold secrets", () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    logger({ fn: "t" }).info("x", {
      authPassword: "hunter2hunter2",
      nested: { apiSecret: "s3cr3t" },
      callId: "c1",
      error: "pg_net called with sb_secret_AbC123dEf_456 and was refused",
    });
  } finally {
    setLogSink((l) => console.log(l));
  }
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("hunter2"));
  assert.ok(!lines[0].includes("s3cr3t"));
  assert.ok(!lines[0].includes("AbC123dEf"), "a secret API key inside a message");
  assert.ok(lines[0].includes('"callId":"c1"'));
});

Deno.test("static SIP mode uses the operator's provider and never touches Twilio", async () => {
  const { parseConfig } = await import("../../supabase/functions/_shared/config.ts");
  const { sipCredentials } = await import("../../supabase/functions/_shared/carrier_trunk.ts");
  const config = parseConfig({
    SUPABASE_URL: "https://ref.supabase.co",
    SUPABASE_ANON_KEY: "a",
    SUPABASE_SERVICE_ROLE_KEY: "s",
    SUPABASE_DB_URL: "postgres://x",
    SIP_PROVIDER_ADDRESS: "sip.provider.example",
    SIP_USERNAME: "trunkuser",
    SIP_PASSWORD: "Trunk-Password-1",
    SIP_TRANSPORT: "tls",
    TWILIO_ACCOUNT_SID: "AC" + "0".repeat(32),
    TWILIO_AUTH_TOKEN: "token",
  });
  // The transaction is never used in static mode: passing none proves it.
  const creds = await sipCredentials(carrier(config), undefined as never);
  assert.deepEqual(creds, {
    address: "sip.provider.example",
    username: "trunkuser",
    password: "Trunk-Password-1",
    transport: "tls",
    destinationCountry: null,
  });
});

Deno.test("claims pace slots to the dial rate only when most dials miss their slot", () => {
  const now = 100_000;
  const dials = (n: number, late: number) =>
    Array.from({ length: n }, (_, i) => ({ at: now - i * (1900 / n), late: i < late }));
  assert.equal(dialPace(dials(10, 10), now), null, "too few dials to judge");
  assert.equal(dialPace(dials(40, 10), now), null, "most dials on time: the budget decides");
  assert.equal(dialPace(dials(40, 30), now), 25, "40 dials in 2 s, most late: 20/s x 1.25");
  assert.equal(dialPace([{ at: now - 5000, late: true }], now), null, "old dials do not count");
});

Deno.test("a LiveKit error quoting the request's token carries no token", async () => {
  const { ServerError } = await import("livekit-server-sdk");
  const { describeLiveKitError } = await import("../../supabase/functions/_shared/livekit.ts");
  const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4eHh4eHgifQ.c2lnbmF0dXJlLXZhbHVl";
  const f = describeLiveKitError(
    new ServerError("unauthenticated", `invalid token: ${token}, error: signature is invalid`, 401),
  );
  assert.ok(!f.message.includes(token), f.message);
  assert.match(f.message, /invalid token: \[redacted\]/);
});

Deno.test("a tick claims within its CPU budget: a few calls until it knows a dial's cost, then what fits", () => {
  assert.equal(cpuRoom(1200, 50, 0, 0), 5, "before any dial ended, a first few");
  assert.equal(cpuRoom(1200, 50, 0, 3), 2, "counting those under way");
  assert.equal(cpuRoom(1200, 710, 0, 0), 0, "none when the first ones would not fit");
  assert.equal(cpuRoom(1200, 690, 0, 0), 1, "one when only one fits");
  // 300 ms used over 30 dials: 10 ms a dial; 720 ms planned (0.6 of the budget) leave 42.
  assert.equal(cpuRoom(1200, 300, 30, 0), 42);
  assert.equal(cpuRoom(1200, 300, 30, 40), 2, "less the dials still under way");
  assert.ok(cpuRoom(1200, 720, 30, 0) <= 0, "nothing once the planned share is used");
  // A slower machine (the same dials cost twice the CPU) claims fewer.
  assert.equal(cpuRoom(1200, 600, 30, 0), 6);
});

Deno.test("ticks running at once in an isolate share its dials; a claim waits to be worth it", () => {
  const free = { left: 10_000, isolateUnderWay: 0, ticks: 1, tickUnderWay: 0, cpu: 10_000 };
  assert.equal(claimRoom(free), 200, "alone, the isolate's whole room");
  assert.equal(claimRoom({ ...free, ticks: 20 }), 10, "one of 20 ticks: a twentieth");
  assert.equal(
    claimRoom({ ...free, ticks: 20, isolateUnderWay: 190, tickUnderWay: 0 }),
    10,
    "the first 19 ticks cannot take the last one's share",
  );
  assert.equal(claimRoom({ ...free, isolateUnderWay: 199, tickUnderWay: 199 }), 0, "1 free: wait");
  assert.equal(
    claimRoom({ ...free, isolateUnderWay: 150, tickUnderWay: 150 }),
    50,
    "a quarter free",
  );
  assert.equal(
    claimRoom({ ...free, left: 3, isolateUnderWay: 190, tickUnderWay: 190 }),
    3,
    "the last few",
  );
  assert.equal(claimRoom({ ...free, cpu: 2 }), 2, "the CPU budget bounds it");
  assert.equal(claimRoom({ ...free, cpu: 0, tickUnderWay: 5, isolateUnderWay: 5 }), 0);
});
