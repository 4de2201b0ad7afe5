import assert from "node:assert/strict";
import {
  call,
  configureLiveKit,
  createAssistant,
  createUser,
  eventually,
  freeNumber,
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

async function setup(label: string) {
  const user = await createUser(label);
  const assistantId = await createAssistant(user, `${label} assistant`, `${label}-agent`);
  const e164 = await freeNumber();
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

Deno.test("another user's assistant or number is not found and nothing changes", async () => {
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
  assert.equal(useTheirs.status, 404);
  const [row] = await sql`select id from public.phone_number where e164 = ${owner.e164}`;
  const trunks = await invoke(stranger, "create-trunks", { phoneNumberId: row.id });
  assert.equal(trunks.status, 404);
  const list = await call("list-trunks", {
    token: stranger.token,
    method: "GET",
    query: `?assistantId=${owner.assistantId}`,
  });
  assert.equal(list.status, 404);

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
  const a = await setup("cred-a");
  const b = await setup("cred-b");
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
