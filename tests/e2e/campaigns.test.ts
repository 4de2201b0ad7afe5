import assert from "node:assert/strict";
import {
  asUser,
  call,
  configureLiveKit,
  configureTwilio,
  createAssistant,
  createUser,
  DEFAULT_CARRIER_CPS,
  eventually,
  livekitState,
  readyAssistant,
  setCarrierCps,
  sql,
  stack,
  type TestUser,
  twilioState,
} from "../helpers/stack.ts";
import {
  answering,
  importAs,
  progress,
  settled,
  startQuietly,
  tick,
} from "../helpers/campaigns.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

interface Fixture {
  user: TestUser;
  assistantId: string;
  numberId: string;
  campaignId: string;
}

/** A ready number and a draft campaign with its contacts imported (`startQuietly` starts it). */
async function campaign(
  label: string,
  contacts: Json[],
  settings: Record<string, unknown> = {},
  cps = DEFAULT_CARRIER_CPS,
): Promise<Fixture> {
  const { user, assistantId, numberId } = await readyAssistant(label);
  await setCarrierCps(cps);
  const row = {
    owner_id: user.id,
    name: `${label} campaign`,
    assistant_id: assistantId,
    phone_number_id: numberId,
    status: "draft",
    window_start: "00:00",
    window_end: "23:59:59",
    weekdays: [1, 2, 3, 4, 5, 6, 7],
    ringing_timeout_sec: 20,
    ...settings,
  };
  const [c] = await sql`insert into public.campaigns ${sql(row)} returning id`;
  await importAs(user, c.id, contacts);
  return { user, assistantId, numberId, campaignId: c.id };
}

/** Emulator call records for these callees. */
async function dialed(numbers: string[]) {
  const set = new Set(numbers);
  return (await livekitState()).calls.filter((c: Json) => set.has(c.toNumber));
}

Deno.test("8 ticks at once over 2,000 queued calls dial each exactly once within concurrency and pacing", async () => {
  const numbers = answering("646555", 2000);
  const f = await campaign("bulk", numbers.map((phoneNumber) => ({ phoneNumber })), {
    max_concurrent: 40,
  }, 100);
  const [{ n }] =
    await sql`select count(*)::int as n from public.campaign_calls where campaign_id = ${f.campaignId} and status = 'queued'`;
  assert.equal(n, 2000);
  await startQuietly(f.campaignId);
  const ticks = await Promise.all(
    Array.from({ length: 8 }, () => tick({ campaignId: f.campaignId, budgetSec: 90 })),
  );
  for (const t of ticks) assert.equal(t.status, 200, JSON.stringify(t.body));
  const p = await settled(f.campaignId);
  assert.equal(p.completed, 2000);

  // An INVITE the carrier refuses for its CPS limit never reaches the callee: it is
  // requeued without counting. Every callee rang exactly once.
  const all = await dialed(numbers);
  const calls = all.filter((c: Json) => c.outcome !== "rate_limited");
  console.log(`${all.length - calls.length} INVITEs refused by the carrier's CPS check`);
  const perCallee = new Map<string, number>();
  for (const c of calls) perCallee.set(c.toNumber, (perCallee.get(c.toNumber) ?? 0) + 1);
  assert.equal(perCallee.size, 2000, "every callee was dialed");
  assert.ok([...perCallee.values()].every((v) => v === 1), "no callee rang twice");

  // Concurrency: the most calls live at any moment, from the emulator's own times.
  const edges = calls.flatMap((c: Json) => [[c.startedAt, 1], [c.endedAt ?? Infinity, -1]]) as [
    number,
    number,
  ][];
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let live = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, live += d);
  assert.ok(peak <= 40, `peak live calls ${peak} exceeds the campaign's limit of 40`);

  // Pacing: calls the emulator received in each wall-clock second.
  const perSecond = new Map<number, number>();
  for (const c of calls) {
    perSecond.set(
      Math.floor(c.startedAt / 1000),
      (perSecond.get(Math.floor(c.startedAt / 1000)) ?? 0) + 1,
    );
  }
  const busiest = Math.max(...perSecond.values());
  assert.ok(busiest <= 100, `${busiest} calls in one second exceeds the budget of 100`);
});

Deno.test("campaigns and direct calls on one carrier trunk share its 2 cps in every sliding second", async () => {
  const a = await campaign(
    "share-a",
    answering("718555", 10).map((phoneNumber) => ({ phoneNumber })),
    {
      max_concurrent: 10,
    },
    2,
  );
  const b = await campaign(
    "share-b",
    answering("917555", 10).map((phoneNumber) => ({ phoneNumber })),
    {
      max_concurrent: 10,
    },
    2,
  );
  const direct = answering("332555", 4);
  const started = Date.now();
  try {
    await startQuietly(a.campaignId);
    await startQuietly(b.campaignId);
    const [ta, tb, ...calls] = await Promise.all([
      tick({ campaignId: a.campaignId, budgetSec: 60 }),
      tick({ campaignId: b.campaignId, budgetSec: 60 }),
      ...direct.map(async (phoneNumber, i) => {
        await new Promise((r) => setTimeout(r, 1000 + i * 1500));
        return await call("create-participant", {
          token: a.user.token,
          body: { assistantId: a.assistantId, phoneNumber },
        });
      }),
    ]);
    assert.equal(ta.status, 200);
    assert.equal(tb.status, 200);
    for (const c of calls) assert.equal(c.status, 200, JSON.stringify(c.body));
    await settled(a.campaignId);
    await settled(b.campaignId);
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
  // What the carrier saw: every INVITE accepted, at most 2 in any sliding second.
  const numbers = new Set([...answering("718555", 10), ...answering("917555", 10), ...direct]);
  const invites = (await twilioState()).terminations.filter((t: Json) =>
    numbers.has(t.toNumber) && Date.parse(t.time) >= started
  );
  assert.ok(
    invites.every((t: Json) => t.outcome === "accepted"),
    `the carrier rejected none: ${JSON.stringify(invites.map((t: Json) => [t.time, t.outcome]))}`,
  );
  assert.equal(invites.length, 24, "every callee dialed once");
  const times = invites.map((t: Json) => Date.parse(t.time)).sort((x: number, y: number) => x - y);
  for (let i = 2; i < times.length; i++) {
    assert.ok(times[i] - times[i - 2] >= 1000, `3 INVITEs within one second at ${i}`);
  }
  const rate = (times.length - 1) / ((times.at(-1)! - times[0]) / 1000);
  // The rate is a measurement (bench rows 2a/2b hold it to >= 0.95 of the budget); a test on a
  // shared machine asserts only what does not depend on its speed.
  console.log(`carrier trunk rate ${rate.toFixed(2)} cps of a 2 cps budget`);
});

Deno.test("callees are dialed only inside their own calling window", async () => {
  // New York and Honolulu are 5 hours apart: a two-hour window around New York's local
  // time never contains Honolulu's.
  const nyNow = new Date(new Date().toLocaleString("en-US", { timeZone: "America/New_York" }));
  const minutes = nyNow.getHours() * 60 + nyNow.getMinutes();
  const hhmm = (m: number) =>
    `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  const start = hhmm(Math.max(0, minutes - 60));
  const end = minutes + 60 >= 24 * 60 ? "23:59:59" : hhmm(minutes + 60);
  const ny = "+12125550123";
  const hnl = "+18085550123";
  const f = await campaign("zones", [{ phoneNumber: ny }, { phoneNumber: hnl }], {
    window_start: start,
    window_end: end,
  });
  const zones =
    await sql`select e164, timezone, next_attempt_at from public.campaign_calls where campaign_id = ${f.campaignId} order by e164`;
  assert.equal(zones.find((z) => z.e164 === ny)!.timezone, "America/New_York");
  assert.equal(zones.find((z) => z.e164 === hnl)!.timezone, "Pacific/Honolulu");
  assert.ok(
    zones.find((z) => z.e164 === hnl)!.next_attempt_at > new Date(),
    "Honolulu waits for its window",
  );

  await startQuietly(f.campaignId);
  const first = await tick({ campaignId: f.campaignId });
  assert.equal(first.body.dialed, 1);
  assert.deepEqual((await dialed([ny, hnl])).map((c: Json) => c.toNumber), [ny]);

  // Honolulu's window opens (here: the window is widened, which reschedules the queue).
  await sql`update public.campaigns set window_start = '00:00', window_end = '23:59:59' where id = ${f.campaignId}`;
  const second = await tick({ campaignId: f.campaignId });
  assert.equal(second.status, 200);
  // (A tick poked by the first call's end may be the one that dials it.)
  const calls = await eventually(async () => {
    const c = await dialed([ny, hnl]);
    return c.length === 2 ? c : null;
  }, "Honolulu to be dialed");
  assert.deepEqual(calls.map((c: Json) => c.toNumber).sort(), [ny, hnl].sort());
});

Deno.test("busy and no-answer callees are retried after their delays up to max attempts", async () => {
  const busy = "+13125550486";
  const silent = "+13125551408";
  const f = await campaign("retry", [{ phoneNumber: busy }, { phoneNumber: silent }], {
    max_attempts: 3,
    retry_busy_sec: 600,
    retry_no_answer_sec: 900,
    retry_backoff: 2,
    ringing_timeout_sec: 5,
  });
  await startQuietly(f.campaignId);
  const queuedAgain = (attempts: number) =>
    eventually(async () => {
      const rows =
        await sql`select e164, status, attempts, next_attempt_at, last_outcome from public.campaign_calls
        where campaign_id = ${f.campaignId} order by e164`;
      return rows.every((r) => r.status === "queued" && r.attempts === attempts) ? rows : null;
    }, `both callees queued after attempt ${attempts}`);

  for (const attempt of [1, 2]) {
    await tick({ campaignId: f.campaignId });
    const rows = await queuedAgain(attempt);
    assert.equal((await dialed([busy, silent])).length, 2 * attempt);
    const b = rows.find((r) => r.e164 === busy)!;
    const s = rows.find((r) => r.e164 === silent)!;
    assert.equal(b.last_outcome, "busy");
    assert.equal(s.last_outcome, "no_answer");
    const waitB = (b.next_attempt_at.getTime() - Date.now()) / 1000;
    const waitS = (s.next_attempt_at.getTime() - Date.now()) / 1000;
    const factor = 2 ** (attempt - 1);
    assert.ok(
      Math.abs(waitB - 600 * factor) < 60,
      `busy retry in ${waitB} s, expected ${600 * factor}`,
    );
    assert.ok(
      Math.abs(waitS - 900 * factor) < 60,
      `no-answer retry in ${waitS} s, expected ${900 * factor}`,
    );
    // Time passes: the retries fall due.
    await sql`update public.campaign_calls set next_attempt_at = now() - interval '1 second' where campaign_id = ${f.campaignId}`;
  }
  await tick({ campaignId: f.campaignId });
  const p = await settled(f.campaignId);
  assert.equal(p.busy, 1);
  assert.equal(p.no_answer, 1);
  assert.equal(p.attempts, 6);
  assert.equal((await dialed([busy, silent])).length, 6);
});

Deno.test("invalid and blocked numbers are not retried; a refused trunk credential pauses the campaign", async () => {
  const invalid = "+13125552404";
  const blocked = "+13125552403";
  const f = await campaign("final", [{ phoneNumber: invalid }, { phoneNumber: blocked }], {
    max_attempts: 3,
    retry_failed_sec: 0,
  });
  await startQuietly(f.campaignId);
  await tick({ campaignId: f.campaignId });
  const p = await settled(f.campaignId);
  assert.equal(p.failed, 2);
  assert.equal(p.attempts, 2, "one attempt each");
  const rows = await sql`select e164, last_outcome, last_sip_status from public.campaign_calls
    where campaign_id = ${f.campaignId} order by e164`;
  assert.deepEqual(rows.map((r) => [r.e164, r.last_outcome, r.last_sip_status]), [
    [blocked, "blocked", 403],
    [invalid, "not_found", 404],
  ]);

  const auth = await campaign("auth", [{ phoneNumber: "+13125553401" }], { max_concurrent: 1 });
  // Imported later, so dialed after the first callee.
  await importAs(
    auth.user,
    auth.campaignId,
    answering("312556", 5).map((phoneNumber) => ({ phoneNumber })),
  );
  await startQuietly(auth.campaignId);
  await tick({ campaignId: auth.campaignId, maxCalls: 1 });
  const paused = await settled(auth.campaignId, "paused");
  assert.match(paused.status_reason, /credentials/);
  assert.match(paused.status_reason, /SIP 401/);
  assert.equal(paused.queued, 5, "no further calls were placed");
});

Deno.test("carrier CPS rejections requeue the call without counting the attempt", async () => {
  const numbers = answering("504555", 6);
  const f = await campaign("cpsreq", numbers.map((phoneNumber) => ({ phoneNumber })), {
    max_concurrent: 6,
    max_attempts: 1,
  }, 20);
  // The carrier allows less than the product paces to.
  await configureTwilio({ cps: 1 });
  try {
    await startQuietly(f.campaignId);
    const p = await settled(f.campaignId, "completed", { tick: { budgetSec: 5 } });
    assert.equal(p.completed, 6, "every callee answered in the end, with max_attempts 1");
    assert.equal(p.attempts, 6, "rejected attempts did not count");
    const [{ limited }] = await sql`select count(*)::int as limited from public.outbound_calls
      where campaign_id = ${f.campaignId} and outcome = 'cps_limited'`;
    assert.ok(limited >= 1, "the carrier did reject some");
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
});

Deno.test("with 30 % of webhooks dropped every call still ends and no answered callee is dialed twice", async () => {
  const numbers = answering("206555", 30);
  const f = await campaign("drops", numbers.map((phoneNumber) => ({ phoneNumber })), {
    max_concurrent: 10,
    max_attempts: 3,
    retry_failed_sec: 0,
  });
  await configureLiveKit({ webhookDropRate: 0.3 });
  try {
    await startQuietly(f.campaignId);
    await settled(f.campaignId, "completed", { tick: { budgetSec: 5 } });
  } finally {
    await configureLiveKit({ webhookDropRate: 0 });
  }
  const dropped = (await livekitState()).webhooksDropped as Record<string, number>;
  assert.ok(Object.values(dropped).some((n) => n > 0), "webhooks were dropped");
  const calls = await sql`select to_number, status, outcome, answered_at, duration_sec
    from public.outbound_calls where campaign_id = ${f.campaignId}`;
  assert.ok(calls.every((c) => ["completed", "busy", "no_answer", "failed"].includes(c.status)));
  const answered = calls.filter((c) => c.outcome === "answered");
  assert.equal(answered.length, 30, "every callee answered");
  assert.ok(answered.every((c) => c.answered_at && c.duration_sec !== null));
  const perCallee = new Map<string, number>();
  for (const c of await dialed(numbers)) {
    perCallee.set(c.toNumber, (perCallee.get(c.toNumber) ?? 0) + 1);
  }
  assert.ok([...perCallee.values()].every((v) => v === 1), "no callee was dialed twice");
});

Deno.test("a number added to the do-not-call list after import is skipped at dial time", async () => {
  const keep = "+14155550777";
  const stop = "+14155550778";
  const f = await campaign("dnc", [{ phoneNumber: keep }, { phoneNumber: stop }]);
  await sql`insert into public.do_not_call (owner_id, e164) values (${f.user.id}, ${stop})`;
  await startQuietly(f.campaignId);
  const t = await tick({ campaignId: f.campaignId });
  assert.equal(t.body.dialed, 1);
  assert.equal(t.body.skipped, 1);
  const [row] =
    await sql`select status, last_outcome from public.campaign_calls where campaign_id = ${f.campaignId} and e164 = ${stop}`;
  assert.equal(row.status, "skipped");
  assert.equal(row.last_outcome, "do_not_call");
  assert.deepEqual((await dialed([keep, stop])).map((c: Json) => c.toNumber), [keep]);
});

Deno.test("pause and cancel stop new dials at once and resume continues where it left off", async () => {
  // Calls that talk 99 s (99 ms here), so none ends and pokes a tick before the pause.
  const numbers = Array.from({ length: 6 }, (_, i) => `+1718555${i}999`);
  const f = await campaign("pause", numbers.map((phoneNumber) => ({ phoneNumber })), {
    max_concurrent: 10,
  });
  await startQuietly(f.campaignId);
  const first = await tick({ campaignId: f.campaignId, maxCalls: 2 });
  assert.equal(first.body.dialed, 2);
  await sql`update public.campaigns set status = 'paused' where id = ${f.campaignId}`;
  const paused = await tick({ campaignId: f.campaignId });
  assert.equal(paused.body.dialed, 0);
  assert.equal((await dialed(numbers)).length, 2);

  await sql`update public.campaigns set status = 'running' where id = ${f.campaignId}`;
  await settled(f.campaignId);
  const calls = await dialed(numbers);
  assert.equal(calls.length, 6, "each callee dialed once in all");
  assert.equal(new Set(calls.map((c: Json) => c.toNumber)).size, 6);

  const others = Array.from({ length: 4 }, (_, i) => `+1917555${i}999`);
  const g = await campaign("cancel", others.map((phoneNumber) => ({ phoneNumber })));
  await startQuietly(g.campaignId);
  assert.equal((await tick({ campaignId: g.campaignId, maxCalls: 1 })).body.dialed, 1);
  await sql`update public.campaigns set status = 'cancelled' where id = ${g.campaignId}`;
  assert.equal((await tick({ campaignId: g.campaignId })).body.dialed, 0);
  const p = await eventually(async () => {
    const [x] =
      await sql`select * from public.campaign_progress where campaign_id = ${g.campaignId}`;
    return x.dialing + x.in_progress === 0 ? x : null;
  }, "the live call to end");
  assert.equal(p.status, "cancelled");
  assert.equal(p.cancelled, 3);
  assert.equal((await dialed(others)).length, 1);
});

Deno.test("a tick that dies after claiming loses no call and dials none twice", async () => {
  const numbers = answering("347555", 5);
  const f = await campaign("crash", numbers.map((phoneNumber) => ({ phoneNumber })));
  await startQuietly(f.campaignId);
  // A tick claims five calls and dies before dialing any of them.
  const claimed =
    await sql`select * from internal.claim_calls(${f.campaignId}, 5, ${crypto.randomUUID()})`;
  assert.equal(claimed.length, 5);
  assert.equal(
    (await tick({ campaignId: f.campaignId })).body.dialed,
    0,
    "claimed calls are not dialed by another tick",
  );
  // Its lease runs out.
  await sql`update public.campaign_calls set lease_until = now() - interval '1 second' where campaign_id = ${f.campaignId}`;
  await tick({ campaignId: f.campaignId });
  const p = await settled(f.campaignId);
  assert.equal(p.completed, 5);
  assert.equal(p.attempts, 5, "the dead tick's claim did not count as an attempt");
  assert.equal((await dialed(numbers)).length, 5);
});

Deno.test("a tick that dies after dialing never dials that attempt again", async () => {
  const numbers = answering("929555", 3);
  const f = await campaign("dialed", numbers.map((phoneNumber) => ({ phoneNumber })));
  await startQuietly(f.campaignId);
  const claimed =
    await sql`select * from internal.claim_calls(${f.campaignId}, 3, ${crypto.randomUUID()})`;
  // The dead tick had dialed the first claim: its call record exists under the attempt's room.
  const c = claimed[0];
  const placed = await call("create-participant", {
    token: stack.serviceKey,
    body: {
      assistantId: f.assistantId,
      phoneNumber: c.e164,
      roomName: c.room_name,
      participantIdentity: c.participant_identity,
    },
  });
  assert.equal(placed.status, 200, JSON.stringify(placed.body));
  await sql`update public.outbound_calls set campaign_id = ${f.campaignId}, campaign_call_id = ${c.campaign_call_id}, attempt = ${c.attempt}
    where room_name = ${c.room_name}`;
  await sql`update public.campaign_calls set lease_until = now() - interval '1 second' where campaign_id = ${f.campaignId}`;
  await tick({ campaignId: f.campaignId });
  await settled(f.campaignId);
  const calls = await dialed(numbers);
  assert.equal(calls.length, 3, "three callees, three dials");
  assert.equal(
    calls.filter((x: Json) => x.toNumber === c.e164).length,
    1,
    "the dialed attempt was not dialed again",
  );
});

Deno.test("failures in a burst pause the campaign with a visible reason", async () => {
  const numbers = [
    "+15035550503",
    "+15035551503",
    "+15035552503",
    "+15035553503",
    "+15035554503",
    "+15035555503",
  ];
  const f = await campaign("breaker", numbers.map((phoneNumber) => ({ phoneNumber })), {
    failure_min_calls: 3,
    failure_threshold: 0.5,
    max_concurrent: 1,
  });
  await startQuietly(f.campaignId);
  const p = await settled(f.campaignId, "paused", { tick: { maxCalls: 1 } });
  assert.match(p.status_reason, /failure breaker/);
  const [{ failed }] = await sql`select count(*)::int as failed from public.outbound_calls
    where campaign_id = ${f.campaignId} and status = 'failed'`;
  assert.ok(failed >= 3, `paused after ${failed} failed calls`);
  assert.ok((await dialed(numbers)).length < 6, "paused before everyone was dialed");
});

Deno.test("a campaign whose assistant has no ready number pauses with the reason", async () => {
  const user = await createUser("nonumber");
  const assistantId = await createAssistant(user);
  const [c] =
    await sql`insert into public.campaigns (owner_id, name, assistant_id, status, window_start, window_end, weekdays)
    values (${user.id}, 'orphan', ${assistantId}, 'draft', '00:00', '23:59:59', '{1,2,3,4,5,6,7}') returning id`;
  await importAs(user, c.id, [{ phoneNumber: "+14155550100" }]);
  await startQuietly(c.id);
  await tick({ campaignId: c.id });
  const [row] = await sql`select status, status_reason from public.campaigns where id = ${c.id}`;
  assert.equal(row.status, "paused");
  assert.match(row.status_reason, /no ready outbound trunk/);
});

Deno.test("contacts are normalised, de-duplicated and checked on import", async () => {
  const user = await createUser("import");
  const assistantId = await createAssistant(user);
  const [c] =
    await sql`insert into public.campaigns (owner_id, name, assistant_id) values (${user.id}, 'import', ${assistantId}) returning id`;
  await sql`insert into public.do_not_call (owner_id, e164) values (${user.id}, '+14155550199')`;
  const r = await importAs(user, c.id, [
    { phoneNumber: "(415) 555-0123", name: "national" },
    { phoneNumber: "+1 415 555 0123", name: "same number again" },
    { phoneNumber: "+14155550199" },
    { phoneNumber: "+44 20 7123 4567" },
    { phoneNumber: "not a number" },
    { phoneNumber: "+14155550124", timezone: "Mars/Olympus" },
    { phoneNumber: "+14155550125", timezone: "Europe/Paris" },
  ]);
  assert.equal(r.added, 2);
  assert.equal(r.duplicates, 1);
  assert.equal(r.skipped, 2, "do-not-call and a country outside the campaign's list");
  assert.equal(r.rejected.length, 2);
  const rows =
    await sql`select e164, timezone, status, last_outcome from public.campaign_calls where campaign_id = ${c.id} order by e164`;
  assert.equal(rows.find((x) => x.e164 === "+14155550123")!.timezone, "America/Los_Angeles");
  assert.equal(
    rows.find((x) => x.e164 === "+14155550125")!.timezone,
    "Europe/Paris",
    "an explicit zone wins",
  );
  assert.equal(rows.find((x) => x.e164 === "+14155550199")!.last_outcome, "do_not_call");

  const stranger = await createUser("import-stranger");
  await assert.rejects(
    () => importAs(stranger, c.id, [{ phoneNumber: "+14155550126" }]),
    /does not exist/,
  );
});

Deno.test("campaign progress is readable by its owner only", async () => {
  const f = await campaign("progress", [{ phoneNumber: "+14155550901" }]);
  const progress = (user: { id: string }) =>
    asUser(
      user,
      (tx) => tx`select * from public.campaign_progress where campaign_id = ${f.campaignId}`,
    );
  const mine = await progress(f.user);
  assert.equal(mine.length, 1);
  assert.equal(Number(mine[0].queued), 1);
  const stranger = await createUser("progress-stranger");
  const theirs = await progress(stranger);
  assert.equal(theirs.length, 0);
});

Deno.test("illegal status changes are refused", async () => {
  const f = await campaign("states", []);
  await sql`update public.campaigns set status = 'cancelled' where id = ${f.campaignId}`;
  await assert.rejects(
    () => sql`update public.campaigns set status = 'running' where id = ${f.campaignId}`,
    /cannot go from cancelled to running/,
  );
});

Deno.test("a running campaign with nothing left to dial completes at the next tick", async () => {
  // As if the last two calls ended at the same moment and each saw the other still live.
  const f = await campaign("leftover", [{ phoneNumber: "+14155550131" }]);
  await startQuietly(f.campaignId);
  await sql`update public.campaign_calls set status = 'completed', completed_at = now()
    where campaign_id = ${f.campaignId}`;
  const t = await tick({});
  assert.equal(t.status, 200);
  const [c] = await sql`select status from public.campaigns where id = ${f.campaignId}`;
  assert.equal(c.status, "completed");
});

Deno.test("a campaign past its end completes with the reason; waiting callees end as not called; campaign.completed once", async () => {
  const numbers = answering("680555", 3);
  const f = await campaign("ended", numbers.map((phoneNumber) => ({ phoneNumber })));
  // Its time is over: every time relative to the database's now(), never a calendar date.
  await sql`update public.campaigns set starts_at = now() - interval '2 hours',
    ends_at = now() - interval '1 minute' where id = ${f.campaignId}`;
  await startQuietly(f.campaignId);
  const t = await tick({ campaignId: f.campaignId });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  assert.equal(t.body.dialed, 0);
  assert.deepEqual(t.body.campaigns.map((c: Json) => c.status), ["completed"]);
  const [c] =
    await sql`select status, status_reason from public.campaigns where id = ${f.campaignId}`;
  assert.equal(c.status, "completed");
  assert.match(c.status_reason, /^ended at its end time \(ends_at .+\): 3 contacts still waiting/);
  const contacts = await sql`select status, last_outcome, last_error from public.campaign_calls
    where campaign_id = ${f.campaignId}`;
  assert.deepEqual(
    contacts.map((x) => [x.status, x.last_outcome, x.last_error]),
    numbers.map(() => ["skipped", "campaign_ended", "not called: the campaign ended"]),
  );
  const p = await progress(f.campaignId);
  assert.equal(p.skipped, 3);
  assert.equal(p.status_reason, c.status_reason, "campaign_progress shows why");
  assert.equal((await dialed(numbers)).length, 0, "nobody was called");
  await tick({ campaignId: f.campaignId });
  await tick({});
  const events = await sql`select data from internal.events
    where campaign_id = ${f.campaignId} and type = 'campaign.completed'`;
  assert.equal(events.length, 1, "campaign.completed is queued once");
  assert.equal(events[0].data.statusReason, c.status_reason);
  assert.equal(events[0].data.calls.skipped, 3);
});

Deno.test("a campaign before its start does not complete, even with no contacts; once started it does", async () => {
  const f = await campaign("later", []);
  await sql`update public.campaigns set starts_at = now() + interval '1 hour' where id = ${f.campaignId}`;
  await startQuietly(f.campaignId);
  const early = await tick({ campaignId: f.campaignId });
  assert.equal(early.status, 200, JSON.stringify(early.body));
  assert.deepEqual(early.body.campaigns.map((c: Json) => c.status), ["running"]);
  const [waiting] = await sql`select status from public.campaigns where id = ${f.campaignId}`;
  assert.equal(waiting.status, "running", "it waits for starts_at");
  // Its start time comes (moved into the past rather than waiting an hour).
  await sql`update public.campaigns set starts_at = now() - interval '1 second' where id = ${f.campaignId}`;
  const started = await tick({ campaignId: f.campaignId });
  assert.deepEqual(started.body.campaigns.map((c: Json) => c.status), ["completed"]);
  const [c] =
    await sql`select status, status_reason from public.campaigns where id = ${f.campaignId}`;
  assert.deepEqual({ ...c }, { status: "completed", status_reason: null });
});

Deno.test("a tenant with ten campaigns and one with one get the same share of a busy carrier trunk", async () => {
  // Tenant A: ten campaigns of one assistant; tenant B: one campaign. Both dial through the
  // account's one carrier trunk at 4 cps, with far more callees due than it can take.
  const many = await campaign("fair-many-0", [], { max_concurrent: 50 }, 4);
  const manyIds = [many.campaignId];
  for (let i = 1; i < 10; i++) {
    const [c] = await sql`insert into public.campaigns ${
      sql({
        owner_id: many.user.id,
        name: `fair-many-${i}`,
        assistant_id: many.assistantId,
        phone_number_id: many.numberId,
        status: "draft",
        window_start: "00:00",
        window_end: "23:59:59",
        weekdays: [1, 2, 3, 4, 5, 6, 7],
        max_concurrent: 50,
      })
    } returning id`;
    manyIds.push(c.id);
  }
  for (const [i, id] of manyIds.entries()) {
    await importAs(
      many.user,
      id,
      answering(`6465${i}${i}`, 20).map((phoneNumber) => ({ phoneNumber })),
    );
  }
  const one = await campaign(
    "fair-one",
    answering("347555", 200).map((phoneNumber) => ({ phoneNumber })),
    { max_concurrent: 50 },
    4,
  );
  try {
    for (const id of [...manyIds, one.campaignId]) await startQuietly(id);
    // Two ticks at once, 8 s each, as pg_cron's overlapping ticks would run.
    const ticks = await Promise.all([tick({ budgetSec: 8 }), tick({ budgetSec: 8 })]);
    for (const t of ticks) assert.equal(t.status, 200);
  } finally {
    await sql`update public.campaigns set status = 'cancelled'
      where id = any(${[...manyIds, one.campaignId]}) and status <> 'completed'`;
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
  const [{ a, b }] = await sql`select
      count(*) filter (where owner_id = ${many.user.id})::int as a,
      count(*) filter (where owner_id = ${one.user.id})::int as b
    from public.outbound_calls where campaign_id = any(${[...manyIds, one.campaignId]})`;
  console.log(`dials in 8 s at 4 cps: tenant with 10 campaigns ${a}, tenant with 1 campaign ${b}`);
  assert.ok(a + b >= 8, `the trunk was busy (${a + b} dials)`);
  // Shared by campaign, the single campaign would get about 1/11 of the trunk. The exact split
  // of one claim is checked in pgTAP (058_trunk_fairness); end to end, other work on a loaded
  // machine moves it, so this asserts only that neither account is starved (under a sixth).
  assert.ok(
    Math.min(a, b) >= (a + b) / 6,
    `shares ${a} and ${b}: one account got under a sixth`,
  );
});
