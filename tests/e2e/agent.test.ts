// The loop with the agent and the callee, through the gateway: dispositions (opt-out,
// callback, voicemail) and what they do to campaigns, who may report, and transfers.
import assert from "node:assert/strict";
import * as jose from "jose";
import { AccessToken, SipClient } from "livekit-server-sdk";
import {
  asUser,
  call,
  configureLiveKit,
  DEFAULT_CARRIER_CPS,
  eventually,
  livekitRequests,
  livekitState,
  readyAssistant,
  setCarrierCps,
  sql,
  stack,
  type TestUser,
} from "../helpers/stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const FINAL = ["completed", "busy", "no_answer", "failed"];

/** A LiveKit access token as an agent mints one with the project's key and secret. */
async function roomToken(
  room: string,
  grants: { roomJoin?: boolean; roomAdmin?: boolean; sipCall?: boolean } = { roomJoin: true },
  opts: { secret?: string } = {},
) {
  const at = new AccessToken(stack.livekit.apiKey, opts.secret ?? stack.livekit.apiSecret, {
    identity: `agent-${crypto.randomUUID().slice(0, 8)}`,
    ttl: "10m",
  });
  at.addGrant({ room, roomJoin: grants.roomJoin, roomAdmin: grants.roomAdmin });
  if (grants.sipCall) at.addSIPGrant({ call: true });
  return await at.toJwt();
}

function report(token: string, body: Record<string, unknown>) {
  return call("call-report", { token, body });
}

function tick(campaignId: string) {
  return call("campaign-tick", { token: stack.serviceKey, body: { campaignId } });
}

interface Fixture {
  user: TestUser;
  assistantId: string;
  numberId: string;
}

/** A running campaign of the fixture's assistant with these contacts (imported as the user). */
async function campaign(
  f: Fixture,
  contacts: Json[],
  settings: Record<string, unknown> = {},
): Promise<string> {
  const row = {
    owner_id: f.user.id,
    name: "agent loop",
    assistant_id: f.assistantId,
    phone_number_id: f.numberId,
    status: "draft",
    window_start: "00:00",
    window_end: "23:59:59",
    weekdays: [1, 2, 3, 4, 5, 6, 7],
    max_attempts: 3,
    ...settings,
  };
  const [c] = await sql`insert into public.campaigns ${sql(row)} returning id`;
  const [r] = await asUser(
    f.user,
    (tx) => tx`select public.add_campaign_calls(${c.id}, ${tx.json(contacts)}) as r`,
  );
  assert.equal(r.r.rejected.length, 0, JSON.stringify(r.r));
  // Started without the trigger's poke: the test decides when ticks run.
  await sql.begin(async (tx) => {
    await tx`alter table public.campaigns disable trigger changed`;
    await tx`update public.campaigns set status = 'running' where id = ${c.id}`;
    await tx`alter table public.campaigns enable trigger changed`;
  });
  return c.id;
}

async function contact(campaignId: string, e164: string) {
  const [cc] = await sql`select * from public.campaign_calls
    where campaign_id = ${campaignId} and e164 = ${e164}`;
  return cc;
}

/** Ticks until the contact's current call has ended and the contact was settled by it. */
async function dialedAndSettled(campaignId: string, e164: string, dials = 1) {
  const t = await tick(campaignId);
  assert.equal(t.status, 200, `campaign-tick: ${JSON.stringify(t.body)}`);
  return await eventually(async () => {
    const cc = await contact(campaignId, e164);
    if (!cc || cc.dials < dials || ["dialing", "in_progress"].includes(cc.status)) return null;
    const [o] = await sql`select * from public.outbound_calls
      where room_name = ${`cc-${cc.id}-${cc.dials}`}`;
    return o && FINAL.includes(o.status) ? { cc, call: o } : null;
  }, `${e164} dialed ${dials} time(s) and settled`);
}

async function invitesTo(e164: string) {
  return (await livekitState()).calls.filter((c: Json) => c.toNumber === e164);
}

/** A direct call that stays answered and live while `fn` runs (real time in the emulator). */
async function withLiveCall(
  label: string,
  fn: (row: Json, f: Awaited<ReturnType<typeof readyAssistant>>) => Promise<void>,
) {
  const f = await readyAssistant(label);
  await configureLiveKit({ timeScale: 1 });
  try {
    const res = await call("create-participant", {
      token: f.user.token,
      // 9NN: talks NN s after the answer.
      body: { assistantId: f.assistantId, phoneNumber: "+12125550960", waitUntilAnswered: true },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [row] = await sql`select * from public.outbound_calls where id = ${res.body.call.id}`;
    assert.equal(row.status, "in_progress");
    await fn(row, f);
  } finally {
    await configureLiveKit({ timeScale: 0.001, transferRefusal: null });
  }
}

async function transfersIn(room: string) {
  return (await livekitRequests()).filter((r: Json) =>
    r.method === "TransferSIPParticipant" && r.body?.roomName === room
  );
}

Deno.test("an opted-out callee of campaign A is never dialed by campaign B of the same owner", async () => {
  const f = await readyAssistant("optout");
  const callee = "+13125550411";
  const other = "+13125550412";
  const a = await campaign(f, [{ phoneNumber: callee }]);
  const b = await campaign(f, [{ phoneNumber: callee }, { phoneNumber: other }]);

  const { call: first } = await dialedAndSettled(a, callee);
  const token = await roomToken(first.room_name);
  const res = await report(token, { disposition: "opted_out", summary: "asked not to be called" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.call.disposition, "opted_out");
  assert.equal(res.body.campaignCall.status, "completed");

  const [dnc] =
    await sql`select * from public.do_not_call where owner_id = ${f.user.id} and e164 = ${callee}`;
  assert.ok(dnc, "the callee is on the owner's do-not-call list");
  assert.equal(dnc.call_id, first.id);
  assert.match(dnc.reason, /opted out during call .*asked not to be called/);
  const queuedInB = await contact(b, callee);
  assert.equal(queuedInB.status, "skipped", "campaign B drops the number at once");
  assert.equal(queuedInB.last_outcome, "do_not_call");

  // Campaign B runs: the other callee is dialed, the opted-out one never.
  await dialedAndSettled(b, other);
  assert.equal((await invitesTo(callee)).length, 1, "dialed once, by campaign A only");

  // Even a contact that is back in the queue (it was mid-dial, say) is refused at dial time.
  await sql.begin(async (tx) => {
    await tx`update public.campaign_calls set status = 'queued', next_attempt_at = now(), completed_at = null
      where id = ${queuedInB.id}`;
    await tx`alter table public.campaigns disable trigger changed`;
    await tx`update public.campaigns set status = 'running' where id = ${b}`;
    await tx`alter table public.campaigns enable trigger changed`;
  });
  // Other tests' dials may have left the shared carrier trunk backed off: one tick must claim it.
  await setCarrierCps(DEFAULT_CARRIER_CPS);
  const t = await tick(b);
  assert.equal(t.body.skipped, 1, JSON.stringify(t.body));
  const refused = await eventually(async () => {
    const cc = await contact(b, callee);
    return cc.status === "skipped" ? cc : null;
  }, "the requeued contact to be skipped at dial time");
  assert.equal(refused.last_outcome, "do_not_call");
  assert.equal((await invitesTo(callee)).length, 1, "still dialed once");

  // A campaign created afterwards skips the number on import.
  const c = await campaign(f, [{ phoneNumber: callee }]);
  assert.equal((await contact(c, callee)).status, "skipped");
});

/** The next Saturday (at least a day ahead) at 03:00 in Phoenix (UTC-7 all year), and the Monday 09:00 after it. */
function phoenixWeekend() {
  const local = new Date(Date.now() - 7 * 3600_000);
  const day = new Date(Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate()));
  let ahead = (6 - day.getUTCDay() + 7) % 7;
  if (ahead < 1) ahead += 7;
  const saturday = new Date(day.getTime() + ahead * 86_400_000);
  const ymd = (d: Date) => d.toISOString().slice(0, 10);
  const monday = new Date(saturday.getTime() + 2 * 86_400_000);
  return {
    callbackAt: `${ymd(saturday)}T03:00:00-07:00`,
    expected: new Date(`${ymd(monday)}T09:00:00-07:00`),
    sundayNoon: new Date(`${ymd(new Date(saturday.getTime() + 86_400_000))}T12:00:00-07:00`),
  };
}

Deno.test("a callback outside the callee's window moves to the window's next opening in the callee's zone", async () => {
  const f = await readyAssistant("callback");
  const ada = "+16025550421";
  const bob = "+16025550422";
  const id = await campaign(f, [
    { phoneNumber: ada, timezone: "America/Phoenix" },
    { phoneNumber: bob, timezone: "America/Phoenix" },
  ]);
  const { call: adaCall } = await dialedAndSettled(id, ada);
  const { call: bobCall, cc: bobBefore } = await dialedAndSettled(id, bob);
  // From now on the campaign calls on weekdays 9 to 5 only (callee's local time).
  await sql`update public.campaigns set window_start = '09:00', window_end = '17:00', weekdays = '{1,2,3,4,5}'
    where id = ${id}`;

  const { callbackAt, expected, sundayNoon } = phoenixWeekend();
  const res = await report(await roomToken(adaCall.room_name), {
    disposition: "callback",
    callbackAt,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.campaignCall.status, "queued");
  assert.equal(
    new Date(res.body.campaignCall.nextAttemptAt).toISOString(),
    expected.toISOString(),
    `Saturday 03:00 in Phoenix is called back on Monday at 09:00 Phoenix time`,
  );
  const adaNow = await contact(id, ada);
  assert.equal(adaNow.next_attempt_at.toISOString(), expected.toISOString());
  assert.equal(adaNow.last_outcome, "callback");
  const [{ status }] = await sql`select status from public.campaigns where id = ${id}`;
  assert.equal(status, "running", "the completed campaign reopens for the callback");

  // A callback that the window would push past the campaign's end is refused and changes nothing.
  await sql`update public.campaigns set ends_at = ${sundayNoon} where id = ${id}`;
  const late = await report(stack.serviceKey, {
    callId: bobCall.id,
    disposition: "callback",
    callbackAt,
  });
  assert.equal(late.status, 422, JSON.stringify(late.body));
  assert.equal(late.body.error.code, "past_campaign_end");
  assert.equal(new Date(late.body.error.details.attemptAt).toISOString(), expected.toISOString());
  const bobAfter = await contact(id, bob);
  assert.equal(bobAfter.status, bobBefore.status);
  assert.equal(bobAfter.updated_at.getTime(), bobBefore.updated_at.getTime());
  const [{ n }] =
    await sql`select count(*)::int as n from public.call_reports where call_id = ${bobCall.id}`;
  assert.equal(n, 0);
  await sql`update public.campaigns set status = 'cancelled' where id = ${id}`;
});

Deno.test("voicemail is called again after retry_voicemail_sec, even reported after the call settled", async () => {
  const f = await readyAssistant("voicemail");
  const callee = "+13125550431";
  const id = await campaign(f, [{ phoneNumber: callee }], {
    retry_voicemail_sec: 2,
    retry_backoff: 3,
  });
  const { call: first, cc } = await dialedAndSettled(id, callee);
  assert.equal(cc.status, "completed", "answered: settled as done, until the agent says otherwise");

  const token = await roomToken(first.room_name);
  const res = await report(token, { disposition: "voicemail" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.campaignCall.status, "queued");
  const [rep] = await sql`select * from public.call_reports where call_id = ${first.id}`;
  const wait =
    (new Date(res.body.campaignCall.nextAttemptAt).getTime() - rep.created_at.getTime()) /
    1000;
  assert.ok(wait >= 2 && wait < 3, `retried ${wait} s after the report, expected 2 s`);
  const again = await contact(id, callee);
  assert.equal(again.last_outcome, "voicemail");
  assert.equal(again.attempts, 1);

  // Idempotent: the same report again changes nothing.
  const repeat = await report(token, { disposition: "voicemail" });
  assert.equal(repeat.status, 200);
  assert.equal(repeat.body.duplicate, true);
  assert.equal(
    (await contact(id, callee)).next_attempt_at.getTime(),
    again.next_attempt_at.getTime(),
  );

  // Not before its time: a tick now dials nothing; once due, the next tick dials it.
  await tick(id);
  assert.equal((await contact(id, callee)).dials, 1);
  await new Promise((r) => setTimeout(r, again.next_attempt_at.getTime() - Date.now() + 50));
  const { call: second } = await dialedAndSettled(id, callee, 2);
  assert.ok(second.dialed_at >= again.next_attempt_at, "dialed once due");
  assert.equal((await invitesTo(callee)).length, 2);

  // The second attempt reaches voicemail too: the delay grows by retry_backoff.
  const res2 = await report(await roomToken(second.room_name), { disposition: "voicemail" });
  const [rep2] = await sql`select * from public.call_reports where call_id = ${second.id}`;
  const wait2 =
    (new Date(res2.body.campaignCall.nextAttemptAt).getTime() - rep2.created_at.getTime()) / 1000;
  assert.ok(wait2 >= 6 && wait2 < 7, `second retry after ${wait2} s, expected 2 s x 3`);
  // The agent left a message after all: the contact is done, and stays so.
  const left = await report(await roomToken(second.room_name), { disposition: "voicemail_left" });
  assert.equal(left.status, 200, JSON.stringify(left.body));
  assert.equal(left.body.campaignCall.status, "completed");
  const flip = await report(await roomToken(second.room_name), { disposition: "voicemail" });
  assert.equal(flip.status, 200, "the earlier voicemail report is a repeat");
  assert.equal(flip.body.duplicate, true);
  const late = await report(await roomToken(second.room_name), { disposition: "not_interested" });
  assert.equal(late.status, 409, "a final contact keeps its disposition");
  const [{ status }] = await sql`select status from public.campaigns where id = ${id}`;
  assert.equal(status, "completed");
});

Deno.test("a report while the call is live decides the contact's next step when the call ends", async () => {
  const f = await readyAssistant("live-report");
  const callee = "+13125550930"; // talks 30 s (real time while the emulator runs at 1)
  const id = await campaign(f, [{ phoneNumber: callee }], { retry_voicemail_sec: 600 });
  await configureLiveKit({ timeScale: 1 });
  try {
    await tick(id);
    const live = await eventually(async () => {
      const [o] = await sql`select * from public.outbound_calls where campaign_id = ${id}`;
      return o?.status === "in_progress" ? o : null;
    }, "the call to be answered");
    const res = await report(await roomToken(live.room_name), {
      disposition: "voicemail",
      data: { amd: "machine-vm" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.call.status, "in_progress");
    assert.equal(
      res.body.campaignCall.status,
      "in_progress",
      "nothing moves while the call is live",
    );
  } finally {
    await configureLiveKit({ timeScale: 0.001 });
  }
  const cc = await eventually(async () => {
    const x = await contact(id, callee);
    return x.status === "queued" ? x : null;
  }, "the contact to be queued again when the call ends");
  assert.equal(cc.last_outcome, "voicemail");
  const [o] = await sql`select * from public.outbound_calls where campaign_id = ${id}`;
  assert.equal(o.outcome, "answered");
  assert.deepEqual(o.report_data, { amd: "machine-vm" });
  const wait = (cc.next_attempt_at.getTime() - o.ended_at.getTime()) / 1000;
  assert.ok(wait >= 590 && wait < 700, `retry in ${wait} s, expected 600`);
  await sql`update public.campaigns set status = 'cancelled' where id = ${id}`;
});

Deno.test("who may report: a token for another room is 403 and changes nothing; a forged one 401", async () => {
  const f = await readyAssistant("report-auth");
  const callee = "+13125550441";
  const id = await campaign(f, [{ phoneNumber: callee }]);
  const { call: done, cc } = await dialedAndSettled(id, callee);
  const unchanged = async () => {
    const [o] = await sql`select disposition from public.outbound_calls where id = ${done.id}`;
    assert.equal(o.disposition, null);
    const [{ n }] =
      await sql`select count(*)::int as n from public.call_reports where call_id = ${done.id}`;
    assert.equal(n, 0);
    const [{ d }] =
      await sql`select count(*)::int as d from public.do_not_call where owner_id = ${f.user.id}`;
    assert.equal(d, 0);
    assert.equal((await contact(id, callee)).updated_at.getTime(), cc.updated_at.getTime());
  };
  const elsewhere = await roomToken("some-other-room");
  for (const body of [{ callId: done.id }, { roomName: done.room_name }, {}]) {
    const res = await report(elsewhere, { ...body, disposition: "opted_out" });
    assert.equal(res.status, body.callId || body.roomName ? 403 : 404, JSON.stringify(res.body));
  }
  const noGrant = await roomToken(done.room_name, {});
  assert.equal((await report(noGrant, { disposition: "opted_out" })).status, 403);
  await unchanged();

  const forged = await roomToken(done.room_name, { roomJoin: true }, { secret: "x".repeat(32) });
  const forgedRes = await report(forged, { disposition: "opted_out" });
  assert.equal(forgedRes.status, 401, JSON.stringify(forgedRes.body));
  assert.equal(forgedRes.body.error.code, "unauthenticated");
  const now = Math.floor(Date.now() / 1000);
  const expired = await new jose.SignJWT({ video: { room: done.room_name, roomJoin: true } })
    .setProtectedHeader({ alg: "HS256" }).setIssuer(stack.livekit.apiKey).setSubject("agent")
    .setNotBefore(now - 7200).setExpirationTime(now - 3600)
    .sign(new TextEncoder().encode(stack.livekit.apiSecret));
  assert.equal((await report(expired, { disposition: "opted_out" })).status, 401);
  assert.equal((await report("not-a-token", { disposition: "opted_out" })).status, 401);
  assert.equal(
    (await call("call-report", { body: { callId: done.id, disposition: "opted_out" } })).status,
    401,
  );
  const asUserRes = await report(f.user.token, { callId: done.id, disposition: "opted_out" });
  assert.equal(asUserRes.status, 403, "a user session is not an agent");
  await unchanged();

  // The room's own token, with roomAdmin instead of roomJoin, and the service key both may.
  const admin = await roomToken(done.room_name, { roomAdmin: true });
  const ok = await report(admin, { disposition: "completed", summary: "renewed" });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const svc = await report(stack.serviceKey, { callId: done.id, disposition: "completed" });
  assert.equal(svc.body.duplicate, true);
  const bad = await report(stack.serviceKey, { callId: done.id, disposition: "hung_up" });
  assert.equal(bad.status, 400);
  assert.ok(bad.body.error.details.fields.disposition);
  // The owner reads the report under RLS.
  const mine = await f.user.client.from("call_reports").select("*").eq("call_id", done.id);
  assert.equal(mine.data?.length, 1);
  assert.equal(mine.data?.[0].reported_by, "agent");
});

Deno.test("a transfer of an answered call reaches LiveKit as one TransferSIPParticipant", async () => {
  await withLiveCall("transfer", async (row, f) => {
    await sql`insert into public.do_not_call (owner_id, e164) values (${f.user.id}, '+14155550199')`;
    const agent = await roomToken(row.room_name);
    // Refused before LiveKit is asked: the owner's do-not-call list and the destination allowlist.
    for (
      const [transferTo, code] of [
        ["+14155550199", "do_not_call"],
        ["sip:+14155550199@pstn.example.com", "do_not_call"],
        ["+442071234567", "destination_not_allowed"],
        ["+19005551234", "destination_not_allowed"],
        // Toll fraud through a SIP user part: a premium number, letters in a number, a pause,
        // and a SIP address on a host the operator did not allow.
        ["sip:+19005551234@pstn.example.com", "destination_not_allowed"],
        ["sip:+1900555x1234@pstn.example.com", "destination_not_allowed"],
        ["sip:+19005551234,1@pstn.example.com", "destination_not_allowed"],
        ["sip:\uff0b19005551234@pstn.example.com", "destination_not_allowed"],
        ["sip:desk@elsewhere.example.com", "destination_not_allowed"],
      ]
    ) {
      const res = await call("transfer-call", { token: agent, body: { transferTo } });
      assert.equal(res.status, 422, `${transferTo}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, code);
    }
    for (
      const transferTo of ["4155550100", "sip:0114477009001234@pstn.example.com", "+1900555,1"]
    ) {
      const bad = await call("transfer-call", { token: agent, body: { transferTo } });
      assert.equal(bad.status, 400, `${transferTo}: ${JSON.stringify(bad.body)}`);
    }
    const other = await call("transfer-call", {
      token: await roomToken("another-room"),
      body: { callId: row.id, transferTo: "+14155550123" },
    });
    assert.equal(other.status, 403);
    const stranger = await readyAssistant("transfer-stranger");
    const notTheirs = await call("transfer-call", {
      token: stranger.user.token,
      body: { callId: row.id, transferTo: "+14155550123" },
    });
    assert.equal(notTheirs.status, 404);
    assert.equal((await transfersIn(row.room_name)).length, 0, "LiveKit was not called");

    const res = await call("transfer-call", {
      token: f.user.token,
      body: { callId: row.id, transferTo: "+14155550123" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.call.transferredTo, "tel:+14155550123");
    const sent = await transfersIn(row.room_name);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].body.participantIdentity, row.participant_identity);
    assert.equal(sent[0].body.transferTo, "tel:+14155550123");
    const [ev] =
      await sql`select * from public.call_events where call_id = ${row.id} and event = 'transfer_succeeded'`;
    assert.equal(ev.payload.transferTo, "tel:+14155550123");
    assert.equal(ev.payload.requestedBy, `user:${f.user.id}`);

    // LiveKit hangs up after the transfer; the call then ends and cannot be transferred again.
    const ended = await eventually(async () => {
      const [o] = await sql`select * from public.outbound_calls where id = ${row.id}`;
      return FINAL.includes(o.status) ? o : null;
    }, "the transferred call to end");
    assert.equal(ended.transferred_to, "tel:+14155550123");
    const lkCall = (await livekitState()).calls.find((c: Json) => c.room === row.room_name);
    assert.equal(lkCall.outcome, "transferred");
    const again = await call("transfer-call", {
      token: f.user.token,
      body: { callId: row.id, transferTo: "+14155550124" },
    });
    assert.equal(again.status, 409);
    assert.equal((await transfersIn(row.room_name)).length, 1);
  });
});

Deno.test("a refused REFER is a 502 naming the SIP status; LiveKit's own transfer rules hold", async () => {
  await withLiveCall("transfer-refused", async (row) => {
    await configureLiveKit({ transferRefusal: { sipStatusCode: 403, sipStatus: "Forbidden" } });
    const res = await call("transfer-call", {
      token: stack.serviceKey,
      body: { roomName: row.room_name, transferTo: "sip:desk@pbx.example.com" },
    });
    assert.equal(res.status, 502, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "upstream_error");
    assert.equal(res.body.error.details.upstream, "livekit");
    assert.equal(res.body.error.details.sipStatusCode, 403);
    const [o] =
      await sql`select status, transferred_to from public.outbound_calls where id = ${row.id}`;
    assert.equal(o.status, "in_progress", "the call goes on");
    assert.equal(o.transferred_to, null);
    const [ev] =
      await sql`select * from public.call_events where call_id = ${row.id} and event = 'transfer_failed'`;
    assert.equal(ev.payload.error.sipStatusCode, 403);
    // Accepted, then failed in the NOTIFY (the target was busy): LiveKit's "call transfer failed".
    await configureLiveKit({
      transferRefusal: { sipStatusCode: 486, sipStatus: "Busy Here", at: "notify" },
    });
    const busy = await call("transfer-call", {
      token: stack.serviceKey,
      body: { callId: row.id, transferTo: "+14155550123" },
    });
    assert.equal(busy.status, 502, JSON.stringify(busy.body));
    assert.equal(busy.body.error.details.sipStatusCode, 486);
    assert.match(busy.body.error.message, /SIP 486 Busy Here/);
    await configureLiveKit({ transferRefusal: null });
    const lkCall = (await livekitState()).calls.find((c: Json) => c.room === row.room_name);
    assert.deepEqual(lkCall.transfers.map((t: Json) => [t.result, t.sipStatusCode]), [
      ["refused", 403],
      ["failed", 486],
    ]);

    // Straight to LiveKit with an agent's room token: its rules, as the real server applies them.
    const lk = (token: string) => new SipClient(stack.livekit.url, undefined, undefined, { token });
    const admin = await roomToken(row.room_name, { roomAdmin: true, sipCall: true });
    const agentIdentity = (await livekitState()).participants.find((p: Json) =>
      p.room === row.room_name && p.identity !== row.participant_identity
    )?.identity;
    assert.ok(agentIdentity, "the agent shares the room");
    await assert.rejects(
      lk(admin).transferSipParticipant(row.room_name, agentIdentity, "tel:+14155550123"),
      /no SIP session associated with participant/,
    );
    for (
      const token of [
        await roomToken(row.room_name, { roomAdmin: true }),
        await roomToken("another-room", { roomAdmin: true, sipCall: true }),
        await roomToken(row.room_name, { roomJoin: true, sipCall: true }),
      ]
    ) {
      await assert.rejects(
        lk(token).transferSipParticipant(
          row.room_name,
          row.participant_identity,
          "tel:+14155550123",
        ),
        /permissions denied/,
      );
    }
    await assert.rejects(
      lk(admin).transferSipParticipant(row.room_name, row.participant_identity, "+14155550123"),
      /sip:, sips: or tel:/,
    );
    const first = lk(admin).transferSipParticipant(
      row.room_name,
      row.participant_identity,
      "tel:+14155550123",
    );
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(
      lk(admin).transferSipParticipant(row.room_name, row.participant_identity, "tel:+14155550124"),
      /call already being transferred elsewhere/,
    );
    await first;
  });
});

Deno.test("only a live call can be transferred", async () => {
  const f = await readyAssistant("transfer-ended");
  const res = await call("create-participant", {
    token: f.user.token,
    body: { assistantId: f.assistantId, phoneNumber: "+12125550486", waitUntilAnswered: true },
  });
  assert.equal(res.status, 502);
  const id = res.body.error.details.callId;
  const t = await call("transfer-call", {
    token: f.user.token,
    body: { callId: id, transferTo: "+14155550123" },
  });
  assert.equal(t.status, 409, JSON.stringify(t.body));
  assert.equal(t.body.error.details.status, "busy");
});

Deno.test("the dial's compliance record: zone, local time, window, do-not-call check and destination", async () => {
  const f = await readyAssistant("compliance");
  const callee = "+13125550451";
  const id = await campaign(f, [{ phoneNumber: callee }]);
  const { call: done } = await dialedAndSettled(id, callee);
  const mine = await f.user.client.from("dial_compliance").select("*").eq("call_id", done.id);
  assert.equal(mine.error, null, JSON.stringify(mine.error));
  const r = mine.data![0];
  assert.equal(r.callee_timezone, "America/Chicago");
  assert.equal(r.timezone_source, "number");
  assert.equal(r.inside_window, true);
  assert.match(r.window_rule, /^00:00-23:59 local time, ISO weekdays 1,2,3,4,5,6,7$/);
  assert.equal(r.on_dnc_list, false);
  assert.ok(r.dnc_checked_at);
  assert.equal(r.destination_country, "US");
  assert.deepEqual(r.allowed_countries, ["US", "CA"]);
  assert.equal(r.destination_allowed, true);
  const stranger = await readyAssistant("compliance-stranger");
  const theirs = await stranger.user.client.from("dial_compliance").select("*").eq(
    "call_id",
    done.id,
  );
  assert.deepEqual(theirs.data, []);
});

Deno.test("bad requests to the agent's functions are 4xx naming the field, never a 5xx", async () => {
  const f = await readyAssistant("agent-bad-input");
  const svc = stack.serviceKey;
  const cases: [string, string, unknown, number, string][] = [
    ["call-report", svc, {}, 400, "disposition"],
    ["call-report", svc, { callId: "nope", disposition: "completed" }, 400, "callId"],
    ["call-report", svc, { disposition: "completed" }, 400, "callId"],
    [
      "call-report",
      svc,
      { callId: crypto.randomUUID(), disposition: "completed", extra: 1 },
      400,
      "extra",
    ],
    ["call-report", svc, { callId: crypto.randomUUID(), disposition: "completed" }, 404, ""],
    [
      "call-report",
      svc,
      { callId: crypto.randomUUID(), disposition: "callback", callbackAt: "2020-01-01T00:00:00Z" },
      400,
      "callbackAt",
    ],
    ["transfer-call", svc, { transferTo: 5 }, 400, "transferTo"],
    [
      "transfer-call",
      f.user.token,
      { callId: crypto.randomUUID(), transferTo: "+14155550123" },
      404,
      "",
    ],
    ["import-contacts", f.user.token, { contacts: "x" }, 400, "contacts"],
    ["import-contacts", f.user.token, { contacts: [] }, 400, "campaignId"],
    ["import-contacts", f.user.token, [], 400, "(body)"],
  ];
  for (const [fn, token, body, status, field] of cases) {
    const res = await call(fn, { token, body });
    assert.equal(res.status, status, `${fn} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
    if (field) assert.ok(res.body.error.details.fields[field], `${fn} names ${field}`);
  }
  const notJson = await call("call-report", {
    token: svc,
    body: "{",
    headers: { "Content-Type": "application/json" },
  });
  assert.equal(notJson.status, 400);
});
