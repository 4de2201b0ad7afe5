// Row 1: calls dialed per second by campaign-tick, divided by graphile-worker's no-op jobs
// per second on the same PostgreSQL in the same run.
import {
  callFunction,
  cpuSeconds,
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  emulatedCalls,
  fmt,
  type Json,
  type Line,
  postgresCpuSeconds,
  provisionLines,
  queueCalls,
  quietly,
  ROOT,
  type Row,
  setStatusQuietly,
  startFunctionHost,
} from "./lib.ts";

const GRAPHILE_JOBS = 10_000;
/** Numbers for the engine-capacity run: their budgets add up to more than graphile's rate. */
const LINES = 40;
const CPS = 100; // per number: the carrier trunk they share gets the sum (bench/lib.ts)
const WIDE_CALLS = 3_000;
const SINGLE_CALLS = 500;

interface Measured {
  perSecond: number;
  /** CPU milliseconds per call (or job): the dialing (or worker) process and Postgres. */
  cpuMs: { process: number; postgres: number; emulator?: number };
}

async function graphileRate(ctx: Ctx): Promise<Measured> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/bench/graphile_worker.ts`, ctx.info.dbUrl, String(GRAPHILE_JOBS)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let pg0 = NaN;
  let pg1 = NaN;
  let result: Json = null;
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === "start") pg0 = postgresCpuSeconds(ctx.stack.cluster);
      else if (line.startsWith("{")) {
        pg1 = postgresCpuSeconds(ctx.stack.cluster);
        result = JSON.parse(line);
      }
    }
  }
  if (!(await child.status).success || !result) throw new Error("graphile-worker failed");
  return {
    perSecond: result.perSecond,
    cpuMs: { process: result.cpuMs / result.jobs, postgres: (pg1 - pg0) * 1000 / result.jobs },
  };
}

interface TickRun extends Measured {
  calls: number;
  deferred: number;
}

/**
 * Starts the campaigns (without the trigger's poke), sends the ticks a start would send,
 * to campaign-tick served from a fresh process, and measures from the first request to the
 * last INVITE the emulator saw for these numbers.
 */
async function dialRun(
  ctx: Ctx,
  hostUrl: string,
  hostPid: number,
  campaigns: string[],
  lines: Line[],
  ticks: Record<string, unknown>[],
): Promise<TickRun> {
  const from = new Set(lines.map((l) => l.e164));
  const before = new Set(
    (await emulatedCalls(ctx.info)).filter((c) => from.has(c.fromNumber)).map((c) =>
      c.startedAt + c.toNumber
    ),
  );
  await setStatusQuietly(ctx, campaigns, "running");
  const cpu0 = [cpuSeconds(hostPid), postgresCpuSeconds(ctx.stack.cluster), cpuSeconds(Deno.pid)];
  const t0 = Date.now();
  const answers = await Promise.all(
    ticks.map((body) =>
      callFunction(ctx.info, "campaign-tick", ctx.info.serviceKey, body, hostUrl)
    ),
  );
  const cpu1 = [cpuSeconds(hostPid), postgresCpuSeconds(ctx.stack.cluster), cpuSeconds(Deno.pid)];
  for (const a of answers) {
    if (a.status !== 200) throw new Error(`campaign-tick: ${a.status} ${JSON.stringify(a.body)}`);
  }
  const calls = (await emulatedCalls(ctx.info)).filter((c) =>
    from.has(c.fromNumber) && !before.has(c.startedAt + c.toNumber)
  );
  const last = Math.max(...calls.map((c) => c.startedAt));
  const per = (i: number) => (cpu1[i] - cpu0[i]) * 1000 / calls.length;
  return {
    calls: calls.length,
    perSecond: calls.length / ((last - t0) / 1000),
    deferred: answers.reduce((s, a) => s + a.body.deferred, 0),
    // The emulator shares this process with the gateway, idle here (no webhooks, no cron).
    cpuMs: { process: per(0), postgres: per(1), emulator: per(2) },
  };
}

function describe(m: Measured): string {
  const c = m.cpuMs;
  return `${fmt(m.perSecond, 0)}/s, CPU per item ${fmt(c.process)} ms process + ${
    fmt(c.postgres)
  } ms Postgres${c.emulator === undefined ? "" : ` + ${fmt(c.emulator)} ms emulator`}`;
}

export async function throughput(ctx: Ctx): Promise<Row[]> {
  const user = await createUser(ctx, "bench-throughput");
  const assistantId = await createAssistant(ctx, user, "throughput-agent");
  const lines = await provisionLines(ctx, user, assistantId, LINES + 1, CPS);
  const single = lines.pop()!;
  const singleCampaign = await createCampaign(ctx, user, assistantId, single, "single line");
  await queueCalls(ctx, singleCampaign, user.id, SINGLE_CALLS);
  const campaigns: string[] = [];
  for (const [i, line] of lines.entries()) {
    const c = await createCampaign(ctx, user, assistantId, line, `wide ${i}`);
    await queueCalls(ctx, c, user.id, WIDE_CALLS / LINES);
    campaigns.push(c);
  }

  // Only the ticks sent here dial (no cron ticks, no webhook pokes).
  const { g1, g2, one, wide } = await quietly(ctx, async () => {
    const host = await startFunctionHost("campaign-tick");
    try {
      const g1 = await graphileRate(ctx);
      ctx.say(`  graphile-worker: ${describe(g1)}`);
      const one = await dialRun(ctx, host.url, host.pid, [singleCampaign], [single], [{
        campaignId: singleCampaign,
        budgetSec: 60,
      }]);
      ctx.say(`  one number at ${CPS} cps: ${one.calls} calls, ${describe(one)}`);
      // As if each campaign had just been started: its start pokes a tick for it.
      const wide = await dialRun(
        ctx,
        host.url,
        host.pid,
        campaigns,
        lines,
        campaigns.map((campaignId) => ({ campaignId, budgetSec: 60 })),
      );
      ctx.say(
        `  ${LINES} numbers at ${CPS} cps: ${wide.calls} calls, ${
          describe(wide)
        }, ${wide.deferred} slots missed and requeued`,
      );
      const g2 = await graphileRate(ctx);
      ctx.say(`  graphile-worker again: ${describe(g2)}`);
      return { g1, g2, one, wide };
    } finally {
      await host.close();
      await setStatusQuietly(ctx, [singleCampaign, ...campaigns], "cancelled");
    }
  });
  const graphile = (g1.perSecond + g2.perSecond) / 2;
  const gCpu = (g1.cpuMs.process + g2.cpuMs.process + g1.cpuMs.postgres + g2.cpuMs.postgres) / 2;
  const w = wide.cpuMs;
  return [
    {
      id: "1a",
      what: "dispatch: 1 number / graphile-worker",
      ratio: one.perSecond / graphile,
      target: ">= 1.0",
      pass: one.perSecond / graphile >= 1,
      note: `${fmt(one.perSecond, 0)} calls/s vs ${
        fmt(graphile, 0)
      } jobs/s; by design: one number's budget, at most ${CPS} cps (schema)`,
    },
    {
      id: "1b",
      what: `dispatch: ${LINES} numbers / graphile-worker`,
      ratio: wide.perSecond / graphile,
      target: ">= 1.0",
      pass: wide.perSecond / graphile >= 1,
      note: `${fmt(wide.perSecond, 0)} calls/s (budgets allow ${LINES * CPS}) vs ${
        fmt(graphile, 0)
      } jobs/s; CPU/call ${fmt(w.process, 1)} fn + ${fmt(w.postgres, 1)} pg + ${
        fmt(w.emulator!, 1)
      } emulator ms vs ${fmt(gCpu)} ms/job; ${wide.deferred} slots missed`,
    },
  ];
}
