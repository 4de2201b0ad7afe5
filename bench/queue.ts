// Row 3: the claim path's cost as the queue grows. A campaign with 10,000 queued calls and
// one with 1,000,000 share a number; batches of 100 are claimed with the engine's own
// `internal.claim_calls` and recorded, alternating between the two campaigns.
import {
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  fmt,
  type Line,
  median,
  provisionLines,
  queueCalls,
  quietly,
  type Row,
  setStatusQuietly,
  superuser,
} from "./lib.ts";

export const SMALL = 10_000;
export const LARGE = 1_000_000;
const BATCH = 100;
const BATCHES = 30;
const WARMUP = 3;

export interface Queues {
  line: Line;
  small: string;
  large: string;
}

let queues: Promise<Queues> | null = null;

/** The two queues, made once per run (rows 3 and 6 share them). */
export function bigQueues(ctx: Ctx): Promise<Queues> {
  queues ??= (async () => {
    const user = await createUser(ctx, "bench-queue");
    const assistantId = await createAssistant(ctx, user, "queue-agent");
    const [line] = await provisionLines(ctx, user, assistantId, 1, 100);
    const small = await createCampaign(ctx, user, assistantId, line, "10k queued");
    const large = await createCampaign(ctx, user, assistantId, line, "1M queued");
    const t = performance.now();
    await queueCalls(ctx, small, user.id, SMALL);
    await queueCalls(ctx, large, user.id, LARGE);
    // What autovacuum would do soon after a bulk import; the claim's plan depends on it.
    await ctx.sql`vacuum analyze public.campaign_calls`;
    ctx.say(`  queued ${SMALL + LARGE} calls in ${fmt((performance.now() - t) / 1000, 1)} s`);
    return { line, small, large };
  })();
  return queues;
}

/** The due-call select inside internal.claim_calls, on its own. */
export function dueSelect(campaignId: string, limit: number): string {
  return `select x.* from public.campaign_calls x
    where x.campaign_id = '${campaignId}' and x.status = 'queued' and x.next_attempt_at <= now()
    order by x.next_attempt_at
    limit ${limit}
    for update skip locked`;
}

/** A fresh budget for the carrier trunk: rows 3 and 6 measure the queue, not pacing. */
export async function resetPacing(ctx: Ctx, q: Queues): Promise<void> {
  await ctx.sql`update internal.carrier_pacing set next_slot = 'epoch', backoff_level = 0,
      backoff_until = null
    where carrier_trunk = (select coalesce(carrier_trunk, 'default') from public.phone_number
      where id = ${q.line.id})`;
}

export async function queueGrowth(ctx: Ctx): Promise<Row[]> {
  const q = await bigQueues(ctx);
  return await quietly(ctx, async () => {
    await setStatusQuietly(ctx, [q.small, q.large], "running");
    try {
      return await claimBatches(ctx, q);
    } finally {
      await setStatusQuietly(ctx, [q.small, q.large], "paused");
    }
  });
}

async function claimBatches(ctx: Ctx, q: Queues): Promise<Row[]> {
  // One session, as one tick's claims would run on one connection.
  const sql = superuser(ctx.info, 1);
  const times: Record<string, number[]> = { [q.small]: [], [q.large]: [] };
  try {
    for (let i = 0; i < WARMUP + BATCHES; i++) {
      for (const campaign of i % 2 ? [q.small, q.large] : [q.large, q.small]) {
        await resetPacing(ctx, q);
        const t = performance.now();
        const claimed = await sql<{ campaign_call_id: string }[]>`
          select * from internal.claim_calls(${campaign}, ${BATCH}, ${crypto.randomUUID()})`;
        await sql`update public.campaign_calls set status = 'completed', completed_at = now(),
            lease_until = null, lease_owner = null
          where id in ${sql(claimed.map((c) => c.campaign_call_id))}`;
        const ms = performance.now() - t;
        if (claimed.length !== BATCH) {
          throw new Error(`claimed ${claimed.length} of ${BATCH} calls`);
        }
        if (i >= WARMUP) times[campaign].push(ms);
      }
    }
    const plan = await sql.begin(async (tx) => {
      const rows = await tx.unsafe(
        `explain (analyze, buffers) ${dueSelect(q.large, BATCH)}`,
      );
      throw new Rollback(rows.map((r) => r["QUERY PLAN"]).join("\n"));
    }).catch((e) => {
      if (e instanceof Rollback) return e.plan;
      throw e;
    });
    ctx.say(`  plan of the due-call select with ${LARGE} queued:`);
    for (const line of plan.split("\n")) ctx.say(`    ${line}`);
    const small = median(times[q.small]);
    const large = median(times[q.large]);
    const usesIndex = /campaign_calls_due/.test(plan);
    ctx.say(
      `  claim + record ${BATCH}: median ${fmt(small)} ms with ${SMALL} queued, ${
        fmt(large)
      } ms with ${LARGE}`,
    );
    return [{
      id: "3",
      what: "claim 100: 1M queued / 10k queued",
      ratio: large / small,
      target: "<= 1.5",
      pass: large / small <= 1.5 && usesIndex,
      note: `median of ${BATCHES}: ${fmt(large)} ms vs ${fmt(small)} ms; plan ${
        usesIndex ? "uses" : "does NOT use"
      } campaign_calls_due`,
    }];
  } finally {
    await sql.end();
  }
}

class Rollback extends Error {
  constructor(readonly plan: string) {
    super("rollback");
  }
}
