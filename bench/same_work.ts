// Row 1: the campaign tick against the dialer a user would write on graphile-worker
// (bench/queue_dialer.ts) doing the same work on the same database, emulator, numbers and
// contacts at the same budget; and against the floor, the same LiveKit requests with no
// database (bench/bare_dialer.ts). Calls per second and CPU milliseconds per call of the
// dialing process, of Postgres and of the emulator (this process).
import {
  callFunction,
  type ChildRun,
  cpuSeconds,
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  emulatedCalls,
  FAILING_SUFFIXES,
  fmt,
  type FunctionStats,
  functionStats,
  type Line,
  livekitRequests,
  mutePokes,
  postgresCpuSeconds,
  provisionLines,
  queueCalls,
  quietly,
  type Row,
  runChild,
  setBudget,
  setStatusQuietly,
  sleep,
  startFunctionHost,
  type User,
} from "./lib.ts";

/** Numbers dialed from, one campaign each (a campaign has at most 1000 calls live). */
export const LINES = 3;
/** Calls per dialer in row 1. */
const CALLS = 1200;
/** The budget of row 1: above what the machine can dial, so each dialer goes as fast as it can. */
export const HIGH_CPS = 2500;
/** Jobs graphile-worker runs at once, and the floor's loops (the tick has its own bound). */
export const CONCURRENCY = 50;
/** The agent every bench assistant dispatches (the emulator runs a worker for any name). */
export const AGENT = "same-work-agent";
/** New York area codes, one per number: the callees are valid and in the allowed country. */
export const AREAS = ["646", "212", "917"];

export interface Fixture {
  user: User;
  assistantId: string;
  lines: Line[];
}

let fixture: Promise<Fixture> | null = null;

/** The numbers rows 1 and 3 dial from, made once per run. */
export function dialFixture(ctx: Ctx): Promise<Fixture> {
  fixture ??= (async () => {
    const user = await createUser(ctx, "bench-same-work");
    const assistantId = await createAssistant(ctx, user, AGENT);
    const lines = await provisionLines(ctx, user, assistantId, LINES, 100);
    return { user, assistantId, lines };
  })();
  return fixture;
}

/** One campaign per number, `calls` in all, the same callees for every dialer. */
async function campaigns(ctx: Ctx, f: Fixture, label: string, calls: number) {
  const ids: string[] = [];
  for (const [i, line] of f.lines.entries()) {
    const id = await createCampaign(ctx, f.user, f.assistantId, line, `${label} ${i}`);
    await queueCalls(ctx, id, f.user.id, Math.ceil(calls / f.lines.length), {
      areaCode: AREAS[i],
    });
    ids.push(id);
  }
  await mutePokes(ctx, ids);
  return ids;
}

export interface Measured {
  calls: number;
  perSecond: number;
  /** CPU ms per dialed call: the dialing process, Postgres, the emulator. */
  cpuMs: { process: number; postgres: number; emulator: number };
  /** Slots given back (a dial that missed its slot's second, or found no agent). */
  deferred: number;
  /** LiveKit requests per dialed call, by method. */
  requests: Record<string, number>;
  /**
   * Slots taken again by dials that missed the one they were given (take_carrier_slots
   * calls beyond the claims'), and the claims made.
   */
  retaken: number;
  claims: number;
  /** Time in each of the tick's SQL functions per dialed call (ms), when measured. */
  sqlMs?: Record<string, number>;
  /** Why the tick's campaigns stopped before their last call, if they did. */
  stopped: string[];
  /** Calls from each of the run's numbers (one per campaign), fewest and most. */
  perNumber: { numbers: number; fewest: number; most: number };
}

/**
 * Slots taken beyond the claims' plans and each dial's own (internal.open_dial takes the dial's
 * slot): the ones a late dial took again.
 */
function slotCalls(a: FunctionStats, b: FunctionStats, calls: number) {
  const d = (f: string) => (b.calls[f] ?? 0) - (a.calls[f] ?? 0);
  const ms = (f: string) => Number(fmt(((b.ms[f] ?? 0) - (a.ms[f] ?? 0)) / calls));
  return {
    retaken: d("take_carrier_slots") - d("claim_calls") - d("open_dial"),
    claims: d("claim_calls"),
    sqlMs: Object.fromEntries(
      ["claim_calls", "open_dial", "record_answer"].map((f) => [f, ms(f)]),
    ),
  };
}

async function requestsPerCall(ctx: Ctx, since: number, calls: number) {
  const by = await livekitRequests(ctx.info, since);
  return Object.fromEntries(Object.entries(by).map(([m, n]) => [m, Number(fmt(n / calls))]));
}

export const cpuTotal = (m: Measured) => m.cpuMs.process + m.cpuMs.postgres + m.cpuMs.emulator;

async function invitesSince(ctx: Ctx, lines: Line[], before: Set<string>) {
  const from = new Set(lines.map((l) => l.e164));
  return (await emulatedCalls(ctx.info)).filter((c) =>
    from.has(c.fromNumber) && !before.has(c.sipCallId)
  );
}

/** How the calls were spread over the numbers dialed from (a number never dialed counts 0). */
function spread(lines: Line[], dialed: { fromNumber: string }[]): Measured["perNumber"] {
  const n = lines.map((l) => dialed.filter((c) => c.fromNumber === l.e164).length);
  return { numbers: n.filter((x) => x > 0).length, fewest: Math.min(...n), most: Math.max(...n) };
}

async function seen(ctx: Ctx) {
  return new Set((await emulatedCalls(ctx.info)).map((c) => c.sipCallId));
}

/** The campaign tick in a fresh process, one tick per campaign at once (what their starts send). */
export async function tickRun(ctx: Ctx, cps: number, calls: number): Promise<Measured> {
  const f = await dialFixture(ctx);
  const ids = await campaigns(ctx, f, `tick at ${cps}`, calls);
  return await tickOver(ctx, f.lines, ids, cps);
}

/**
 * The campaign tick in a fresh process over these campaigns (one number each), one tick per
 * campaign at once, at a budget of `cps` on every carrier trunk of `lines`. With `windowSec`
 * each tick stops claiming after that long (its `budgetSec`) and finishes the dials it claimed;
 * the campaigns are then left with queued calls, which is not a stop. Cancels the campaigns.
 */
export async function tickOver(
  ctx: Ctx,
  lines: Line[],
  ids: string[],
  cps: number,
  windowSec?: number,
): Promise<Measured> {
  return await quietly(ctx, async () => {
    const host = await startFunctionHost(ctx, "campaign-tick");
    try {
      await setBudget(ctx, lines, cps);
      const before = await seen(ctx);
      const fn0 = await functionStats(ctx);
      await setStatusQuietly(ctx, ids, "running");
      const cpu0 = [
        cpuSeconds(host.pid),
        postgresCpuSeconds(ctx.stack.cluster),
        cpuSeconds(Deno.pid),
      ];
      const t0 = Date.now();
      const answers = await Promise.all(
        ids.map((campaignId) =>
          callFunction(ctx.info, "campaign-tick", ctx.info.serviceKey, {
            campaignId,
            budgetSec: windowSec ?? 60,
          }, host.url)
        ),
      );
      const cpu1 = [
        cpuSeconds(host.pid),
        postgresCpuSeconds(ctx.stack.cluster),
        cpuSeconds(Deno.pid),
      ];
      for (const a of answers) {
        if (a.status !== 200) {
          throw new Error(`campaign-tick: ${a.status} ${JSON.stringify(a.body)}`);
        }
      }
      const dialed = await invitesSince(ctx, lines, before);
      const last = Math.max(...dialed.map((c) => c.startedAt));
      const per = (i: number) => (cpu1[i] - cpu0[i]) * 1000 / dialed.length;
      const stopped = (await ctx.sql<{ why: string }[]>`
        select c.status || ': ' || coalesce(c.status_reason, c.throttle_reason, '') || ' (' ||
          (select count(*) from public.campaign_calls cc
           where cc.campaign_id = c.id and cc.status = 'queued') || ' still queued)' as why
        from public.campaigns c where c.id in ${ctx.sql(ids)}
          and (c.status <> 'running' ${
        // Bounded in time, a tick leaves queued calls by design.
        windowSec === undefined
          ? ctx.sql`or exists (select from public.campaign_calls cc
              where cc.campaign_id = c.id and cc.status = 'queued' and cc.attempts = 0)`
          : ctx.sql``})`)
        .map((r) => r.why);
      return {
        calls: dialed.length,
        perSecond: dialed.length / ((last - t0) / 1000),
        cpuMs: { process: per(0), postgres: per(1), emulator: per(2) },
        deferred: answers.reduce((s, a) => s + a.body.deferred, 0),
        requests: await requestsPerCall(ctx, t0, dialed.length),
        ...slotCalls(fn0, await functionStats(ctx), dialed.length),
        stopped,
        perNumber: spread(lines, dialed),
      };
    } finally {
      await host.close();
      await setStatusQuietly(ctx, ids, "cancelled");
      // Its backends exit now; the next reading of Postgres's CPU should not race them.
      await sleep(300);
    }
  });
}

/** What a dialer run in a child process (the queue dialer, the bare loop) did, per call. */
async function childMeasured(
  ctx: Ctx,
  lines: Line[],
  before: Set<string>,
  r: ChildRun,
): Promise<Measured> {
  const dialed = await invitesSince(ctx, lines, before);
  const last = Math.max(...dialed.map((c) => c.startedAt));
  const n = dialed.length;
  return {
    calls: n,
    perSecond: n / ((last - r.startedAt) / 1000),
    cpuMs: {
      process: r.result.cpuMs / n,
      postgres: r.postgresSec * 1000 / n,
      emulator: r.emulatorSec * 1000 / n,
    },
    deferred: 0,
    requests: await requestsPerCall(ctx, r.startedAt, n),
    retaken: 0,
    claims: 0,
    stopped: [],
    perNumber: spread(lines, dialed),
  };
}

/** The graphile-worker dialer in a fresh process over its own campaigns (same callees). */
async function queueRun(ctx: Ctx, cps: number, calls: number): Promise<Measured> {
  const f = await dialFixture(ctx);
  const ids = await campaigns(ctx, f, `queue at ${cps}`, calls);
  return await queueOver(ctx, f.lines, ids, cps);
}

/**
 * The graphile-worker dialer in a fresh process over these campaigns, at a budget of `cps` on
 * every carrier trunk of `lines`: every job, or with `windowSec` the jobs it takes in that long
 * (it then stops taking jobs and lets the running ones finish; the jobs it never ran are
 * removed once it has exited). Cancels the campaigns.
 */
export async function queueOver(
  ctx: Ctx,
  lines: Line[],
  ids: string[],
  cps: number,
  windowSec?: number,
): Promise<Measured> {
  return await quietly(ctx, async () => {
    await setBudget(ctx, lines, cps);
    const before = await seen(ctx);
    const { url, apiKey, apiSecret } = ctx.info.livekit;
    const r = await runChild(ctx, [
      "bench/queue_dialer.ts",
      ctx.info.dbUrl,
      url,
      apiKey,
      apiSecret,
      String(CONCURRENCY),
      String(windowSec ?? 0),
      ...ids,
    ]);
    await setStatusQuietly(ctx, ids, "cancelled");
    if (windowSec !== undefined) {
      // Unlocked only: the dialer has exited, so none is running.
      await ctx.sql`select count(*) from graphile_worker.complete_jobs(array(
        select id from graphile_worker.jobs where task_identifier = 'dial' and locked_at is null))`;
    }
    return await childMeasured(ctx, lines, before, r);
  });
}

/** The same LiveKit requests with no database, in a fresh process. */
async function bareRun(
  ctx: Ctx,
  cps: number,
  calls: number,
  ownConnections = false,
): Promise<Measured> {
  const f = await dialFixture(ctx);
  // The callees queueCalls gives the tick's campaigns (bench/lib.ts), number by number.
  const list: { trunkId: string; from: string; to: string }[] = [];
  for (const [i, line] of f.lines.entries()) {
    for (let s = 0, n = 0; n < Math.ceil(calls / f.lines.length); s++) {
      const last4 = String(s % 10000).padStart(4, "0");
      if (FAILING_SUFFIXES.includes(last4.slice(1))) continue;
      list.push({
        trunkId: line.outboundTrunkId,
        from: line.e164,
        to: `+1${AREAS[i]}${200 + Math.floor(s / 10000)}${last4}`,
      });
      n++;
    }
  }
  return await quietly(ctx, async () => {
    const before = await seen(ctx);
    const { url, apiKey, apiSecret } = ctx.info.livekit;
    const r = await runChild(
      ctx,
      ["bench/bare_dialer.ts"],
      JSON.stringify({
        url,
        apiKey,
        apiSecret,
        agentName: AGENT,
        concurrency: CONCURRENCY,
        cps,
        ownConnections,
        calls: list,
      }),
    );
    return await childMeasured(ctx, f.lines, before, r);
  });
}

let high: Promise<Measured> | null = null;

/** The tick at row 1's budget, measured once per run (rows 1, 3 and 5 read it). */
export function tickAtHigh(ctx: Ctx): Promise<Measured> {
  high ??= tickRun(ctx, HIGH_CPS, CALLS);
  return high;
}

export function describe(m: Measured): string {
  const c = m.cpuMs;
  return `${m.calls} calls, ${fmt(m.perSecond, 0)}/s, CPU/call ${fmt(c.process)} process + ${
    fmt(c.postgres)
  } Postgres + ${fmt(c.emulator)} emulator = ${fmt(cpuTotal(m))} ms; LiveKit requests/call ${
    JSON.stringify(m.requests)
  }${m.sqlMs ? `; in SQL functions, ms/call ${JSON.stringify(m.sqlMs)}` : ""}${
    m.stopped.length ? `; stopped early: ${m.stopped.join("; ")}` : ""
  }`;
}

/** The mean of two runs of the same dialer (rates and CPU per call). */
export function mean(a: Measured, b: Measured): Measured {
  const m = (x: number, y: number) => (x + y) / 2;
  return {
    ...a,
    calls: a.calls + b.calls,
    perSecond: m(a.perSecond, b.perSecond),
    cpuMs: {
      process: m(a.cpuMs.process, b.cpuMs.process),
      postgres: m(a.cpuMs.postgres, b.cpuMs.postgres),
      emulator: m(a.cpuMs.emulator, b.cpuMs.emulator),
    },
    deferred: a.deferred + b.deferred,
    retaken: a.retaken + b.retaken,
    claims: a.claims + b.claims,
    stopped: [...a.stopped, ...b.stopped],
    perNumber: {
      numbers: Math.min(a.perNumber.numbers, b.perNumber.numbers),
      fewest: Math.min(a.perNumber.fewest, b.perNumber.fewest),
      most: Math.max(a.perNumber.most, b.perNumber.most),
    },
  };
}

export async function sameWork(ctx: Ctx): Promise<Row[]> {
  await dialFixture(ctx);
  // tick, queue, floor, queue, tick: drift in the machine's load hits both alike.
  const ours1 = await tickAtHigh(ctx);
  ctx.say(
    `  campaign tick: ${
      describe(ours1)
    }; ${ours1.deferred} given back, ${ours1.retaken} slots taken again after a miss, ${ours1.claims} claims`,
  );
  const queue1 = await queueRun(ctx, HIGH_CPS, CALLS);
  ctx.say(`  graphile-worker dialer: ${describe(queue1)}`);
  const bare = await bareRun(ctx, HIGH_CPS, CALLS);
  ctx.say(`  bare SDK loop: ${describe(bare)}`);
  const bareOwn = await bareRun(ctx, HIGH_CPS, CALLS, true);
  ctx.say(`  bare SDK loop, creates on connections of their own: ${describe(bareOwn)}`);
  const queue2 = await queueRun(ctx, HIGH_CPS, CALLS);
  ctx.say(`  graphile-worker dialer: ${describe(queue2)}`);
  const ours2 = await tickRun(ctx, HIGH_CPS, CALLS);
  ctx.say(
    `  campaign tick: ${
      describe(ours2)
    }; ${ours2.deferred} given back, ${ours2.retaken} slots taken again after a miss, ${ours2.claims} claims`,
  );
  const ours = mean(ours1, ours2);
  const queue = mean(queue1, queue2);
  const rate = ours.perSecond / queue.perSecond;
  const cpu = cpuTotal(ours) / cpuTotal(queue);
  const c = (m: Measured) =>
    `${fmt(m.cpuMs.process, 1)}+${fmt(m.cpuMs.postgres, 1)}+${fmt(m.cpuMs.emulator, 1)}`;
  return [
    {
      id: "1a",
      what: "same work: calls/s, tick / graphile-worker dialer",
      ratio: rate,
      target: ">= 1.0",
      pass: rate >= 1,
      note: `${fmt(ours.perSecond, 0)} vs ${
        fmt(queue.perSecond, 0)
      } calls/s (${ours.calls} and ${queue.calls} calls, budget ${HIGH_CPS}/s, worker concurrency ${CONCURRENCY})`,
    },
    {
      id: "1a",
      what: "same work: CPU ms/call, tick / graphile-worker dialer",
      ratio: cpu,
      target: "<= 1.0",
      pass: cpu <= 1,
      note: `${fmt(cpuTotal(ours), 1)} vs ${fmt(cpuTotal(queue), 1)} ms (process+pg+emulator: ${
        c(ours)
      } vs ${c(queue)})`,
    },
    {
      id: "1b",
      what: "floor: calls/s, tick / bare SDK loop (no database)",
      ratio: ours.perSecond / bare.perSecond,
      target: "(report)",
      pass: null,
      note: `${fmt(ours.perSecond, 0)} vs ${fmt(bare.perSecond, 0)} calls/s; CPU/call ${
        fmt(cpuTotal(ours), 1)
      } vs ${fmt(cpuTotal(bare), 1)} ms (${c(bare)}), concurrency ${CONCURRENCY}`,
    },
    {
      id: "1d",
      what: "never resent: CPU ms/call, bare loop with creates on own connections / pooled",
      ratio: cpuTotal(bareOwn) / cpuTotal(bare),
      target: "(report)",
      pass: null,
      note: `${fmt(cpuTotal(bareOwn), 1)} vs ${fmt(cpuTotal(bare), 1)} ms (${c(bareOwn)} vs ${
        c(bare)
      }): ${
        fmt(cpuTotal(bareOwn) - cpuTotal(bare), 1)
      } ms a call is what sending each dispatch and dial over a connection of its own costs`,
    },
  ];
}
