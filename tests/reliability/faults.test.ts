// Fault injection: LiveKit answering 503 or dropping connections, Twilio failing, pg_net
// losing requests and PostgreSQL restarting mid-campaign. After the faults stop and the
// sweeps run, nothing is lost, nothing is duplicated, and every state is one a user can see.
import assert from "node:assert/strict";
import {
  configureLiveKit,
  configureTwilio,
  createAssistant,
  createUser,
  DEFAULT_CARRIER_CPS,
  eventually,
  freeNumber,
  freeNumbers,
  livekitRequests,
  livekitState,
  outboxDrained,
  setCarrierCps,
  setNumberHealth,
  sql,
  stack,
  type TestUser,
} from "../helpers/stack.ts";
import {
  addSummary,
  asUser,
  callRecorded,
  isErrorBody,
  type Json,
  sleep,
  stackControl,
  tick,
} from "./helpers.ts";

const FINAL_CALL = new Set(["completed", "busy", "no_answer", "failed", "skipped"]);
const FINAL_OUTBOUND = new Set(["completed", "busy", "no_answer", "failed"]);

async function twilioRequests(): Promise<Json[]> {
  return (await (await fetch(`${stack.twilio!.url}/emulator/requests`)).json()).requests;
}

/** Faults the emulators injected since `sinceMs` (LiveKit) / the Twilio log's `from` index. */
async function injectedFaults(sinceMs: number, twilioFrom: number) {
  const lk = (await livekitRequests()).filter((r: Json) => r.ms >= sinceMs);
  const tw = (await twilioRequests()).slice(twilioFrom);
  return {
    livekit503: lk.filter((r: Json) => r.code === "unavailable" && r.status === 503).length,
    livekitDropped: lk.filter((r: Json) => r.code === "dropped").length,
    twilio429: tw.filter((r: Json) => r.status === 429).length,
  };
}

/** Waits until pg_net's queue is empty and every queued request has an answer or was dropped. */
async function netIdle() {
  await eventually(
    async () => {
      const [r] = await sql`select count(*)::int as n from net.http_request_queue`;
      return r.n === 0;
    },
    "pg_net's queue to drain",
    20_000,
  );
}

/**
 * Sends harmless pg_net requests until one is delivered: the worker drops in queue order, so
 * from then on every drop asked for has happened (and none is left over for later tests).
 * Returns how many of the product's own requests were dropped.
 */
async function useUpDrops(asked: number): Promise<number> {
  for (let i = 0; i <= asked + 2; i++) {
    const [{ id }] = await sql`select net.http_post(
      url := ${`${stack.supabaseUrl}/auth/v1/.well-known/jwks.json`}) as id`;
    await netIdle();
    for (let j = 0; j < 40; j++) {
      const [r] = await sql`select count(*)::int as n from net._http_response where id = ${id}`;
      if (r.n > 0) return asked - i;
      await sleep(25);
    }
  }
  throw new Error(`the ${asked} pg_net drops asked for were never used up`);
}

/** What LiveKit holds for a number: managed inbound trunks, outbound trunks, dispatch rules. */
function heldFor(state: Json, e164: string) {
  const inbound = state.inboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(e164));
  const outbound = state.outboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(e164));
  const ids = new Set(inbound.map((t: Json) => t.sipTrunkId));
  const rules = state.dispatchRules.filter((r: Json) =>
    (r.trunkIds ?? []).some((id: string) => ids.has(id))
  );
  return { inbound, outbound, rules };
}

/**
 * Makes every open provisioning job due now (time passes instead of sleeping) and sweeps, until
 * every number is settled; fails when nothing about them changed for 30 s (a slow machine
 * takes more sweeps, a stuck one makes no progress).
 */
async function sweepUntilSettled(e164s: string[]) {
  let seen = "";
  let movedAt = Date.now();
  for (let round = 0; round < 1000 && Date.now() - movedAt < 30_000; round++) {
    await netIdle();
    const open = await sql`select e164, attempts, generation from internal.provisioning_job
      where status in ('pending', 'running') and e164 in ${sql(e164s)} order by e164`;
    const rows = await sql`select e164, trunk_status, assistant_id, trunk_error
      from public.phone_number where e164 in ${sql(e164s)} order by e164`;
    const settled = rows.every((r) =>
      r.assistant_id ? r.trunk_status === "ready" : r.trunk_status === "released"
    );
    if (open.length === 0 && settled) return round;
    const now = JSON.stringify([open, rows]);
    if (now !== seen) {
      seen = now;
      movedAt = Date.now();
    }
    // A job whose worker died (its request failed mid-way) stays locked for two minutes.
    await sql`update internal.provisioning_job set run_after = now(),
      locked_until = case when locked_until > now() then now() - interval '1 second' else locked_until end
      where status in ('pending', 'running') and e164 in ${sql(e164s)}`;
    await sql`select internal.sweep_provisioning()`;
    await sleep(100);
  }
  // Say where each number stands, so a failure can be read from the log alone.
  const rows =
    await sql`select e164, assistant_id, trunk_status, trunk_error from public.phone_number
    where e164 in ${sql(e164s)}`;
  const jobs = await sql`select e164, status, attempts, generation, locked_until, last_error
    from internal.provisioning_job where status in ('pending', 'running') and e164 in ${
    sql(e164s)
  }`;
  const leases = await sql`select key, until from internal.lease`;
  console.log(JSON.stringify({ rows, jobs, leases }));
  throw new Error("provisioning made no progress for 30 s");
}

/** Assigns through map-number, retrying while the assignment itself was not recorded. */
async function assign(
  user: TestUser,
  e164: string,
  assistantId: string | null,
  force = false,
): Promise<{ tries: number; statuses: number[] }> {
  const statuses: number[] = [];
  for (let i = 0; i < 15; i++) {
    const res = await callRecorded("map-number", {
      token: user.token,
      body: { phoneNumber: e164, assistantId, ...(force ? { force } : {}) },
    });
    statuses.push(res.status);
    assert.ok(
      [200, 502].includes(res.status),
      `map-number under faults answered ${res.status}: ${JSON.stringify(res.body)}`,
    );
    const [row] =
      await sql`select assistant_id from public.phone_number where e164 = ${e164} and owner_id = ${user.id}`;
    if (row && row.assistant_id === assistantId) return { tries: i + 1, statuses };
    // Not recorded (Twilio's number lookup failed before the write): the user tries again.
    assert.equal(res.status, 502);
    assert.equal(res.body.error.code, "upstream_error");
  }
  throw new Error(`the assignment of ${e164} was never recorded`);
}

Deno.test("numbers assigned while LiveKit, Twilio and pg_net fail end ready with exactly one trunk set each", async () => {
  const user = await createUser("faults-assign");
  const front = await createAssistant(user, "Front desk", "front-agent");
  const sales = await createAssistant(user, "Sales", "sales-agent");
  const numbers = await freeNumbers(6);

  const since = Date.now();
  const twilioFrom = (await twilioRequests()).length;
  const drops = 4;
  const statuses: number[] = [];
  try {
    await configureLiveKit({ failureRate: 0.3, timeoutRate: 0.1, hangMs: 200 });
    // Twilio fails often enough that some of these few requests fail in every run (at 0.15 a
    // run was seen where none did, which proved nothing).
    await configureTwilio({ failureRate: 0.3 });
    await stackControl("net/drop", { count: drops });
    // Four through map-number, one by a client's plain update under RLS, one moved
    // between assistants, one assigned and then released.
    for (const e164 of numbers.slice(0, 4)) {
      statuses.push(...(await assign(user, e164, front)).statuses);
    }
    // (The number enters unassigned, as map-number records it; users cannot insert numbers.)
    await sql`insert into public.phone_number (owner_id, e164) values (${user.id}, ${numbers[4]})`;
    await asUser(
      user,
      (tx) => tx`update public.phone_number set assistant_id = ${front} where e164 = ${numbers[4]}`,
    );
    statuses.push(...(await assign(user, numbers[3], sales, true)).statuses);
    statuses.push(...(await assign(user, numbers[5], sales)).statuses);
    statuses.push(...(await assign(user, numbers[5], null)).statuses);
  } finally {
    await configureLiveKit({ failureRate: 0, timeoutRate: 0, hangMs: 15000 });
    await configureTwilio({ failureRate: 0 });
  }
  const pokesDropped = await useUpDrops(drops);
  const faults = await injectedFaults(since, twilioFrom);
  assert.ok(
    faults.livekit503 + faults.livekitDropped + faults.twilio429 > 0,
    "faults were injected",
  );
  // Before any repair the user already sees where each number stands, through RLS.
  const seen = await asUser(
    user,
    (tx) => tx`select e164, assistant_id, trunk_status, trunk_error from public.phone_number`,
  );
  assert.equal(seen.length, 6, "the user sees every number they assigned");
  for (const n of seen) {
    assert.ok(
      ["pending", "ready", "error", "released"].includes(n.trunk_status),
      `${n.e164} is ${n.trunk_status}`,
    );
    if (n.trunk_status === "error") assert.ok(n.trunk_error, `${n.e164} says why it failed`);
  }

  const rounds = await sweepUntilSettled(numbers);
  for (const e164 of numbers) await outboxDrained(e164);

  const rows = await sql`select * from public.phone_number where e164 in ${
    sql(numbers)
  } order by e164`;
  assert.equal(rows.length, 6, "every number is recorded");
  const want = new Map<string, string | null>([
    [numbers[0], front],
    [numbers[1], front],
    [numbers[2], front],
    [numbers[3], sales],
    [numbers[4], front],
    [numbers[5], null],
  ]);
  const state = await livekitState();
  const problems: string[] = [];
  for (const r of rows) {
    const held = heldFor(state, r.e164);
    const counts =
      `${held.inbound.length} inbound, ${held.outbound.length} outbound, ${held.rules.length} rules`;
    if (r.assistant_id !== want.get(r.e164)) problems.push(`${r.e164} has the wrong assistant`);
    if (r.assistant_id) {
      const ok = r.trunk_status === "ready" && r.trunk_error === null &&
        held.inbound.length === 1 && held.outbound.length === 1 && held.rules.length === 1 &&
        held.inbound[0].sipTrunkId === r.inbound_trunk_id &&
        held.outbound[0].sipTrunkId === r.outbound_trunk_id &&
        held.rules[0].sipDispatchRuleId === r.dispatch_rule_id &&
        JSON.parse(held.outbound[0].metadata).assistantId === r.assistant_id;
      if (!ok) problems.push(`${r.e164}: ${r.trunk_status} ${r.trunk_error ?? ""} with ${counts}`);
    } else if (r.trunk_status !== "released" || held.inbound.length + held.outbound.length > 0) {
      problems.push(`${r.e164} (released): ${r.trunk_status} with ${counts}`);
    }
  }
  // Each ready number really calls out: the carrier accepts its outbound trunk's credentials.
  for (const r of rows.filter((x) => x.assistant_id && x.outbound_trunk_id)) {
    const res = await callRecorded("create-participant", {
      token: stack.serviceKey,
      body: {
        outboundTrunkId: r.outbound_trunk_id,
        phoneNumber: "+16175559901",
        waitUntilAnswered: true,
      },
    });
    if (res.status !== 200) problems.push(`${r.e164} cannot call out: ${JSON.stringify(res.body)}`);
  }
  // What the user sees through the API says the same.
  const listed = await callRecorded("list-trunks", { token: user.token, method: "GET" });
  assert.equal(listed.status, 200);
  if (
    listed.body.trunks.length !== 10 ||
    !listed.body.trunks.every((t: Json) => t.inLiveKit && t.status === "ready")
  ) problems.push(`list-trunks shows ${JSON.stringify(listed.body.trunks)}`);

  const injected = faults.livekit503 + faults.livekitDropped + faults.twilio429 + pokesDropped;
  console.log(
    `faults: ${JSON.stringify({ ...faults, pokesDropped })}; map-number answers ${
      statuses.join(",")
    }; ${rounds} sweep rounds`,
  );
  addSummary({
    "faults injected": injected,
    "faults survived": problems.length === 0 ? injected : 0,
    "assignments lost": problems.length,
  });
  assert.deepEqual(problems, [], "every assignment ends ready with one trunk set, or released");
});

// Campaign under faults ----------------------------------------------------------------------

/** The callee of contact `i` of campaign `c`; its last three digits choose the emulated outcome. */
function callee(c: number, i: number): string {
  const suffix = i % 10 === 3
    ? "486" // busy
    : i % 10 === 7
    ? "408" // rings, never answers
    : i % 20 === 9
    ? "503" // carrier failure
    : i % 25 === 11
    ? "404" // number not found
    : `2${String(i % 100).padStart(2, "0")}`; // answers, talks 20 s (20 ms here)
  return `+1617${5 + c}${String(i).padStart(3, "0")}${suffix}`;
}

/** A ready number and a campaign of `contacts` callees on it (draft until started). */
async function campaignOn(user: TestUser, assistantId: string, c: number, contacts: number) {
  const e164 = await freeNumber();
  const mapped = await callRecorded("map-number", {
    token: user.token,
    body: { phoneNumber: e164, assistantId },
  });
  assert.equal(mapped.status, 200, JSON.stringify(mapped.body));
  await outboxDrained(e164);
  const numberId = mapped.body.phoneNumber.id;
  await setCarrierCps(DEFAULT_CARRIER_CPS);
  const [campaign] = await asUser(user, (tx) =>
    tx`insert into public.campaigns ${
      tx({
        name: `faults ${c}`,
        assistant_id: assistantId,
        phone_number_id: numberId,
        window_start: "00:00",
        window_end: "23:59:59",
        weekdays: [1, 2, 3, 4, 5, 6, 7],
        max_concurrent: 40,
        max_attempts: 3,
        retry_busy_sec: 0,
        retry_no_answer_sec: 0,
        retry_failed_sec: 0,
        retry_backoff: 1,
        ringing_timeout_sec: 5,
        max_call_duration_sec: 30,
        // The breaker would pause the campaign under injected failures; here every call must end.
        failure_min_calls: 10000,
      })
    } returning id`);
  const callees = Array.from({ length: contacts }, (_, i) => callee(c, i));
  const [{ r }] = await asUser(
    user,
    (tx) =>
      tx`select public.add_campaign_calls(${campaign.id}, ${
        tx.json(callees.map((phoneNumber) => ({ phoneNumber })))
      }) as r`,
  );
  assert.equal(r.added, contacts, JSON.stringify(r));
  return { id: campaign.id as string, numberId: numberId as string, e164, callees };
}

/**
 * Waits (bounded) until no call of these callees is live in the emulator and its webhook
 * delivery has stopped moving for a while (a failed delivery is retried after 0.2 s and 1 s).
 * Returning early only means more calls are written off as lost below, never a wrong verdict.
 */
async function emulatorQuiet(callees: Set<string>) {
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 400 && stable < 30; i++) {
    const s = await livekitState();
    const live = s.calls.filter((c: Json) =>
      callees.has(c.toNumber) && ["dialing", "ringing", "active"].includes(c.outcome)
    ).length;
    const delivered = s.webhooksSent + s.webhooksFailed;
    stable = live === 0 && delivered === last ? stable + 1 : 0;
    last = delivered;
    await sleep(50);
  }
}

Deno.test("a 300-call campaign through LiveKit failures, lost pokes and a PostgreSQL restart loses no call and dials no attempt twice", async () => {
  const user = await createUser("faults-campaign");
  const assistantId = await createAssistant(user, "Outreach", "outreach-agent");
  const campaigns = [
    await campaignOn(user, assistantId, 0, 150),
    await campaignOn(user, assistantId, 1, 150),
  ];
  const ids = campaigns.map((c) => c.id);
  const allCallees = campaigns.flatMap((c) => c.callees);
  const calleeSet = new Set(allCallees);
  // Some callees ask not to be called after the import: skipped at dial time.
  const dnc = allCallees.filter((_, i) => i % 30 === 13);
  for (const e164 of dnc) {
    await sql`insert into public.do_not_call (owner_id, e164) values (${user.id}, ${e164})`;
  }

  // The callees are a mix of every outcome, most of them unanswered on purpose: number health
  // (which would rest the number for its answer rate) is not what this test is about.
  const health = await setNumberHealth({ min_sample: 100_000, min_answered: 100_000 });
  const since = Date.now();
  const twilioFrom = (await twilioRequests()).length;
  const drops = 3;
  const background: Promise<{ status: number; body: Json }>[] = [];
  let restarts = 0;
  try {
    await configureLiveKit({ failureRate: 0.1, timeoutRate: 0.05, hangMs: 200 });
    await stackControl("net/drop", { count: drops });
    // Started by the user; the status trigger pokes campaign-tick through pg_net.
    for (const id of ids) {
      await asUser(
        user,
        (tx) => tx`update public.campaigns set status = 'running' where id = ${id}`,
      );
    }
    for (const id of ids) background.push(tick({ campaignId: id, budgetSec: 15 }));
    await eventually(
      async () => {
        const [r] = await sql`select count(*)::int as n from public.outbound_calls
        where campaign_id in ${sql(ids)}`;
        return r.n >= 80;
      },
      "the campaign to be under way",
      20_000,
    );
    await stackControl("postgres/restart");
    restarts++;
    await eventually(
      async () => {
        const [r] = await sql`select count(*)::int as n from public.outbound_calls
        where campaign_id in ${sql(ids)}`;
        return r.n >= 160;
      },
      "dialing to resume after the restart",
      30_000,
    );
  } finally {
    await configureLiveKit({ failureRate: 0, timeoutRate: 0, hangMs: 15000 });
  }
  try {
    await recoverAndCheck();
  } finally {
    await setNumberHealth(health);
  }

  async function recoverAndCheck() {
    const tickAnswers = await Promise.allSettled(background);
    for (const a of tickAnswers) {
      // A tick cut off by the restart fails; its answer is still a JSON error, never a crash.
      assert.equal(a.status, "fulfilled");
      if (a.status === "fulfilled") {
        assert.ok(
          a.value.status === 200 || isErrorBody(a.value.body),
          JSON.stringify(a.value.body),
        );
      }
    }
    const pokesDropped = await useUpDrops(drops);
    const faults = await injectedFaults(since, twilioFrom);

    // Recovery: time passes for retries and leases instead of the test sleeping through them.
    let writtenOff = 0;
    let rounds = 0;
    for (; rounds < 15; rounds++) {
      await emulatorQuiet(calleeSet);
      await netIdle();
      const [open] = await sql`select count(*)::int as n from public.campaign_calls
      where campaign_id in ${sql(ids)} and status in ('queued', 'dialing', 'in_progress')`;
      if (open.n === 0) break;
      // Calls whose webhooks were lost (LiveKit gave up delivering them during the restart)
      // stay open until their lease runs out: let it run out.
      const stale =
        await sql`update public.outbound_calls set created_at = created_at - interval '1 day'
      where campaign_id in ${
          sql(ids)
        } and status in ('dialing', 'ringing', 'in_progress') returning id`;
      writtenOff += stale.length;
      await sql`update public.campaign_calls set lease_until = now() - interval '1 second'
      where campaign_id in ${sql(ids)} and status in ('dialing', 'in_progress')`;
      await sql`update public.campaign_calls set next_attempt_at = now()
      where campaign_id in ${sql(ids)} and status = 'queued'`;
      for (const id of ids) {
        const t = await tick({ campaignId: id, budgetSec: 20 });
        assert.equal(t.status, 200, JSON.stringify(t.body));
      }
    }

    // Measured first (so the summary says what happened), asserted below.
    const ccs = await sql`select * from public.campaign_calls where campaign_id in ${sql(ids)}`;
    const outbound = await sql`select * from public.outbound_calls where campaign_id in ${
      sql(ids)
    }`;
    const dials = (await livekitState()).calls.filter((c: Json) => calleeSet.has(c.toNumber));
    const perRoom = new Map<string, number>();
    for (const d of dials) perRoom.set(d.room, (perRoom.get(d.room) ?? 0) + 1);
    // An INVITE the carrier refused for its CPS limit never rang: its attempt is requeued uncounted.
    const perCallee = new Map<string, number>();
    for (const d of dials.filter((d: Json) => d.outcome !== "rate_limited")) {
      perCallee.set(d.toNumber, (perCallee.get(d.toNumber) ?? 0) + 1);
    }
    const rooms = new Set(outbound.map((o) => o.room_name));
    // Lost: a campaign call that never reached a final state, or a dial nobody recorded.
    const lost = ccs.filter((c) => !FINAL_CALL.has(c.status));
    const unrecorded = [...perRoom.keys()].filter((r) => !rooms.has(r));
    // Dialed twice: a second dial in one attempt's room, or more dials of a callee than attempts.
    const dialedTwice = [...perRoom.values()].reduce((n, v) => n + v - 1, 0) +
      ccs.reduce((n, c) => n + Math.max(0, (perCallee.get(c.e164) ?? 0) - c.attempts), 0);
    const problems: string[] = [];

    console.log(
      `faults: ${
        JSON.stringify({ ...faults, pokesDropped, restarts })
      }; ${dials.length} dials for ${outbound.length} attempts; ${
        (await livekitState()).webhooksFailed
      } webhooks LiveKit gave up on; ${writtenOff} calls written off as lost; ${rounds} recovery rounds; background ticks ${
        tickAnswers.map((a) => a.status === "fulfilled" ? a.value.status : a.status)
      }`,
    );
    const injected = faults.livekit503 + faults.livekitDropped + faults.twilio429 + pokesDropped +
      restarts;
    const survived = lost.length + unrecorded.length + dialedTwice === 0;
    addSummary({
      "faults injected": injected,
      "faults survived": survived ? injected : 0,
      "calls lost": lost.length + unrecorded.length,
      "calls dialed twice": dialedTwice,
    });

    // No call lost: every campaign call ended in a final state the user can see.
    const states =
      await sql`select name, status, status_reason, throttle_reason from public.campaigns
    where id in ${sql(ids)}`;
    if (lost.length > 0) console.log(`campaigns: ${JSON.stringify(states)}`);
    assert.equal(ccs.length, 300);
    assert.deepEqual(
      lost.map((c) => `${c.e164} ${c.status} attempts=${c.attempts}`),
      [],
      "every campaign call ends in a final state",
    );
    assert.deepEqual(unrecorded, [], "every dial has its call record");
    assert.equal(
      dialedTwice,
      0,
      "no attempt was dialed twice, no callee more often than attempted",
    );
    for (const e164 of dnc) {
      assert.equal(ccs.find((c) => c.e164 === e164)!.status, "skipped", `${e164} is skipped`);
      assert.equal(perCallee.get(e164) ?? 0, 0, `${e164} was never dialed`);
    }

    // Attempts: one call record per attempt, each final; LiveKit dialed each attempt at most once.
    const byCampaignCall = new Map<string, Json[]>();
    for (const o of outbound) {
      byCampaignCall.set(o.campaign_call_id, [
        ...(byCampaignCall.get(o.campaign_call_id) ?? []),
        o,
      ]);
    }
    for (const c of ccs) {
      const rows = byCampaignCall.get(c.id) ?? [];
      const attempts = rows.filter((o) => o.outcome !== "cps_limited").map((o) => o.attempt)
        .sort((a, b) => a - b);
      const want = Array.from({ length: c.attempts }, (_, i) => i + 1);
      if (JSON.stringify(attempts) !== JSON.stringify(want)) {
        problems.push(`${c.e164}: call records for attempts ${attempts}, ${c.attempts} recorded`);
      }
      for (const o of rows) {
        if (!FINAL_OUTBOUND.has(o.status)) problems.push(`${o.room_name} is ${o.status}`);
      }
    }
    for (const o of outbound) {
      const n = perRoom.get(o.room_name) ?? 0;
      // LiveKit acknowledged the dial: exactly one call; LiveKit failed it: none.
      if (o.sip_call_id && n !== 1) problems.push(`${o.room_name} acknowledged, dialed ${n} times`);
      if (o.outcome === "livekit_error" && n !== 0) {
        problems.push(`${o.room_name} failed in LiveKit yet dialed ${n} times`);
      }
    }
    assert.deepEqual(problems, []);

    // The user sees the same through RLS: completed campaigns whose counts add up.
    const progress = await asUser(
      user,
      (tx) => tx`select * from public.campaign_progress where campaign_id in ${tx(ids)}`,
    );
    assert.equal(progress.length, 2);
    for (const p of progress) {
      assert.equal(p.status, "completed", `${p.name}: ${p.status} ${p.status_reason ?? ""}`);
      assert.equal(
        p.completed + p.busy + p.no_answer + p.failed + p.skipped,
        p.total,
        "every call is counted in a final column",
      );
    }
    const visible = await asUser(
      user,
      (tx) =>
        tx`select count(*)::int as n from public.outbound_calls where campaign_id in ${tx(ids)}`,
    );
    assert.equal(visible[0].n, outbound.length, "the user sees every call record");
    const numbers = await sql`select trunk_status from public.phone_number
    where id in ${sql(campaigns.map((c) => c.numberId))}`;
    assert.ok(numbers.every((n) => n.trunk_status === "ready"));
  }
});
