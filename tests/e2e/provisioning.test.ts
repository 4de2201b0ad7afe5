import assert from "node:assert/strict";
import { SIPOutboundTrunkUpdate, SIPTransport } from "@livekit/protocol";
import { SipClient } from "livekit-server-sdk";
import type { Fn } from "../../supabase/functions/_shared/http.ts";
import { setLogSink } from "../../supabase/functions/_shared/log.ts";
import { findTwilioNumber } from "../../supabase/functions/_shared/carrier_trunk.ts";
import { createTwilioClient } from "../../supabase/functions/_shared/twilio_client.ts";
import { handler as createTrunksHere } from "../../supabase/functions/create-trunks/handler.ts";
import { handler as mapNumberHere } from "../../supabase/functions/map-number/handler.ts";
import {
  call,
  configureLiveKit,
  createAssistant,
  createUser,
  eventually,
  freeNumber,
  freeNumbers,
  functionDeps,
  livekitRequests,
  livekitState,
  outboxDrained,
  sql,
  stack,
  type TestUser,
  twilioState,
} from "../helpers/stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function invoke(user: TestUser, name: string, body: unknown) {
  const { data, error } = await user.client.functions.invoke(name, {
    body: body as Record<string, unknown>,
  });
  if (error) {
    const ctx = (error as { context?: Response }).context;
    return { status: ctx?.status ?? 0, body: ctx ? await ctx.json() : { error: String(error) } };
  }
  return { status: 200, body: data };
}

/** What LiveKit holds for a number, from the emulator's own state. */
async function inLiveKit(e164: string) {
  const s = await livekitState();
  const inbound = s.inboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(e164));
  const outbound = s.outboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(e164));
  const inboundIds = new Set(inbound.map((t: Json) => t.sipTrunkId));
  const rules = s.dispatchRules.filter((r: Json) =>
    (r.trunkIds ?? []).some((id: string) => inboundIds.has(id))
  );
  return { inbound, outbound, rules };
}

const lkSip = () => new SipClient(stack.livekit.url, stack.livekit.apiKey, stack.livekit.apiSecret);
const twilio = () =>
  createTwilioClient({
    accountSid: stack.twilio!.accountSid,
    authToken: stack.twilio!.authToken,
    baseUrl: stack.twilio!.url,
  });

// Functions run in this process log nowhere (the stack's own functions log to its file).
setLogSink(() => {});

/**
 * Runs a function's handler in this process with the stack's environment changed by
 * `overrides`, as a deployment configured that way would run it. The stack's gateway keeps
 * its own environment.
 */
async function invokeWithEnv(
  overrides: Record<string, string | undefined>,
  handler: Fn,
  token: string,
  body: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await handler(functionDeps(overrides))(
    new Request("http://functions.local/", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }),
  );
  return { status: res.status, body: await res.json() };
}

/**
 * Holds the number's provisioning job (locked for a day), so neither the trigger's poke nor
 * the sweep provisions it with the stack's environment: only the test does.
 */
async function holdJob(e164: string) {
  await sql`insert into internal.provisioning_job (e164, locked_until) values (${e164}, now() + interval '1 day')`;
}

/** Lets go of a held number: unassigned through the trigger, released by the stack's functions. */
async function letGo(e164: string) {
  await sql`delete from internal.provisioning_job where e164 = ${e164} and status <> 'done'`;
  await sql`update public.phone_number set assistant_id = null where e164 = ${e164}`;
  await outboxDrained(e164);
}

/** The account's Elastic SIP trunk and its origination URLs, from the Twilio emulator. */
async function accountTrunk() {
  const tw = await twilioState();
  const [row] = await sql`select trunk_sid from internal.sip_trunk where account_sid = ${
    stack.twilio!.accountSid
  }`;
  const trunk = tw.trunks.find((t: Json) => t.sid === row.trunk_sid);
  const urls = await twilio().trunking.v1.trunks(trunk.sid).originationUrls.list();
  return { trunk, urls, enabled: urls.filter((u) => u.enabled).map((u) => u.sipUrl) };
}

async function outboundTrunk(id: string) {
  const [t] = await lkSip().listSipOutboundTrunk({ trunkIds: [id] });
  return t;
}

/** Outbound trunk writes LiveKit received since `ms` (the emulator's request log). */
async function trunkWritesSince(ms: number) {
  return (await livekitRequests()).filter((r: Json) =>
    r.ms >= ms && /^(Create|Update)SIPOutboundTrunk$|^DeleteSIPTrunk$/.test(r.method)
  );
}

async function setup(label: string, number?: string) {
  const user = await createUser(label);
  const assistantId = await createAssistant(user, `${label} assistant`, `${label}-agent`);
  const e164 = number ?? await freeNumber();
  return { user, assistantId, e164 };
}

Deno.test("assigning a number provisions one inbound trunk, one dispatch rule and one outbound trunk", async () => {
  const { user, assistantId, e164 } = await setup("assign");
  const res = await invoke(user, "map-number", {
    phoneNumber: e164,
    assistantId,
    label: "Front desk",
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const n = res.body.phoneNumber;
  assert.equal(n.trunkStatus, "ready");
  assert.equal(n.e164, e164);
  assert.equal(n.assistantId, assistantId);
  assert.match(n.twilioSid, /^PN[0-9a-f]{32}$/);
  assert.match(n.inboundTrunkId, /^ST_/);
  assert.match(n.outboundTrunkId, /^ST_/);
  assert.match(n.dispatchRuleId, /^SDR_/);

  const lk = await inLiveKit(e164);
  assert.equal(lk.inbound.length, 1);
  assert.equal(lk.outbound.length, 1);
  assert.equal(lk.rules.length, 1);
  assert.equal(lk.inbound[0].sipTrunkId, n.inboundTrunkId);
  assert.equal(lk.outbound[0].sipTrunkId, n.outboundTrunkId);
  assert.deepEqual(JSON.parse(lk.outbound[0].metadata).assistantId, assistantId);
  const rule = lk.rules[0];
  assert.equal(rule.rule.dispatchRuleIndividual.roomPrefix, `call-${assistantId.slice(0, 8)}-`);
  assert.equal(rule.roomConfig.agents[0].agentName, "assign-agent");

  // The Twilio side: the number sits on the trunk whose domain is the outbound address and
  // whose credential list holds the outbound trunk's username.
  const tw = await twilioState();
  const trunk = tw.trunks.find((t: Json) => t.domainName === lk.outbound[0].address);
  assert.ok(trunk, `a Twilio trunk with domain ${lk.outbound[0].address}`);
  assert.ok(lk.outbound[0].address.endsWith(".pstn.twilio.com"));
  assert.ok(!lk.outbound[0].address.startsWith("sip:"));
  assert.ok(trunk.phoneNumbers.includes(e164), "the number is attached to the trunk");
  assert.equal(tw.numbers.find((x: Json) => x.phoneNumber === e164).trunkSid, trunk.sid);
  const lists = tw.credentialLists.filter((l: Json) => trunk.credentialLists.includes(l.sid));
  assert.ok(
    lists.some((l: Json) =>
      l.credentials.some((c: Json) => c.username === lk.outbound[0].authUsername)
    ),
    "a credential list on the trunk holds the outbound trunk's username",
  );
  assert.equal(trunk.originationUrls.length, 1, "inbound calls are sent to LiveKit");
  assert.match(trunk.originationUrls[0].sipUrl, /^sip:.+;transport=tcp$/);
  assert.ok(
    lk.outbound[0].authPassword?.length >= 12,
    "the outbound trunk carries a strong password",
  );
  assert.notEqual(
    lk.outbound[0].authPassword,
    stack.twilio!.authToken,
    "never the Twilio auth token",
  );

  const [row] = await sql`select * from public.phone_number where e164 = ${e164}`;
  assert.equal(row.trunk_status, "ready");
  assert.equal(row.label, "Front desk");
  // The carrier trunk it dials through (its calls-per-second budget) is the Twilio trunk.
  assert.equal(row.carrier_trunk, trunk.domainName);
  assert.equal(n.carrierTrunk, trunk.domainName);
});

Deno.test("the same assignment three times in a row and five times at once leaves one of each", async () => {
  const { user, assistantId, e164 } = await setup("idem");
  for (let i = 0; i < 3; i++) {
    const res = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  const results = await Promise.all(
    Array.from({ length: 5 }, () => invoke(user, "map-number", { phoneNumber: e164, assistantId })),
  );
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
  // Let the trigger's own poke finish too.
  await outboxDrained(e164);
  const lk = await inLiveKit(e164);
  assert.equal(lk.inbound.length, 1);
  assert.equal(lk.outbound.length, 1);
  assert.equal(lk.rules.length, 1);
  const ids = new Set(results.map((r) => r.body.phoneNumber.outboundTrunkId));
  assert.equal(ids.size, 1, "every answer names the same outbound trunk");
});

Deno.test("re-assigning moves the trunks and un-assigning releases them", async () => {
  const { user, assistantId, e164 } = await setup("move");
  const other = await createAssistant(user, "Sales", "sales-agent");
  const first = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(first.status, 200);

  const refused = await invoke(user, "map-number", { phoneNumber: e164, assistantId: other });
  assert.equal(refused.status, 409, "moving an assigned number needs force");
  assert.equal(refused.body.error.code, "conflict");

  const moved = await invoke(user, "map-number", {
    phoneNumber: e164,
    assistantId: other,
    force: true,
  });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  assert.equal(moved.body.phoneNumber.assistantId, other);
  const lk = await inLiveKit(e164);
  assert.equal(lk.inbound.length, 1);
  assert.equal(lk.outbound.length, 1);
  assert.equal(lk.rules.length, 1);
  assert.notEqual(
    lk.inbound[0].sipTrunkId,
    first.body.phoneNumber.inboundTrunkId,
    "the old inbound trunk is gone",
  );
  assert.equal(JSON.parse(lk.outbound[0].metadata).assistantId, other);
  assert.equal(lk.rules[0].roomConfig.agents[0].agentName, "sales-agent");

  const released = await invoke(user, "map-number", { phoneNumber: e164, assistantId: null });
  assert.equal(released.status, 200, JSON.stringify(released.body));
  assert.equal(released.body.phoneNumber.trunkStatus, "released");
  assert.equal(released.body.phoneNumber.outboundTrunkId, null);
  assert.equal(released.body.phoneNumber.carrierTrunk, null);
  const [releasedRow] =
    await sql`select carrier_trunk from public.phone_number where e164 = ${e164}`;
  assert.equal(releasedRow.carrier_trunk, null, "a released number dials through nothing");
  const after = await inLiveKit(e164);
  assert.deepEqual([after.inbound.length, after.outbound.length, after.rules.length], [0, 0, 0]);
});

Deno.test("deleting an assistant releases its numbers", async () => {
  const { user, assistantId, e164 } = await setup("delete");
  assert.equal((await invoke(user, "map-number", { phoneNumber: e164, assistantId })).status, 200);
  await sql`delete from public.assistant where id = ${assistantId}`;
  const row = await eventually(async () => {
    const [r] = await sql`select * from public.phone_number where e164 = ${e164}`;
    return r.trunk_status === "released" ? r : null;
  }, "the number to be released");
  assert.equal(row.assistant_id, null);
  const lk = await inLiveKit(e164);
  assert.deepEqual([lk.inbound.length, lk.outbound.length, lk.rules.length], [0, 0, 0]);
});

Deno.test("with LiveKit failing the number shows an error, and the sweep finishes it once LiveKit recovers", async () => {
  const { user, assistantId, e164 } = await setup("faults");
  await configureLiveKit({ failureRate: 1 });
  let res;
  try {
    res = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
    // The trigger's own attempt fails too and leaves the job waiting for its backoff.
    await eventually(async () => {
      const [j] = await sql`select status, attempts, last_error from internal.provisioning_job
        where e164 = ${e164} and status <> 'done'`;
      return j && j.status === "pending" && j.attempts >= 1 && j.last_error;
    }, "the job to fail and wait for a retry");
  } finally {
    await configureLiveKit({ failureRate: 0 });
  }
  assert.equal(res.status, 502);
  assert.equal(res.body.error.code, "upstream_error");
  assert.equal(res.body.error.details.upstream, "livekit");
  assert.equal(res.body.error.details.phoneNumber.trunkStatus, "error");
  assert.match(res.body.error.details.phoneNumber.trunkError, /LiveKit/);
  const [failed] =
    await sql`select trunk_status, trunk_error from public.phone_number where e164 = ${e164}`;
  assert.equal(failed.trunk_status, "error");

  // The job waits for its backoff; make it due now instead of sleeping, then sweep.
  await sql`update internal.provisioning_job set run_after = now() where e164 = ${e164} and status <> 'done'`;
  await sql`select internal.sweep_provisioning()`;
  const row = await eventually(async () => {
    const [r] = await sql`select * from public.phone_number where e164 = ${e164}`;
    return r.trunk_status === "ready" ? r : null;
  }, "the sweep to finish provisioning");
  assert.equal(row.trunk_error, null);
  const lk = await inLiveKit(e164);
  assert.deepEqual([lk.inbound.length, lk.outbound.length, lk.rules.length], [1, 1, 1]);
});

Deno.test("an assignment made by a plain SQL update ends ready through the trigger and pg_net", async () => {
  const { user, assistantId, e164 } = await setup("sql");
  await sql`insert into public.phone_number (owner_id, e164) values (${user.id}, ${e164})`;
  await sql`update public.phone_number set assistant_id = ${assistantId} where e164 = ${e164}`;
  const [pending] = await sql`select trunk_status from public.phone_number where e164 = ${e164}`;
  assert.ok(["pending", "ready"].includes(pending.trunk_status));
  const row = await eventually(async () => {
    const [r] = await sql`select * from public.phone_number where e164 = ${e164}`;
    return r.trunk_status === "ready" ? r : null;
  }, "the trigger's provisioning");
  assert.match(row.outbound_trunk_id, /^ST_/);
  const [resp] =
    await sql`select count(*)::int as n from net._http_response where status_code = 200`;
  assert.ok(resp.n > 0, "pg_net delivered the poke");
});

Deno.test("another user's assistant is forbidden, their number not found, and nothing changes", async () => {
  const owner = await setup("owner");
  const stranger = await createUser("stranger");
  assert.equal(
    (await invoke(owner.user, "map-number", {
      phoneNumber: owner.e164,
      assistantId: owner.assistantId,
    })).status,
    200,
  );
  const before = await livekitState();

  const strangersAssistant = await createAssistant(stranger, "Mine", "mine-agent");
  const steal = await invoke(stranger, "map-number", {
    phoneNumber: owner.e164,
    assistantId: strangersAssistant,
  });
  assert.equal(steal.status, 409, "a number registered to another account cannot be taken");
  const useTheirs = await invoke(stranger, "map-number", {
    phoneNumber: await freeNumber(),
    assistantId: owner.assistantId,
  });
  assert.equal(useTheirs.status, 403);
  const [row] = await sql`select id from public.phone_number where e164 = ${owner.e164}`;
  const trunks = await invoke(stranger, "create-trunks", { phoneNumberId: row.id });
  assert.equal(trunks.status, 404);
  const list = await call("list-trunks", {
    token: stranger.token,
    method: "GET",
    query: `?assistantId=${owner.assistantId}`,
  });
  assert.equal(list.status, 403);

  const after = await livekitState();
  assert.equal(after.inboundTrunks.length, before.inboundTrunks.length);
  assert.equal(after.outboundTrunks.length, before.outboundTrunks.length);
  const [still] =
    await sql`select owner_id, assistant_id from public.phone_number where e164 = ${owner.e164}`;
  assert.equal(still.owner_id, owner.user.id);
  assert.equal(still.assistant_id, owner.assistantId);
});

Deno.test("a number that is not in the Twilio account is not found", async () => {
  const { user, assistantId } = await setup("absent");
  const res = await invoke(user, "map-number", { phoneNumber: "+14155559999", assistantId });
  assert.equal(res.status, 404);
  assert.match(res.body.error.message, /Twilio account/);
});

Deno.test("a number row the Twilio account does not have gets nothing at LiveKit and is not retried", async () => {
  const { user, assistantId } = await setup("not-in-account");
  const e164 = "+14155559998";
  const before = await livekitState();
  const [row] = await sql`insert into public.phone_number (owner_id, e164, assistant_id)
    values (${user.id}, ${e164}, ${assistantId}) returning id`;
  const job = await eventually(async () => {
    const [j] = await sql`select status, last_error from internal.provisioning_job
      where e164 = ${e164} order by id desc limit 1`;
    return j?.status === "failed" ? j : null;
  }, "the job to give up");
  assert.match(job.last_error, /not a number of the Twilio account/);
  const [after] =
    await sql`select trunk_status, trunk_error, inbound_trunk_id from public.phone_number where id = ${row.id}`;
  assert.equal(after.trunk_status, "error");
  assert.match(after.trunk_error, /not a number of the Twilio account.*assign it again/);
  assert.equal(after.inbound_trunk_id, null);
  const now = await livekitState();
  const mentions = (s: Json) =>
    [...s.inboundTrunks, ...s.outboundTrunks, ...s.dispatchRules].filter((t: Json) =>
      JSON.stringify(t).includes(e164)
    ).length;
  assert.equal(mentions(before), 0);
  assert.equal(mentions(now), 0, "no trunk or dispatch rule was made for it");
  // The sweep leaves it alone until its owner changes it.
  await sql`select internal.sweep_provisioning()`;
  const [{ open }] = await sql`select count(*)::int as open from internal.provisioning_job
    where e164 = ${e164} and status in ('pending', 'running')`;
  assert.equal(open, 0);
  await sql`delete from public.phone_number where id = ${row.id}`;
});

Deno.test("list-trunks shows the caller's trunks, flags drift and never a credential", async () => {
  const { user, assistantId, e164 } = await setup("list");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  const res = await call("list-trunks", {
    token: user.token,
    method: "GET",
    query: `?assistantId=${assistantId}&direction=outbound`,
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.trunks.length, 1);
  const t = res.body.trunks[0];
  assert.equal(t.direction, "outbound");
  assert.equal(t.trunkId, mapped.body.phoneNumber.outboundTrunkId);
  assert.equal(t.inLiveKit, true);
  assert.match(t.carrierTrunk, /\.pstn\.twilio\.com$/);
  const both = await call("list-trunks", { token: user.token, body: { assistantId } });
  assert.equal(both.body.trunks.length, 2);
  assert.ok(both.body.trunks.find((x: Json) => x.direction === "inbound").dispatchRuleId);

  const lk = await inLiveKit(e164);
  const text = JSON.stringify([res.body, both.body, mapped.body]);
  assert.ok(!text.includes(lk.outbound[0].authPassword), "no password in any response");
  assert.ok(!/password/i.test(text));

  // Drift: the trunk disappears from LiveKit behind our back.
  const { SipClient } = await import("livekit-server-sdk");
  await new SipClient(stack.livekit.url, stack.livekit.apiKey, stack.livekit.apiSecret)
    .deleteSipTrunk(t.trunkId);
  const drift = await call("list-trunks", {
    token: user.token,
    method: "GET",
    query: `?assistantId=${assistantId}&direction=outbound`,
  });
  assert.equal(drift.body.trunks[0].inLiveKit, false);
});

Deno.test("a number assigned before provisioning existed is picked up by the sweep", async () => {
  const { user, assistantId, e164 } = await setup("legacy");
  // As if the row predated the trigger: no job, no trunks.
  await sql.begin(async (tx) => {
    await tx`alter table public.phone_number disable trigger enqueue_provisioning`;
    await tx`insert into public.phone_number (owner_id, e164, assistant_id) values (${user.id}, ${e164}, ${assistantId})`;
    await tx`alter table public.phone_number enable trigger enqueue_provisioning`;
  });
  const [{ n }] =
    await sql`select count(*)::int as n from internal.provisioning_job where e164 = ${e164}`;
  assert.equal(n, 0);
  await sql`select internal.sweep_provisioning()`;
  const row = await eventually(async () => {
    const [r] = await sql`select * from public.phone_number where e164 = ${e164}`;
    return r.trunk_status === "ready" ? r : null;
  }, "the sweep to provision the old number");
  assert.match(row.outbound_trunk_id, /^ST_/);
});

Deno.test("a SIP credential deleted on Twilio is restored with the same pair, so every number keeps dialing", async () => {
  const [ea, eb] = await freeNumbers(2);
  const a = await setup("cred-a", ea);
  const b = await setup("cred-b", eb);
  assert.equal(
    (await invoke(a.user, "map-number", { phoneNumber: a.e164, assistantId: a.assistantId }))
      .status,
    200,
  );
  const mappedB = await invoke(b.user, "map-number", {
    phoneNumber: b.e164,
    assistantId: b.assistantId,
  });
  assert.equal(mappedB.status, 200);
  await outboxDrained(a.e164);
  await outboxDrained(b.e164);

  // Someone deletes the credential in the Twilio console.
  const { createTwilioClient } = await import("../../supabase/functions/_shared/twilio_client.ts");
  const tw = createTwilioClient({
    accountSid: stack.twilio!.accountSid,
    authToken: stack.twilio!.authToken,
    baseUrl: stack.twilio!.url,
  });
  for (const list of await tw.sip.credentialLists.list()) {
    for (const c of await tw.sip.credentialLists(list.sid).credentials.list()) {
      await tw.sip.credentialLists(list.sid).credentials(c.sid).remove();
    }
  }
  const [{ id }] = await sql`select id from public.phone_number where e164 = ${a.e164}`;
  assert.equal((await invoke(a.user, "create-trunks", { phoneNumberId: id })).status, 200);

  // B's outbound trunk was not touched, and the carrier accepts it again.
  const dial = await call("create-participant", {
    token: b.user.token,
    body: { assistantId: b.assistantId, phoneNumber: "+12125550901", waitUntilAnswered: true },
  });
  assert.equal(dial.status, 200, JSON.stringify(dial.body));
  assert.equal(dial.body.call.outboundTrunkId, mappedB.body.phoneNumber.outboundTrunkId);
});

Deno.test("in Twilio mode without LIVEKIT_SIP_HOST, assigning a number ends error naming the variable, never ready", async () => {
  const { user, assistantId, e164 } = await setup("no-sip-host");
  await holdJob(e164);
  try {
    const res = await invokeWithEnv({ LIVEKIT_SIP_HOST: undefined }, mapNumberHere, user.token, {
      phoneNumber: e164,
      assistantId,
    });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "not_configured");
    assert.deepEqual(res.body.error.details.variables, ["LIVEKIT_SIP_HOST"]);
    assert.match(res.body.error.message, /set LIVEKIT_SIP_HOST/);
    const [row] = await sql`select * from public.phone_number where e164 = ${e164}`;
    assert.equal(row.trunk_status, "error");
    assert.match(row.trunk_error, /LIVEKIT_SIP_HOST/);
    assert.equal(row.outbound_trunk_id, null);

    // Nothing was half-made: the number is not on the Twilio trunk and LiveKit holds nothing.
    const tw = await twilioState();
    assert.equal(tw.numbers.find((x: Json) => x.phoneNumber === e164).trunkSid, null);
    const lk = await inLiveKit(e164);
    assert.deepEqual([lk.inbound.length, lk.outbound.length, lk.rules.length], [0, 0, 0]);

    // create-trunks (what the trigger and the sweep call) refuses the same way.
    const again = await invokeWithEnv(
      { LIVEKIT_SIP_HOST: undefined },
      createTrunksHere,
      stack.serviceKey,
      {
        phoneNumberId: row.id,
      },
    );
    assert.equal(again.status, 503);
    assert.deepEqual(again.body.error.details.variables, ["LIVEKIT_SIP_HOST"]);
    const [still] = await sql`select trunk_status from public.phone_number where id = ${row.id}`;
    assert.equal(still.trunk_status, "error");

    // Configured, the same number provisions.
    const fixed = await invoke(user, "create-trunks", { phoneNumberId: row.id });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    assert.equal(fixed.body.trunks[0].trunkStatus, "ready");
  } finally {
    await letGo(e164);
  }
});

Deno.test("a LIVEKIT_SIP_HOST that is not a host[:port] is refused with a message naming it", async () => {
  const { user, assistantId, e164 } = await setup("bad-sip-host");
  await holdJob(e164);
  try {
    const [row] = await sql`insert into public.phone_number (owner_id, e164, assistant_id)
      values (${user.id}, ${e164}, ${assistantId}) returning id`;
    const res = await invokeWithEnv(
      { LIVEKIT_SIP_HOST: "sip:agent@sip.livekit.local;transport=tcp" },
      createTrunksHere,
      stack.serviceKey,
      { phoneNumberId: row.id },
    );
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "not_configured");
    assert.match(res.body.error.message, /LIVEKIT_SIP_HOST is invalid: .*host\[:port\]/);
    const [after] =
      await sql`select trunk_status, trunk_error from public.phone_number where id = ${row.id}`;
    assert.equal(after.trunk_status, "error");
    assert.match(after.trunk_error, /LIVEKIT_SIP_HOST is invalid/);
  } finally {
    await letGo(e164);
  }
});

Deno.test("a LIVEKIT_SIP_HOST pasted as a SIP URI gives the trunk a clean origination URL", async () => {
  const { user, assistantId, e164 } = await setup("pasted-sip-host");
  await holdJob(e164);
  const before = await accountTrunk();
  try {
    const [row] = await sql`insert into public.phone_number (owner_id, e164, assistant_id)
      values (${user.id}, ${e164}, ${assistantId}) returning id`;
    const res = await invokeWithEnv(
      { LIVEKIT_SIP_HOST: " SIP:Pasted.sip.livekit.local;transport=udp" },
      createTrunksHere,
      stack.serviceKey,
      { phoneNumberId: row.id },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.trunks[0].trunkStatus, "ready");
    const pasted = await accountTrunk();
    assert.deepEqual(pasted.enabled, ["sip:pasted.sip.livekit.local;transport=tcp"]);
    assert.equal(pasted.urls.length, before.urls.length, "the URL is corrected in place");
  } finally {
    // The stack's own configuration puts it back.
    const [row] = await sql`select id from public.phone_number where e164 = ${e164}`;
    if (row) await invoke(user, "create-trunks", { phoneNumberId: row.id });
    await letGo(e164);
  }
  assert.deepEqual((await accountTrunk()).enabled, before.enabled);
});

Deno.test("a Twilio trunk whose origination URL was deleted gets it back on provisioning", async () => {
  const { user, assistantId, e164 } = await setup("origination-gone");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  await outboxDrained(e164);
  const before = await accountTrunk();
  assert.equal(before.enabled.length, 1);
  for (const u of before.urls) {
    await twilio().trunking.v1.trunks(before.trunk.sid).originationUrls(u.sid).remove();
  }
  assert.deepEqual((await accountTrunk()).urls, []);

  const res = await invoke(user, "create-trunks", { phoneNumberId: mapped.body.phoneNumber.id });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const after = await accountTrunk();
  assert.deepEqual(after.enabled, before.enabled, "inbound calls reach LiveKit again");
  assert.equal(after.urls.length, 1);
});

Deno.test("a Twilio origination URL that points elsewhere is corrected and strays are disabled", async () => {
  const { user, assistantId, e164 } = await setup("origination-elsewhere");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  await outboxDrained(e164);
  const before = await accountTrunk();
  const [ours] = before.urls;
  const trunk = twilio().trunking.v1.trunks(before.trunk.sid);
  // An old project's host, and a second URL taking every call at a better priority.
  await trunk.originationUrls(ours.sid).update({
    sipUrl: "sip:old-project.sip.livekit.cloud;transport=tcp",
  });
  const stray = await trunk.originationUrls.create({
    sipUrl: "sip:pbx.example.com;transport=udp",
    priority: 1,
    weight: 10,
    enabled: true,
    friendlyName: "someone's PBX",
  });
  try {
    const res = await invoke(user, "create-trunks", { phoneNumberId: mapped.body.phoneNumber.id });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const after = await accountTrunk();
    assert.deepEqual(after.enabled, before.enabled, "only LiveKit receives inbound calls");
    assert.equal(after.urls.find((u) => u.sid === ours.sid)?.sipUrl, before.enabled[0]);
    const kept = after.urls.find((u) => u.sid === stray.sid);
    assert.ok(kept, "the stray URL is kept, not deleted");
    assert.equal(kept.enabled, false);
  } finally {
    await trunk.originationUrls(stray.sid).remove();
  }
});

Deno.test("a partial number is never taken for the Twilio number it matches", async () => {
  const partial = "+1415666100";
  const listed = await twilio().incomingPhoneNumbers.list({ phoneNumber: partial });
  assert.ok(listed.length > 1, "Twilio lists partial matches for the filter");
  assert.ok(listed.every((n) => n.phoneNumber !== partial));

  const { user, assistantId } = await setup("partial");
  // Too short to be a number at all: refused before Twilio is asked.
  const res = await invoke(user, "map-number", { phoneNumber: partial, assistantId });
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.ok(res.body.error.details.fields.phoneNumber);

  // A full number finds exactly itself, whatever else the filter lists.
  const deps = functionDeps()();
  const wanted = listed[listed.length - 1];
  const found = await findTwilioNumber(deps, { e164: wanted.phoneNumber });
  assert.equal(found?.sid, wanted.sid);
  assert.equal(await findTwilioNumber(deps, { e164: partial }), null);
});

Deno.test("an outbound trunk changed behind our back is updated in place, keeping its id", async () => {
  const { user, assistantId, e164 } = await setup("stale-outbound");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  await outboxDrained(e164);
  const id = mapped.body.phoneNumber.outboundTrunkId;
  const phoneNumberId = mapped.body.phoneNumber.id;
  const original = await outboundTrunk(id);
  assert.equal(original.transport, SIPTransport.SIP_TRANSPORT_TCP);

  // A re-check of an untouched trunk sends nothing.
  const calm = Date.now();
  assert.equal((await invoke(user, "create-trunks", { phoneNumberId })).status, 200);
  assert.deepEqual(await trunkWritesSince(calm), [], "no update when nothing differs");

  // Another transport and a destination country, set in the LiveKit console, say.
  await lkSip().updateSipOutboundTrunkFields(
    id,
    new SIPOutboundTrunkUpdate({
      transport: SIPTransport.SIP_TRANSPORT_UDP,
      destinationCountry: "GB",
    }),
  );
  const mark = Date.now();
  const res = await invoke(user, "create-trunks", { phoneNumberId });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.trunks[0].outboundTrunkId, id, "the same trunk id");
  const fixed = await outboundTrunk(id);
  assert.equal(fixed.transport, SIPTransport.SIP_TRANSPORT_TCP);
  assert.equal(fixed.destinationCountry, "");
  assert.equal(fixed.authPassword, original.authPassword);
  const sent = await trunkWritesSince(mark);
  assert.deepEqual(sent.map((r: Json) => r.method), ["UpdateSIPOutboundTrunk"]);
  assert.equal(sent[0].body.sipTrunkId, id);
  const lk = await inLiveKit(e164);
  assert.equal(lk.outbound.length, 1);
});

Deno.test("an outbound trunk whose password was changed gets ours back, keeping its id", async () => {
  const { user, assistantId, e164 } = await setup("stale-password");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  await outboxDrained(e164);
  const id = mapped.body.phoneNumber.outboundTrunkId;
  await lkSip().updateSipOutboundTrunkFields(id, { authPassword: "Someone-Elses-Password-9" });

  const res = await invoke(user, "create-trunks", { phoneNumberId: mapped.body.phoneNumber.id });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.trunks[0].outboundTrunkId, id);
  const [{ password }] = await sql`select internal.secret(${
    "sip_password:" + stack.twilio!.accountSid
  }) as password`;
  assert.equal((await outboundTrunk(id)).authPassword, password, "the password Twilio accepts");
});

Deno.test("a change of carrier moves the outbound trunk and the number's carrier trunk in place", async () => {
  const { user, assistantId, e164 } = await setup("carrier-change");
  const mapped = await invoke(user, "map-number", { phoneNumber: e164, assistantId });
  assert.equal(mapped.status, 200);
  await outboxDrained(e164);
  const id = mapped.body.phoneNumber.outboundTrunkId;
  const phoneNumberId = mapped.body.phoneNumber.id;
  const domain = (await outboundTrunk(id)).address;
  assert.match(domain, /\.pstn\.twilio\.com$/);

  // The same deployment switched to another SIP provider (static mode), which the operator told
  // which numbers are the provider's.
  const staticMode = {
    SIP_PROVIDER_ADDRESS: "sip.provider.example",
    SIP_USERNAME: "trunkuser",
    SIP_PASSWORD: "Trunk-Password-1",
    SIP_PROVIDER_NUMBERS: `+14155550100, ${e164}`,
  };
  const moved = await invokeWithEnv(staticMode, createTrunksHere, stack.serviceKey, {
    phoneNumberId,
  });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  assert.equal(moved.body.trunks[0].outboundTrunkId, id);
  assert.equal(moved.body.trunks[0].carrierTrunk, "sip.provider.example");
  const onStatic = await outboundTrunk(id);
  assert.equal(onStatic.address, "sip.provider.example");
  assert.equal(onStatic.authUsername, "trunkuser");
  assert.equal(onStatic.authPassword, "Trunk-Password-1");
  const [row] =
    await sql`select carrier_trunk from public.phone_number where id = ${phoneNumberId}`;
  assert.equal(row.carrier_trunk, "sip.provider.example");

  // And back to Twilio.
  const back = await invoke(user, "create-trunks", { phoneNumberId });
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.equal(back.body.trunks[0].outboundTrunkId, id);
  assert.equal((await outboundTrunk(id)).address, domain);
  const [again] =
    await sql`select carrier_trunk from public.phone_number where id = ${phoneNumberId}`;
  assert.equal(again.carrier_trunk, domain);
});

Deno.test("in static SIP mode only the numbers the operator declared become caller IDs", async () => {
  const staticMode = {
    SIP_PROVIDER_ADDRESS: "sip.provider.example",
    SIP_USERNAME: "trunkuser",
    SIP_PASSWORD: "Trunk-Password-1",
    SIP_PROVIDER_NUMBERS: "+1 (305) 555-4100",
    TWILIO_ACCOUNT_SID: undefined,
    TWILIO_AUTH_TOKEN: undefined,
  };
  const { user, assistantId } = await setup("static-callerid");
  const before = await livekitState();
  // A bank's number, typed by a tenant: refused, nothing provisioned.
  const spoof = await invokeWithEnv(staticMode, mapNumberHere, user.token, {
    phoneNumber: "+12125551000",
    assistantId,
  });
  assert.equal(spoof.status, 404, JSON.stringify(spoof.body));
  assert.match(spoof.body.error.message, /SIP_PROVIDER_NUMBERS/);
  const [{ n }] =
    await sql`select count(*)::int as n from public.phone_number where e164 = '+12125551000'`;
  assert.equal(n, 0);
  // A row put there another way is refused by provisioning, with nothing made at LiveKit.
  await holdJob("+12125551001");
  const [row] = await sql`insert into public.phone_number (owner_id, e164, assistant_id)
    values (${user.id}, '+12125551001', ${assistantId}) returning id`;
  try {
    const res = await invokeWithEnv(staticMode, createTrunksHere, stack.serviceKey, {
      phoneNumberId: row.id,
    });
    assert.equal(res.status, 404, JSON.stringify(res.body));
    const [after] =
      await sql`select trunk_status, trunk_error from public.phone_number where id = ${row.id}`;
    assert.equal(after.trunk_status, "error");
    assert.match(after.trunk_error, /SIP_PROVIDER_NUMBERS/);
    const now = await livekitState();
    assert.equal(now.outboundTrunks.length, before.outboundTrunks.length);
    assert.equal(now.inboundTrunks.length, before.inboundTrunks.length);
  } finally {
    await letGo("+12125551001");
    await sql`delete from public.phone_number where id = ${row.id}`;
  }
  // The declared number is taken.
  const declared = await invokeWithEnv(staticMode, mapNumberHere, user.token, {
    phoneNumber: "+13055554100",
    assistantId,
  });
  assert.equal(declared.status, 200, JSON.stringify(declared.body));
  assert.equal(declared.body.phoneNumber.trunkStatus, "ready");
  await sql`update public.phone_number set assistant_id = null where e164 = '+13055554100'`;
});
