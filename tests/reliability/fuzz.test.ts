// Generated bad requests against every function (seeded, so every run sends the same ones):
// each must get a 4xx JSON error, the gateway must keep answering, and the fuzzing user's
// rows must not change.
import assert from "node:assert/strict";
import { readyAssistant, sql, stack, type TestUser } from "../helpers/stack.ts";
import {
  addSummary,
  asUser,
  healthy,
  isErrorBody,
  type Json,
  pool,
  prng,
  rawRequest,
  recordResponse,
  type Rng,
  userRows,
  webhookToken,
} from "./helpers.ts";

// Fixture: a user with an assistant, a ready number, a campaign and a do-not-call entry, so
// that a request that slipped through validation would have something real to change.
interface Fixture {
  user: TestUser;
  assistantId: string;
  numberId: string;
  e164: string;
  campaignId: string;
}

let fixture: Promise<Fixture> | null = null;
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const { user, assistantId, e164, numberId } = await readyAssistant("fuzz");
    const [c] = await asUser(
      user,
      (tx) =>
        tx`insert into public.campaigns (name, assistant_id) values ('fuzz', ${assistantId}) returning id`,
    );
    await asUser(
      user,
      (tx) =>
        tx`select public.add_campaign_calls(${c.id}, ${
          tx.json([{ phoneNumber: "+14155550123" }])
        })`,
    );
    await asUser(user, (tx) => tx`insert into public.do_not_call (e164) values ('+14155550188')`);
    return { user, assistantId, numberId, e164, campaignId: c.id };
  })();
  return fixture;
}

// Value pools ----------------------------------------------------------------------------------

const WRONG_TYPES: unknown[] = [
  0,
  -1,
  1.5,
  1e308,
  true,
  false,
  null,
  [],
  {},
  [1, 2],
  { a: 1 },
  ["+14155550123"],
  { id: "x" },
];
const SQL_INJECTION = [
  "' OR '1'='1",
  "'; drop table public.assistant; --",
  "1; select pg_sleep(5)",
  '" or 1=1 --',
  "00000000-0000-0000-0000-000000000000' or 'x'='x",
  "$$; delete from public.phone_number; $$",
  "%' union select * from internal.sip_trunk --",
  "\\'; truncate public.campaigns cascade; --",
];
const HEADER_INJECTION = [
  "x\r\nSet-Cookie: session=evil",
  "x%0d%0aSet-Cookie:%20session=evil",
  "x\nLocation: https://evil.example.com",
  "\u0000Authorization: Bearer x",
];
const UNICODE = [
  "😀".repeat(50),
  "\u202e\u202dreversed",
  "Ω≈ç√∫˜µ≤≥÷",
  "ｆｕｌｌｗｉｄｔｈ",
  "z̸̡̢̛̗͉̱̪̯̀̾̈́a̴̧̛̺̮̙̐̈́͝l̷̢̛̪̠̀̈́g̷̡̛̗̈́o̷̢̧̖̐̈́",
  "\ud800",
  "\u0000",
  "\ufeff",
  "日本語の文字列",
  "مرحبا",
];
const BAD_PHONES = [
  "",
  "+",
  "+0",
  "+1",
  "123",
  "+0123456789",
  "+1234567890123456",
  // "+1 415 555 0100" and "+1-415-555-0100" are good input: requests normalise them as imports do.
  "tel:+14155550100",
  "(415) 555-0100",
  "+1415555010a",
  "+١٤١٥٥٥٥٠١٠٠",
  "+１４１５５５５０１００",
  "+14155550100\n",
  "+14155550100;ext=1",
  "sip:+14155550100@evil.example.com",
  "+14155550100,+14155550101",
];
const BAD_UUIDS = [
  "",
  "not-a-uuid",
  "00000000-0000-0000-0000-00000000000",
  "00000000-0000-0000-0000-0000000000000",
  "gggggggg-gggg-gggg-gggg-gggggggggggg",
  "{00000000-0000-0000-0000-000000000000}",
  "00000000000000000000000000000000",
];

function hugeString(r: Rng, min: number): string {
  const unit = r.pick(["A", "é", "😀", "'", "%00", " "]);
  return unit.repeat(Math.ceil((min + r.int(2000)) / unit.length));
}

/** A string that is never a valid phone number, UUID, id or enum value. */
function badString(r: Rng): string {
  switch (r.int(6)) {
    case 0:
      return r.pick(SQL_INJECTION);
    case 1:
      return r.pick(HEADER_INJECTION);
    case 2:
      return r.pick(UNICODE);
    case 3:
      return hugeString(r, 300);
    case 4:
      return r.pick(BAD_UUIDS);
    default:
      return r.pick(BAD_PHONES);
  }
}

/** Any value that is not a string. */
function nonString(r: Rng): unknown {
  return r.pick(WRONG_TYPES);
}

// Field specs: for each field, a generator of values it must refuse --------------------------

type Invalid = (r: Rng, f: Fixture) => unknown;
const badUuid: Invalid = (r) => r.chance(0.6) ? badString(r) : nonString(r);
const badPhone: Invalid = (r) =>
  r.chance(0.5) ? r.pick(BAD_PHONES) : r.chance(0.5) ? badString(r) : nonString(r);
const badBool: Invalid = (r) => r.pick<unknown>(["true", "false", 1, 0, null, [], {}, "yes"]);
const badInt = (min: number, max: number): Invalid => (r) =>
  r.pick<unknown>([min - 1, max + 1, min + 0.5, -max, `${min}`, null, true, [], {}, 1e308]);
const badName: Invalid = (r) =>
  r.pick<unknown>([
    "",
    "a".repeat(129),
    "room name",
    "room/../../etc",
    "room\nname",
    r.pick(SQL_INJECTION),
    r.pick(UNICODE),
    nonString(r),
  ]);
const badLongText = (max: number): Invalid => (r) =>
  r.chance(0.5) ? "x".repeat(max + 1 + r.int(500)) : nonString(r);

interface Target {
  name: string;
  /** A valid body the mutations break (never sent as is). */
  base: (f: Fixture) => Record<string, unknown>;
  fields: Record<string, Invalid>;
  /** Fields whose absence alone makes the body invalid. */
  required: string[];
}

const TARGETS: Record<string, Target> = {
  "map-number": {
    name: "map-number",
    base: (f) => ({ phoneNumber: f.e164, assistantId: f.assistantId }),
    fields: {
      phoneNumber: badPhone,
      phoneSid: (r) =>
        r.pick<unknown>(["PN123", "PN" + "g".repeat(32), "pn" + "0".repeat(32), ...WRONG_TYPES]),
      assistantId: (r) => r.chance(0.6) ? badString(r) : r.pick<unknown>([0, true, [], {}]),
      label: badLongText(200),
      force: badBool,
    },
    required: ["assistantId", "phoneNumber"],
  },
  "create-trunks": {
    name: "create-trunks",
    base: (f) => ({ phoneNumberId: f.numberId }),
    fields: {
      phoneNumberId: badUuid,
      assistantId: badUuid,
      jobId: (r) => r.pick<unknown>([-1, 0, 1.5, "abc", "1".repeat(19), "-5", true, null, []]),
    },
    required: ["phoneNumberId"],
  },
  "create-participant": {
    name: "create-participant",
    base: (f) => ({ assistantId: f.assistantId, phoneNumber: "+14155550123" }),
    fields: {
      assistantId: badUuid,
      outboundTrunkId: (r) =>
        r.pick<unknown>(["ST_", "ST-abc", "TR_abc", "ST_" + "a".repeat(65), 5]),
      phoneNumber: badPhone,
      roomName: badName,
      participantName: badLongText(200),
      participantIdentity: badName,
      metadata: (r) =>
        r.pick<unknown>([
          "{}",
          [],
          5,
          null,
          { blob: "x".repeat(5000) },
          { deep: nested(2000) },
        ]),
      waitUntilAnswered: badBool,
      ringingTimeoutSec: badInt(5, 80),
      maxCallDurationSec: badInt(10, 86_400),
    },
    required: ["phoneNumber", "assistantId"],
  },
  "list-trunks": {
    name: "list-trunks",
    base: (f) => ({ assistantId: f.assistantId, direction: "outbound" }),
    fields: {
      assistantId: badUuid,
      direction: (r) =>
        r.pick<unknown>(["both", "INBOUND", "", "in", r.pick(SQL_INJECTION), 1, null, []]),
    },
    required: [],
  },
  "campaign-tick": {
    name: "campaign-tick",
    base: (f) => ({ campaignId: f.campaignId, maxCalls: 1 }),
    fields: {
      campaignId: badUuid,
      maxCalls: badInt(1, 10_000),
      budgetSec: (r) => r.pick<unknown>([0, 0.05, 121, -1, "5", null, true, []]),
    },
    required: [],
  },
};

function nested(depth: number): unknown {
  let v: unknown = {};
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}

/** The base body with 1 to 3 fields made invalid (at least one of them always is). */
function mutateFields(r: Rng, t: Target, f: Fixture): Record<string, unknown> {
  const body: Record<string, unknown> = { ...t.base(f) };
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const kind = r.int(10);
    if (kind < 6) {
      const field = r.pick(Object.keys(t.fields));
      body[field] = t.fields[field](r, f);
    } else if (kind < 8 || t.required.length === 0) {
      // Unknown fields, including prototype-polluting ones.
      const key = r.pick([
        "extra",
        "__proto__",
        "constructor",
        "owner_id",
        "ownerId",
        "role",
        "isAdmin",
        r.pick(UNICODE),
        r.pick(SQL_INJECTION),
      ]);
      // defineProperty, so that "__proto__" becomes an own key that JSON.stringify sends.
      Object.defineProperty(body, key, {
        value: r.pick<unknown>([true, "x", { polluted: true }, 1, null]),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    } else {
      delete body[r.pick(t.required)];
      // Missing one required field is invalid only when nothing else names the target.
      if (t.name === "map-number") delete body.phoneSid;
      if (t.name === "create-participant") delete body.outboundTrunkId;
      if (t.name === "create-trunks") {
        delete body.assistantId;
        delete body.jobId;
      }
    }
  }
  return body;
}

// Requests ------------------------------------------------------------------------------------

interface Case {
  fn: string;
  method: string;
  headers: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
  query?: string;
  what: string;
}

const NOT_JSON_TYPES = [
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/xml",
  "text/html",
];
const INVALID_JSON = [
  "{",
  "{not json",
  "{'phoneNumber': '+14155550123'}",
  '{"a": 1,}',
  '{"a": undefined}',
  '{"a": NaN}',
  "// comment\n{}",
  '{"a": "\\x00"}',
  "nul",
  "",
  " ",
  '{"a":1}{"b":2}',
  "\u0000",
];
const NON_OBJECTS = ["null", "[]", "[{}]", "1", '"string"', "true", "[null]"];

function jsonHeaders(auth: string | null, r: Rng): Record<string, string> {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (auth) h.Authorization = `Bearer ${auth}`;
  if (r.chance(0.15)) {
    // Header values cannot carry CR/LF; these are what a hostile client can still send.
    h["X-Request-Id"] = r.pick([
      "'; drop table public.assistant; --",
      "<script>alert(1)</script>",
      "x".repeat(4000),
      "%0d%0aSet-Cookie:%20a=b",
      "ünïcödé",
    ].map((v) => encodeURIComponent(v).slice(0, 4000)));
  }
  return h;
}

/** One bad request for a JSON function; `auth` is the token to send. */
function badJsonRequest(r: Rng, t: Target, f: Fixture, auth: string | null): Case {
  const headers = jsonHeaders(auth, r);
  const kind = r.int(100);
  if (kind < 55) {
    return {
      fn: t.name,
      method: "POST",
      headers,
      body: JSON.stringify(mutateFields(r, t, f)),
      what: "invalid fields",
    };
  }
  if (kind < 62) {
    // More than 64 KiB.
    const big = { ...t.base(f), padding: "x".repeat(70_000 + r.int(50_000)) };
    return { fn: t.name, method: "POST", headers, body: JSON.stringify(big), what: "oversized" };
  }
  if (kind < 70) {
    const method = r.pick(["PUT", "DELETE", "PATCH", ...(t.name === "list-trunks" ? [] : ["GET"])]);
    return {
      fn: t.name,
      method,
      headers,
      body: method === "GET" ? undefined : JSON.stringify(t.base(f)),
      what: `method ${method}`,
    };
  }
  if (kind < 78) {
    const type = r.pick(NOT_JSON_TYPES);
    return {
      fn: t.name,
      method: "POST",
      headers: { ...headers, "Content-Type": type },
      body: JSON.stringify(t.base(f)),
      what: `content type ${type}`,
    };
  }
  if (kind < 81) {
    // No content type at all (a byte body gets none from fetch).
    const { "Content-Type": _, ...rest } = headers;
    return {
      fn: t.name,
      method: "POST",
      headers: rest,
      body: new TextEncoder().encode(JSON.stringify(t.base(f))),
      what: "no content type",
    };
  }
  if (kind < 88) {
    return {
      fn: t.name,
      method: "POST",
      headers,
      body: r.pick(INVALID_JSON),
      what: "invalid JSON",
    };
  }
  if (kind < 94) {
    return {
      fn: t.name,
      method: "POST",
      headers,
      body: r.pick(NON_OBJECTS),
      what: "not an object",
    };
  }
  if (kind < 97) {
    const bytes = new Uint8Array([
      0x7b,
      0x22,
      0x61,
      0x22,
      0x3a,
      0x22,
      0xff,
      0xfe,
      0xc3,
      0x22,
      0x7d,
    ]);
    return { fn: t.name, method: "POST", headers, body: bytes, what: "invalid UTF-8" };
  }
  // Deeply nested arrays (still under 64 KiB).
  const depth = 5000 + r.int(20_000);
  return {
    fn: t.name,
    method: "POST",
    headers,
    body: "[".repeat(depth) + "]".repeat(depth),
    what: "deep nesting",
  };
}

/** GET list-trunks with a bad query string. */
function badQuery(r: Rng, f: Fixture, auth: string): Case {
  const headers = { Authorization: `Bearer ${auth}` };
  const kind = r.int(6);
  const enc = encodeURIComponent;
  const query = kind === 0
    ? `?assistantId=${enc(String(badUuid(r, f)))}`
    : kind === 1
    ? `?direction=${enc(String(TARGETS["list-trunks"].fields.direction(r, f)))}`
    : kind === 2
    ? `?assistantId=${f.assistantId}&${enc(r.pick(["extra", "owner_id", "__proto__", "role"]))}=1`
    : kind === 3
    ? `?assistantId=${enc(r.pick(SQL_INJECTION))}&direction=inbound`
    : kind === 4
    ? `?direction=${"x".repeat(3000 + r.int(3000))}`
    : `?assistantId=%zz%0d%0aSet-Cookie:x&direction=%E0%A4%A`;
  return { fn: "list-trunks", method: "GET", headers, query, what: `query ${kind}` };
}

/** A webhook that is unsigned, wrongly signed, or signed but malformed. */
async function badWebhook(r: Rng): Promise<Case> {
  const headers: Record<string, string> = { "Content-Type": "application/webhook+json" };
  const event = JSON.stringify({
    event: "participant_left",
    id: `EV_fuzz${r.int(1e9)}`,
    createdAt: String(Math.floor(Date.now() / 1000)),
    room: { name: `cc-${crypto.randomUUID()}-1` },
  });
  const kind = r.int(10);
  if (kind === 0) {
    return { fn: "livekit-webhook", method: "POST", headers, body: event, what: "unsigned" };
  }
  if (kind === 1) {
    const token = await webhookToken(event, { secret: "not-the-secret-" + r.int(1e9) });
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: { ...headers, Authorization: token },
      body: event,
      what: "wrong secret",
    };
  }
  if (kind === 2) {
    const token = await webhookToken(event, { apiKey: "APIevil" });
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: { ...headers, Authorization: token },
      body: event,
      what: "wrong issuer",
    };
  }
  if (kind === 3) {
    const token = await webhookToken(event, { exp: Math.floor(Date.now() / 1000) - 3600 });
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: { ...headers, Authorization: token },
      body: event,
      what: "expired",
    };
  }
  if (kind === 4) {
    // Signed for another body.
    const token = await webhookToken(event);
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: { ...headers, Authorization: token },
      body: event.replace("participant_left", "participant_joined"),
      what: "tampered body",
    };
  }
  if (kind === 5) {
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: {
        ...headers,
        Authorization: r.pick([
          "Bearer x",
          "x.y.z",
          // Header values are bytes without CR, LF or NUL: what a hostile sender can put there.
          badString(r).slice(0, 200).replace(/[^\x20-\x7e]/g, "?"),
        ]),
      },
      body: event,
      what: "garbage token",
    };
  }
  if (kind === 6) {
    const method = r.pick(["GET", "PUT", "DELETE", "PATCH"]);
    return {
      fn: "livekit-webhook",
      method,
      headers,
      body: method === "GET" ? undefined : event,
      what: `method ${method}`,
    };
  }
  if (kind === 7) {
    // Over the webhook's size limit, correctly signed.
    const body = JSON.stringify({ event: "room_started", padding: "x".repeat(300_000) });
    return {
      fn: "livekit-webhook",
      method: "POST",
      headers: { ...headers, Authorization: await webhookToken(body) },
      body,
      what: "oversized",
    };
  }
  // Correctly signed, but not a usable event: invalid JSON, not an object, wrong types, no id or event.
  const body = r.pick([
    ...INVALID_JSON.filter((b) => b.length > 0),
    ...NON_OBJECTS,
    JSON.stringify({ event: 5, id: [] }),
    JSON.stringify({ event: "participant_left" }),
    JSON.stringify({ id: `EV_fuzz${r.int(1e9)}` }),
    JSON.stringify({ id: "", event: "" }),
    JSON.stringify({ room: { name: r.pick(SQL_INJECTION) } }),
    JSON.stringify({ createdAt: "yesterday", event: 7 }),
  ]);
  return {
    fn: "livekit-webhook",
    method: "POST",
    headers: { ...headers, Authorization: await webhookToken(body) },
    body,
    what: "signed but malformed",
  };
}

// Running a batch -----------------------------------------------------------------------------

const CONCURRENCY = 8;

/** How many uses the user's rate limits counted (the fixture's own map-number is one). */
async function rateLimited(userId: string): Promise<number> {
  const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from internal.rate_limit
    where owner_id = ${userId}`;
  return n;
}

async function runBatch(label: string, cases: Case[], f: Fixture) {
  const before = await userRows(f.user.id);
  const limitedBefore = await rateLimited(f.user.id);
  const failures: string[] = [];
  let fiveHundreds = 0;
  await pool(cases, CONCURRENCY, async (c) => {
    const res = await rawRequest(c.fn, {
      method: c.method,
      headers: c.headers,
      body: c.body,
      query: c.query,
    });
    if (res.status >= 500) fiveHundreds++;
    let body: Json = null;
    try {
      body = JSON.parse(res.text);
    } catch { /* reported below */ }
    const ok = res.status >= 400 && res.status < 500 &&
      /^application\/json\b/.test(res.contentType) && isErrorBody(body) &&
      !/\bat (file|ext|node):|\.ts:\d+/.test(res.text) && res.setCookie === null;
    if (!ok) {
      failures.push(
        `${c.fn} ${c.method} (${c.what}) -> ${res.status} ${res.contentType} ${
          res.text.slice(0, 200)
        }`,
      );
    }
  });
  assert.ok(await healthy(), `the gateway answers after the ${label} batch`);
  const after = await userRows(f.user.id);
  const limited = await rateLimited(f.user.id) - limitedBefore;
  addSummary({ "bad inputs tried": cases.length, "5xx answers to bad input": fiveHundreds });
  assert.deepEqual(
    failures.slice(0, 20),
    [],
    `${failures.length} of ${cases.length} bad ${label} requests were not a 4xx JSON error`,
  );
  assert.deepEqual(after, before, `the ${label} batch changed the fuzzing user's rows`);
  assert.equal(limited, 0, "no bad request got as far as the rate limiter");
}

function seedOf(name: string): number {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

Deno.test("map-number answers 500 generated bad requests with 4xx JSON errors and changes nothing", async () => {
  const f = await setup();
  const r = prng(seedOf("map-number"));
  const cases = Array.from(
    { length: 500 },
    () => badJsonRequest(r, TARGETS["map-number"], f, f.user.token),
  );
  await runBatch("map-number", cases, f);
});

Deno.test("create-trunks answers 400 generated bad requests from users and the service with 4xx JSON errors", async () => {
  const f = await setup();
  const r = prng(seedOf("create-trunks"));
  const cases = Array.from(
    { length: 400 },
    () =>
      badJsonRequest(
        r,
        TARGETS["create-trunks"],
        f,
        r.chance(0.25) ? stack.serviceKey : f.user.token,
      ),
  );
  await runBatch("create-trunks", cases, f);
});

Deno.test("create-participant answers 600 generated bad requests with 4xx JSON errors and dials nothing", async () => {
  const f = await setup();
  const r = prng(seedOf("create-participant"));
  const cases = Array.from(
    { length: 600 },
    () =>
      badJsonRequest(
        r,
        TARGETS["create-participant"],
        f,
        r.chance(0.2) ? stack.serviceKey : f.user.token,
      ),
  );
  await runBatch("create-participant", cases, f);
});

Deno.test("list-trunks answers 300 bad query strings with 4xx JSON errors", async () => {
  const f = await setup();
  const r = prng(seedOf("list-trunks GET"));
  const cases = Array.from({ length: 300 }, () => badQuery(r, f, f.user.token));
  await runBatch("list-trunks GET", cases, f);
});

Deno.test("list-trunks answers 300 generated bad POST bodies with 4xx JSON errors", async () => {
  const f = await setup();
  const r = prng(seedOf("list-trunks POST"));
  const cases = Array.from(
    { length: 300 },
    () => badJsonRequest(r, TARGETS["list-trunks"], f, f.user.token),
  );
  await runBatch("list-trunks POST", cases, f);
});

Deno.test("campaign-tick answers 400 generated bad requests, with the service key and without, with 4xx JSON errors", async () => {
  const f = await setup();
  const r = prng(seedOf("campaign-tick"));
  const cases = Array.from({ length: 400 }, () => {
    const who = r.int(10);
    // Mostly the service key (the body is what is bad); also users, the anon key and nobody.
    const auth = who < 7
      ? stack.serviceKey
      : who === 7
      ? f.user.token
      : who === 8
      ? stack.anonKey
      : null;
    return badJsonRequest(r, TARGETS["campaign-tick"], f, auth);
  });
  await runBatch("campaign-tick", cases, f);
});

Deno.test("livekit-webhook answers 500 unsigned, forged or malformed webhooks with 4xx JSON errors", async () => {
  const f = await setup();
  const r = prng(seedOf("livekit-webhook"));
  const [{ n: before }] =
    await sql`select count(*)::int as n from public.call_events where event_id like 'EV_fuzz%'`;
  const cases: Case[] = [];
  for (let i = 0; i < 500; i++) cases.push(await badWebhook(r));
  await runBatch("livekit-webhook", cases, f);
  const [{ n: after }] =
    await sql`select count(*)::int as n from public.call_events where event_id like 'EV_fuzz%'`;
  assert.equal(after, before, "no bad webhook was stored");
});

Deno.test("an unknown __proto__ field is refused like any other unknown field by every JSON function", async () => {
  const f = await setup();
  const before = await userRows(f.user.id);
  const cases: [string, string, Record<string, unknown>][] = [
    ["map-number", f.user.token, { phoneNumber: f.e164, assistantId: f.assistantId }],
    ["create-trunks", f.user.token, { phoneNumberId: f.numberId }],
    ["create-participant", f.user.token, {
      assistantId: f.assistantId,
      phoneNumber: "+14155550123",
    }],
    ["list-trunks", f.user.token, { assistantId: f.assistantId }],
    ["campaign-tick", stack.serviceKey, { campaignId: f.campaignId }],
  ];
  for (const [fn, token, valid] of cases) {
    // Valid except for the one extra key (JSON.parse makes "__proto__" an own key).
    const body = JSON.stringify(valid).replace(/}$/, ', "__proto__": {"isAdmin": true}}');
    const res = await rawRequest(fn, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body,
    });
    assert.equal(res.status, 400, `${fn} answered ${res.status}: ${res.text.slice(0, 200)}`);
    assert.equal(JSON.parse(res.text).error.code, "invalid_request");
  }
  addSummary({ "bad inputs tried": cases.length, "5xx answers to bad input": 0 });
  assert.deepEqual(await userRows(f.user.id), before);
});

Deno.test("a chunked body with no declared length is cut off past 64 KiB with a 413 JSON error", async () => {
  const f = await setup();
  const before = await userRows(f.user.id);
  const targets: [string, string][] = [
    ["map-number", f.user.token],
    ["create-trunks", f.user.token],
    ["create-participant", f.user.token],
    ["list-trunks", f.user.token],
    ["campaign-tick", stack.serviceKey],
  ];
  for (const [fn, token] of targets) {
    let sent = 0;
    // 17 chunks of 4 KiB of JSON whitespace: valid JSON so far, just too long.
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 17) c.enqueue(new TextEncoder().encode(" ".repeat(4096)));
        else c.close();
      },
    });
    const res = await fetch(`${stack.supabaseUrl}/functions/v1/${fn}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body,
    });
    const text = await res.text();
    recordResponse(fn, res.status, text);
    assert.equal(res.status, 413, `${fn}: ${text}`);
    assert.equal(JSON.parse(text).error.code, "payload_too_large");
  }
  addSummary({ "bad inputs tried": targets.length, "5xx answers to bad input": 0 });
  assert.ok(await healthy());
  assert.deepEqual(await userRows(f.user.id), before);
});
