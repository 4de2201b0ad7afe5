import assert from "node:assert/strict";
import {
  call,
  configureLiveKit,
  configureTwilio,
  createAssistant,
  createUser,
  DEFAULT_CARRIER_CPS,
  eventually,
  livekitRequests,
  readyAssistant,
  setCarrierCps,
  sql,
  stack,
  type TestUser,
  twilioState,
  webhookToken,
} from "../helpers/stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Callees by outcome, from the LiveKit emulator's table (last three digits). */
let seq = 0;
const callee = (suffix: string) => `+1212555${String(seq++ % 10)}${suffix}`;

function dial(user: TestUser, body: Record<string, unknown>) {
  return call("create-participant", { token: user.token, body });
}

async function finalCall(id: string) {
  return await eventually(async () => {
    const [c] = await sql`select * from public.outbound_calls where id = ${id}`;
    return c && ["completed", "busy", "no_answer", "failed"].includes(c.status) ? c : null;
  }, `call ${id} to end`);
}

async function dialCount() {
  return (await livekitRequests()).filter((r: Json) => r.method === "CreateSIPParticipant").length;
}

Deno.test("an answered call runs to completed with answer time, end time and duration", async () => {
  const { user, assistantId, e164, outboundTrunkId } = await readyAssistant("answered");
  const to = callee("905");
  const res = await dial(user, { assistantId, phoneNumber: to, metadata: { crm: "42" } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const c = res.body.call;
  assert.equal(c.outboundTrunkId, outboundTrunkId);
  assert.equal(c.fromNumber, e164);
  assert.equal(c.toNumber, to);
  assert.match(c.participantId, /^PA_/);
  assert.match(c.sipCallId, /^SCL_/);
  assert.ok(c.roomName && c.participantIdentity);

  const row = await finalCall(c.id);
  assert.equal(row.status, "completed");
  assert.equal(row.outcome, "answered");
  assert.ok(row.answered_at, "answered time recorded");
  assert.ok(row.ended_at >= row.answered_at);
  assert.equal(typeof row.duration_sec, "number");
  assert.equal(row.disconnect_reason, "CLIENT_INITIATED");

  // The agent was dispatched into the call's room with the call's metadata.
  const dispatch = (await livekitRequests()).find((r: Json) =>
    r.method === "CreateDispatch" && r.body.room === c.roomName
  )
    ?.body;
  assert.equal(dispatch.agentName, "answered-agent");
  const meta = JSON.parse(dispatch.metadata);
  assert.equal(meta.callId, c.id);
  assert.equal(meta.crm, "42");
  const events = await sql`select event from public.call_events where call_id = ${c.id}`;
  assert.ok(events.some((e) => e.event === "participant_left"));
});

Deno.test("a callee written with spaces and parentheses is dialed as its E.164 number", async () => {
  const { user, assistantId } = await readyAssistant("formatted");
  const res = await dial(user, { assistantId, phoneNumber: "+1 (212) 555-0905" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.call.toNumber, "+12125550905");
  const [row] =
    await sql`select to_number from public.outbound_calls where room_name = ${res.body.call.roomName}`;
  assert.equal(row.to_number, "+12125550905");
  const national = await dial(user, { assistantId, phoneNumber: "(212) 555-0905" });
  assert.equal(national.status, 400);
  assert.match(national.body.error.details.fields.phoneNumber, /country code/);
});

Deno.test("waitUntilAnswered returns once answered, and the call then completes", async () => {
  const { user, assistantId } = await readyAssistant("wait");
  const res = await dial(user, {
    assistantId,
    phoneNumber: callee("902"),
    waitUntilAnswered: true,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.ok(["in_progress", "completed"].includes(res.body.call.status));
  const row = await finalCall(res.body.call.id);
  assert.equal(row.status, "completed");
  assert.ok(row.answered_at);
});

const failures: [string, string, number | null, string, string][] = [
  // suffix, final status, SIP status, outcome, test name
  ["486", "busy", 486, "busy", "a busy callee ends busy with SIP 486"],
  ["408", "no_answer", null, "no_answer", "a callee who never answers ends no_answer"],
  ["480", "no_answer", 480, "unavailable", "an unavailable callee ends no_answer with SIP 480"],
  ["404", "failed", 404, "not_found", "an invalid number ends not_found with SIP 404"],
  ["403", "failed", 403, "blocked", "a blocked destination ends blocked with SIP 403"],
  ["401", "failed", 401, "auth_failed", "a refused trunk credential ends auth_failed with SIP 401"],
  ["503", "failed", 503, "carrier_error", "a carrier 503 ends failed as a carrier error"],
];

for (const [suffix, status, sip, outcome, name] of failures) {
  Deno.test(`${name} when waiting for the answer (502 naming LiveKit)`, async () => {
    const { user, assistantId } = await readyAssistant(`w${suffix}`);
    const res = await dial(user, {
      assistantId,
      phoneNumber: callee(suffix),
      waitUntilAnswered: true,
      ringingTimeoutSec: 10,
    });
    assert.equal(res.status, 502, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "upstream_error");
    assert.equal(res.body.error.details.upstream, "livekit");
    assert.equal(res.body.error.details.outcome, outcome);
    assert.equal(res.body.error.details.sipStatusCode, sip);
    const [row] =
      await sql`select * from public.outbound_calls where id = ${res.body.error.details.callId}`;
    assert.equal(row.status, status);
    assert.equal(row.outcome, outcome);
    assert.equal(row.sip_status_code, sip);
    assert.ok(row.ended_at);
  });

  // LiveKit's disconnect reason alone would say USER_REJECTED or USER_UNAVAILABLE here: the
  // dial keeps waiting in the background, so the exact SIP status decides.
  Deno.test(`${name} when not waiting (the dial's answer is awaited in the background)`, async () => {
    const { user, assistantId } = await readyAssistant(`n${suffix}`);
    const res = await dial(user, {
      assistantId,
      phoneNumber: callee(suffix),
      ringingTimeoutSec: 10,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const row = await finalCall(res.body.call.id);
    assert.equal(row.status, status);
    assert.equal(row.outcome, outcome);
    assert.equal(row.sip_status_code, sip);
    assert.equal(row.answered_at, null);
  });
}

Deno.test("a carrier CPS rejection ends the call as cps_limited and backs the carrier trunk off", async () => {
  const { user, assistantId } = await readyAssistant("cps");
  // The carrier allows less than the product paces to: the second INVITE in a second is refused.
  await configureTwilio({ cps: 1 });
  try {
    const [a, b] = await Promise.all([
      dial(user, { assistantId, phoneNumber: callee("901"), waitUntilAnswered: true }),
      dial(user, { assistantId, phoneNumber: callee("901"), waitUntilAnswered: true }),
    ]);
    const rejected = [a, b].find((r) => r.status === 502);
    assert.ok(rejected, "one of two calls in the same second is rejected");
    assert.equal(rejected!.body.error.details.sipStatusCode, 503);
    assert.equal(rejected!.body.error.details.outcome, "cps_limited");
    const [pace] = await sql`select p.backoff_level from internal.carrier_pacing p
      join public.outbound_calls o on o.carrier_trunk = p.carrier_trunk
      where o.id = ${rejected!.body.error.details.callId}`;
    assert.ok(pace.backoff_level >= 1, "the carrier trunk's rate is halved for a while");
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
});

Deno.test("direct calls on one carrier trunk stay within its calls per second in every sliding second", async () => {
  const a = await readyAssistant("pace-a");
  const b = await readyAssistant("pace-b");
  await setCarrierCps(2);
  try {
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => {
        const x = i % 2 ? a : b;
        return dial(x.user, { assistantId: x.assistantId, phoneNumber: callee("901") });
      }),
    );
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    const ids = results.map((r) => r.body.call.id);
    const rows = await Promise.all(ids.map(finalCall));
    assert.ok(rows.every((r) => r.outcome === "answered"), "the carrier rejected none");
    // What the carrier saw: every INVITE accepted, never 3 in one sliding second.
    const numbers = new Set(rows.map((r) => r.to_number));
    const invites = (await twilioState()).terminations.filter((t: Json) =>
      numbers.has(t.toNumber) && Date.parse(t.time) >= started
    );
    assert.equal(invites.length, 8);
    assert.ok(invites.every((t: Json) => t.outcome === "accepted"), JSON.stringify(invites));
    const sent = invites.map((t: Json) => Date.parse(t.time)).sort((x: number, y: number) => x - y);
    for (let i = 2; i < sent.length; i++) {
      assert.ok(sent[i] - sent[i - 2] >= 1000, `3 INVITEs within one second: ${sent.join(",")}`);
    }
    assert.ok(Date.now() - started >= 3000, "8 dials at 2 per second take at least 3 s");
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
});

Deno.test("a direct call answers 429 with Retry-After when the carrier trunk has no slot within 5 s", async () => {
  const { user, assistantId } = await readyAssistant("cps429");
  // One INVITE every 10.4 s: the second dial finds no slot within 5 s however long the first
  // takes to be answered (up to 5.4 s), not only when it is answered within 0.2 s.
  await setCarrierCps(0.1);
  try {
    const first = await dial(user, { assistantId, phoneNumber: callee("901") });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const before = await dialCount();
    const second = await dial(user, { assistantId, phoneNumber: callee("901") });
    assert.equal(second.status, 429, JSON.stringify(second.body));
    assert.equal(second.body.error.code, "rate_limited");
    assert.ok(second.body.error.details.retryAfterSec > 5);
    assert.equal(await dialCount(), before, "nothing was dialed");
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
});

Deno.test("with LiveKit down the call is recorded as failed and the answer is a 502", async () => {
  const { user, assistantId } = await readyAssistant("down");
  await configureLiveKit({ failureRate: 1 });
  let res;
  try {
    res = await dial(user, { assistantId, phoneNumber: callee("901") });
  } finally {
    await configureLiveKit({ failureRate: 0 });
  }
  assert.equal(res.status, 502);
  assert.equal(res.body.error.details.outcome, "livekit_error");
  const [row] =
    await sql`select * from public.outbound_calls where id = ${res.body.error.details.callId}`;
  assert.equal(row.status, "failed");
  assert.equal(row.outcome, "livekit_error");
});

Deno.test("an assistant without a ready outbound trunk gets 422 no_outbound_trunk", async () => {
  const user = await createUser("notrunk");
  const assistantId = await createAssistant(user);
  const before = await dialCount();
  const res = await dial(user, { assistantId, phoneNumber: callee("901") });
  assert.equal(res.status, 422);
  assert.equal(res.body.error.code, "no_outbound_trunk");
  assert.match(res.body.error.message, /map-number/);
  assert.equal(await dialCount(), before);
});

Deno.test("another user's assistant is forbidden, one that does not exist not found, and nothing is dialed", async () => {
  const { assistantId } = await readyAssistant("victim");
  const stranger = await createUser("intruder");
  const before = await dialCount();
  const res = await dial(stranger, { assistantId, phoneNumber: callee("901") });
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "forbidden");
  const none = await dial(stranger, {
    assistantId: crypto.randomUUID(),
    phoneNumber: callee("901"),
  });
  assert.equal(none.status, 404, JSON.stringify(none.body));
  assert.equal(none.body.error.code, "not_found");
  assert.equal(await dialCount(), before);
});

Deno.test("a callee outside the allowed countries or premium-rate gets 422 and nothing is dialed", async () => {
  const { user, assistantId } = await readyAssistant("fraud");
  const before = await dialCount();
  for (const to of ["+442071234567", "+19005551234"]) {
    const res = await dial(user, { assistantId, phoneNumber: to });
    assert.equal(res.status, 422, to);
    assert.equal(res.body.error.code, "destination_not_allowed");
  }
  assert.equal(await dialCount(), before);
  const [{ n }] =
    await sql`select count(*)::int as n from public.outbound_calls where owner_id = ${user.id}`;
  assert.equal(n, 0);
});

Deno.test("a callee on the do-not-call list gets 422 and nothing is dialed", async () => {
  const { user, assistantId } = await readyAssistant("dnc");
  const to = callee("901");
  await sql`insert into public.do_not_call (owner_id, e164, reason) values (${user.id}, ${to}, 'asked')`;
  const before = await dialCount();
  const res = await dial(user, { assistantId, phoneNumber: to });
  assert.equal(res.status, 422);
  assert.equal(res.body.error.code, "do_not_call");
  assert.equal(await dialCount(), before);
});

Deno.test("create-participant is rate-limited per user", async () => {
  const { user, assistantId } = await readyAssistant("rate");
  await sql`insert into internal.rate_limit (owner_id, bucket, window_start, count)
    values (${user.id}, 'create-participant', date_trunc('minute', now()), 30)
    on conflict (owner_id, bucket, window_start) do update set count = 30`;
  const res = await dial(user, { assistantId, phoneNumber: callee("901") });
  assert.equal(res.status, 429);
  assert.equal(res.body.error.code, "rate_limited");
  assert.ok(res.body.error.details.retryAfterSec >= 1);
});

Deno.test("the service may dial by outbound trunk id", async () => {
  const { outboundTrunkId } = await readyAssistant("svc");
  const res = await call("create-participant", {
    token: stack.serviceKey,
    body: { outboundTrunkId, phoneNumber: callee("901"), waitUntilAnswered: true },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.call.outboundTrunkId, outboundTrunkId);
});

// Webhooks ---------------------------------------------------------------------------------

async function signedPost(
  body: string,
  opts: { secret?: string; exp?: number; sha?: string } = {},
) {
  return await call("livekit-webhook", {
    body,
    headers: {
      Authorization: await webhookToken(body, opts),
      "Content-Type": "application/webhook+json",
    },
  });
}

/** A call whose dial is still waiting (408 rings until its timeout; real time while `fn` runs). */
async function withRingingCall(label: string, fn: (row: Json) => Promise<void>) {
  const { user, assistantId } = await readyAssistant(label);
  await configureLiveKit({ timeScale: 1 });
  try {
    const res = await dial(user, {
      assistantId,
      phoneNumber: callee("408"),
      ringingTimeoutSec: 80,
    });
    assert.equal(res.status, 200);
    const [row] = await sql`select * from public.outbound_calls where id = ${res.body.call.id}`;
    await fn(row);
  } finally {
    await configureLiveKit({ timeScale: 0.001 });
  }
}

/** A call that has ended (busy), for events that arrive after the end. */
async function endedCall(label: string) {
  const { user, assistantId } = await readyAssistant(label);
  const res = await dial(user, { assistantId, phoneNumber: callee("486") });
  assert.equal(res.status, 200);
  return await finalCall(res.body.call.id);
}

function leftEvent(row: Json, id: string, reason = "USER_REJECTED") {
  return JSON.stringify({
    event: "participant_left",
    id,
    createdAt: String(Math.floor(Date.now() / 1000)),
    room: { name: row.room_name, sid: "RM_test" },
    participant: {
      sid: "PA_test",
      identity: row.participant_identity,
      kind: "SIP",
      state: "DISCONNECTED",
      attributes: { "sip.callStatus": "ringing" },
      disconnectReason: reason,
    },
  });
}

Deno.test("a forged webhook gets 401 and changes nothing", async () => {
  await withRingingCall("forged", async (row) => {
    const body = leftEvent(row, `EV_forged${crypto.randomUUID().slice(0, 8)}`);
    const res = await signedPost(body, { secret: "not-the-secret-not-the-secret-xx" });
    assert.equal(res.status, 401);
    const tampered = await signedPost(body.replace("USER_REJECTED", "CLIENT_INITIATED"), {
      sha: btoa("x".repeat(32)),
    });
    assert.equal(tampered.status, 401);
    const [after] =
      await sql`select status, ended_at from public.outbound_calls where id = ${row.id}`;
    assert.equal(after.status, "dialing");
    assert.equal(after.ended_at, null);
    const [{ n }] =
      await sql`select count(*)::int as n from public.call_events where event_id like 'EV_forged%'`;
    assert.equal(n, 0);
  });
});

Deno.test("a stale webhook gets 401", async () => {
  await withRingingCall("stale", async (row) => {
    const res = await signedPost(leftEvent(row, `EV_stale${crypto.randomUUID().slice(0, 8)}`), {
      exp: Math.floor(Date.now() / 1000) - 3600,
    });
    assert.equal(res.status, 401);
  });
});

Deno.test("a leave while the dial waits for its answer is stored once and decides nothing", async () => {
  await withRingingCall("dupe", async (row) => {
    const body = leftEvent(row, `EV_dupe${crypto.randomUUID().slice(0, 8)}`);
    const first = await signedPost(body);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.duplicate, false);
    assert.equal(first.body.status, "dialing", "USER_REJECTED alone does not make it busy");
    const [once] =
      await sql`select status, ended_at, updated_at from public.outbound_calls where id = ${row.id}`;
    assert.ok(once.ended_at, "the leave's time is noted");
    const second = await signedPost(body);
    assert.equal(second.status, 200);
    assert.equal(second.body.duplicate, true);
    const [twice] =
      await sql`select status, updated_at from public.outbound_calls where id = ${row.id}`;
    assert.equal(twice.status, "dialing");
    assert.equal(
      twice.updated_at.getTime(),
      once.updated_at.getTime(),
      "the second delivery changed nothing",
    );
  });
});

Deno.test("events out of order never reopen an ended call", async () => {
  const row = await endedCall("order");
  assert.equal(row.status, "busy");
  for (
    const [event, status] of [["participant_joined", "ringing"], ["participant_left", "active"]]
  ) {
    const res = await signedPost(JSON.stringify({
      event,
      id: `EV_o${crypto.randomUUID().slice(0, 8)}`,
      createdAt: String(Math.floor(Date.now() / 1000) - 5),
      room: { name: row.room_name },
      participant: {
        identity: row.participant_identity,
        kind: "SIP",
        attributes: { "sip.callStatus": status },
        disconnectReason: "CLIENT_INITIATED",
      },
    }));
    assert.equal(res.status, 200);
  }
  const [after] = await sql`select status, outcome from public.outbound_calls where id = ${row.id}`;
  assert.equal(after.status, "busy");
  assert.equal(after.outcome, "busy");
});

Deno.test("webhooks that arrive before create-participant returns still leave the call consistent", async () => {
  const { user, assistantId } = await readyAssistant("early");
  // With waitUntilAnswered the joined (and for a short call, left) webhooks race the response.
  const res = await dial(user, {
    assistantId,
    phoneNumber: callee("900"),
    waitUntilAnswered: true,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const row = await finalCall(res.body.call.id);
  assert.equal(row.status, "completed");
  assert.ok(row.answered_at);
  assert.equal(row.participant_id, res.body.call.participantId);
});

Deno.test("a user cannot dial into a room that already exists", async () => {
  const { user, assistantId } = await readyAssistant("room");
  const { RoomServiceClient } = await import("livekit-server-sdk");
  const rooms = new RoomServiceClient(
    stack.livekit.url,
    stack.livekit.apiKey,
    stack.livekit.apiSecret,
  );
  const name = `call-inbound-${crypto.randomUUID().slice(0, 8)}`;
  await rooms.createRoom({ name });
  const before = await dialCount();
  const res = await dial(user, { assistantId, phoneNumber: callee("901"), roomName: name });
  assert.equal(res.status, 409);
  assert.equal(res.body.error.code, "conflict");
  assert.equal(await dialCount(), before);
});

Deno.test("a properly signed webhook that is not a webhook event gets 400, an unsigned one 401", async () => {
  const signed = await signedPost("{not json");
  assert.equal(signed.status, 400);
  assert.equal(signed.body.error.code, "invalid_request");
  const forged = await signedPost("{not json", { secret: "another-secret-another-secret-xx" });
  assert.equal(forged.status, 401);
});
