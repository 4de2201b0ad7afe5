// No silent answers: a callee is dialed only once the assistant's agent is in the room, the
// agent pool's size becomes the campaign's concurrency, and abandoned calls are counted and
// capped. The LiveKit emulator runs agent workers as LiveKit's agent dispatch does.
import assert from "node:assert/strict";
import {
  asUser,
  call,
  configureLiveKit,
  livekitState,
  readyAssistant,
  sql,
  type TestUser,
} from "../helpers/stack.ts";
import { explain, settled } from "../helpers/campaigns.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

let seq = 0;
/** Callees unique to this file (the emulator's table: 9NN talks NN s, others 20 s). */
const callee = (suffix = "123") => {
  const n = seq++;
  return `+1215${200 + n}${n % 10}${suffix}`;
};

async function campaignOf(label: string, numbers: string[], settings: Record<string, unknown>) {
  const { user, assistantId, numberId } = await readyAssistant(label);
  const [c] = await sql`insert into public.campaigns ${
    sql({
      owner_id: user.id,
      name: `${label} campaign`,
      assistant_id: assistantId,
      phone_number_id: numberId,
      status: "draft",
      window_start: "00:00",
      window_end: "23:59:59",
      weekdays: [1, 2, 3, 4, 5, 6, 7],
      ...settings,
    })
  } returning id`;
  await asUser(
    user,
    (tx: Json) =>
      tx`select public.add_campaign_calls(${c.id}, ${
        tx.json(numbers.map((phoneNumber) => ({ phoneNumber })))
      })`,
  );
  return { user, assistantId, campaignId: c.id as string };
}

async function start(campaignId: string) {
  await sql`update public.campaigns set status = 'running' where id = ${campaignId}`;
}

Deno.test("with no agent joining, create-participant answers 503 agent_unavailable and dials nothing", async () => {
  const { user, assistantId } = await readyAssistant("noagent");
  await configureLiveKit({ agentWorkers: 0 });
  let res: { status: number; body: Json };
  try {
    res = await dialAs(user, assistantId, callee());
  } finally {
    await configureLiveKit({ agentWorkers: -1 });
  }
  assert.equal(res.status, 503, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "agent_unavailable");
  assert.ok(res.body.error.details.retryAfterSec >= 1);
  const state = await livekitState();
  const jobs = state.agentJobs.filter((j: Json) => j.agentName === "noagent-agent");
  assert.equal(jobs.length, 1);
  assert.ok(jobs[0].cancelled, "the waiting dispatch was deleted");
  assert.equal(state.invitesByRoom[jobs[0].room] ?? 0, 0, "the callee was not dialed");
  const [{ n }] =
    await sql`select count(*)::int as n from public.outbound_calls where owner_id = ${user.id}`;
  assert.equal(n, 0, "no call record remains for a call never placed");
});

Deno.test("an agent of another agent name in the call's room is not taken for the assistant's: nothing is dialed", async () => {
  // LiveKit dispatches agent name "" to every new room, so a worker registered without a name
  // joins every call room as an AGENT participant, with lk.agent_name "".
  const { user, assistantId } = await readyAssistant("unnamed");
  await configureLiveKit({ agentWorkers: 0, unnamedAgentWorkers: -1 });
  let res: { status: number; body: Json };
  try {
    res = await dialAs(user, assistantId, callee());
  } finally {
    await configureLiveKit({ agentWorkers: -1, unnamedAgentWorkers: 0 });
  }
  assert.equal(res.status, 503, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "agent_unavailable");
  const state = await livekitState();
  const [job] = state.agentJobs.filter((j: Json) => j.agentName === "unnamed-agent");
  assert.ok(job?.cancelled, "the assistant's agent never joined; its dispatch was deleted");
  const other = state.agentJobs.find((j: Json) => j.agentName === "" && j.room === job.room);
  assert.ok(other?.joinedAt, "an agent without a name was in the call's room");
  assert.equal(state.invitesByRoom[job.room] ?? 0, 0, "the callee was not dialed");
});

function dialAs(user: TestUser, assistantId: string, phoneNumber: string) {
  return call("create-participant", { token: user.token, body: { assistantId, phoneNumber } });
}

Deno.test("a campaign whose agents never join pauses with the reason and counts no attempt", async () => {
  const numbers = Array.from({ length: 4 }, () => callee());
  const f = await campaignOf("ghost", numbers, { max_concurrent: 2 });
  await configureLiveKit({ agentWorkers: 0 });
  let p;
  try {
    await start(f.campaignId);
    p = await settled(f.campaignId, "paused", { tick: { budgetSec: 10 } });
  } finally {
    await configureLiveKit({ agentWorkers: -1 });
  }
  assert.match(p.status_reason, /no agent joined/);
  assert.equal(p.attempts, 0, "attempts that were never dialed do not count");
  assert.equal(p.queued, 4);
  const state = await livekitState();
  const rooms = new Set(
    state.agentJobs.filter((j: Json) => j.agentName === "ghost-agent").map((j: Json) => j.room),
  );
  assert.ok(rooms.size >= 3);
  assert.ok([...rooms].every((r) => !state.invitesByRoom[r as string]), "nobody was dialed");
});

Deno.test("with fewer agents than lines, nobody is dialed before an agent is in the room and concurrency settles at the pool", async () => {
  const numbers = Array.from({ length: 12 }, () => callee());
  const f = await campaignOf("pool", numbers, { max_concurrent: 8, max_attempts: 1 });
  // Calls of 20 s at a tenth of real time outlast the 1 s the product waits for an agent.
  await configureLiveKit({ agentWorkers: 3, timeScale: 0.1 });
  let p;
  const limits: number[] = [];
  try {
    await start(f.campaignId);
    p = await settled(f.campaignId, "completed", {
      tick: { budgetSec: 10 },
      each: (x) => {
        if (x.concurrency_limit !== null) limits.push(x.concurrency_limit);
      },
    });
  } finally {
    await configureLiveKit({ agentWorkers: -1, timeScale: 0.001 });
  }
  if (p.completed !== 12) await explain(f.campaignId);
  assert.equal(p.completed, 12, "every callee was called, none lost");
  assert.equal(p.attempts, 12, "no attempt counted twice (those without an agent were given back)");

  const state = await livekitState();
  const jobs = state.agentJobs.filter((j: Json) => j.agentName === "pool-agent");
  const byRoom = new Map<string, Json>(
    jobs.filter((j: Json) => j.joinedAt).map((j: Json) => [j.room, j]),
  );
  const calls = state.calls.filter((c: Json) => numbers.includes(c.toNumber));
  assert.equal(calls.length, 12, "each callee rang once");
  for (const c of calls) {
    const agent = byRoom.get(c.room);
    assert.ok(agent && agent.joinedAt <= c.startedAt, `dialed before its agent joined: ${c.room}`);
    assert.ok(c.answeredAt && agent.joinedAt <= c.answeredAt);
  }
  // Concurrency: never more live calls than agents, and the pool was used in full.
  const edges = calls.flatMap((c: Json) => [[c.startedAt, 1], [c.endedAt, -1]]) as [
    number,
    number,
  ][];
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let live = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, live += d);
  assert.equal(peak, 3, `peak live calls ${peak} with a pool of 3 agents`);
  assert.ok(jobs.some((j: Json) => j.cancelled), "the pool was saturated at times");
  assert.ok(limits.length > 0 && limits.every((l) => l <= 3), `limits ${limits.join(",")}`);
  const [{ abandoned }] = await sql`select count(*) filter (where abandoned)::int as abandoned
    from public.outbound_calls where campaign_id = ${f.campaignId}`;
  assert.equal(abandoned, 0, "no answered call was left without an agent");
});

Deno.test("the abandonment rate shown matches an independent count, and past the cap the campaign slows then pauses", async () => {
  // Agents that never speak, and callees who hang up after 1 s: abandoned calls.
  const numbers = Array.from({ length: 40 }, () => callee("901"));
  const f = await campaignOf("abandon", numbers, { max_concurrent: 4, abandon_cap: 0.03 });
  await configureLiveKit({ agentSilentRate: 0.5 });
  let p;
  try {
    await start(f.campaignId);
    p = await settled(f.campaignId, "paused", { tick: { budgetSec: 10 } });
  } finally {
    await configureLiveKit({ agentSilentRate: 0 });
  }
  assert.equal(p.status, "paused");
  assert.match(p.status_reason, /abandoned calls at [\d.]+ % of answered/);
  const [slowed] =
    await sql`select abandon_slowed_at, throttle_reason from public.campaigns where id = ${f.campaignId}`;
  assert.ok(slowed.abandon_slowed_at, "it slowed down before pausing");
  assert.match(slowed.throttle_reason, /slowed to 2 calls at once/);

  // Independently, from the emulator: answered calls whose agent never published audio and
  // whose callee hung up within 2 s of the answer.
  const state = await livekitState();
  const audio = new Map<string, number | undefined>(
    state.agentJobs.filter((j: Json) => j.agentName === "abandon-agent" && j.joinedAt).map((
      j: Json,
    ) => [j.room, j.audioAt]),
  );
  const answered = state.calls.filter((c: Json) => numbers.includes(c.toNumber) && c.answeredAt);
  const abandoned = answered.filter((c: Json) => {
    const heard = audio.get(c.room);
    return heard === undefined || heard > c.endedAt ? c.endedAt - c.answeredAt < 2000 : false;
  });
  assert.ok(abandoned.length > 0 && abandoned.length < answered.length);
  assert.equal(p.answered_30d, answered.length);
  assert.equal(p.abandoned_30d, abandoned.length);
  assert.equal(Number(p.abandonment_rate), Number((abandoned.length / answered.length).toFixed(4)));
});
