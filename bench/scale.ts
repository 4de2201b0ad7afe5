// Row 6: scale. 100 running campaigns of 10,000 queued calls each, on 50 numbers spread over
// 5 carrier trunks, against one running campaign of 10,000 on one of those numbers:
// - the claim: `internal.claim_calls(null, 100, ...)` on one connection, as a tick runs it,
//   then the claimed calls marked completed; the trunks' pacing reset before each batch
//   (this measures the claim, not pacing); median ms per 100 calls claimed;
// - a tick's peak RSS: campaign-tick in a fresh process dialing 300 calls over every
//   running campaign, against a tick of the one campaign;
// - pacing: during the wide ticks, INVITEs per sliding second on each carrier trunk
//   against its budget.
import {
  callFunction,
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  emulatedCalls,
  fmt,
  median,
  mutePokes,
  provisionLines,
  queueCalls,
  quietly,
  type Row,
  setStatusQuietly,
  startFunctionHost,
  superuser,
} from "./lib.ts";

const CAMPAIGNS = 100;
const CONTACTS = 10_000;
const NUMBERS = 50;
const TRUNKS = 5;
const TRUNK_CPS = 100;
/** Each of the 100 campaigns; the single one may have all its calls live at once. */
const MAX_CONCURRENT = 20;
const BATCH = 100;
const BATCHES = 20;
const WARMUP = 3;
const TICK_CALLS = 300;
const TICK_RUNS = 2;

export async function scale(ctx: Ctx): Promise<Row[]> {
  const t = performance.now();
  const user = await createUser(ctx, "bench-scale");
  const assistantId = await createAssistant(ctx, user, "scale-agent");
  const lines = await provisionLines(ctx, user, assistantId, NUMBERS, 1);
  const trunkOf = new Map<string, string>();
  for (const [i, line] of lines.entries()) {
    const trunk = `bench-carrier-${i % TRUNKS}`;
    trunkOf.set(line.e164, trunk);
    await ctx.sql`update public.phone_number set carrier_trunk = ${trunk} where id = ${line.id}`;
  }
  const trunks = [...new Set(trunkOf.values())];
  await ctx.sql`insert into internal.carrier_pacing (carrier_trunk, cps)
    select unnest(${trunks}::text[]), ${TRUNK_CPS}
    on conflict (carrier_trunk) do update set cps = excluded.cps`;
  const wide: string[] = [];
  for (let i = 0; i < CAMPAIGNS; i++) {
    const id = await createCampaign(ctx, user, assistantId, lines[i % NUMBERS], `scale ${i}`, {
      maxConcurrent: MAX_CONCURRENT,
    });
    await queueCalls(ctx, id, user.id, CONTACTS);
    wide.push(id);
  }
  const single = await createCampaign(ctx, user, assistantId, lines[0], "scale single");
  await queueCalls(ctx, single, user.id, CONTACTS);
  await mutePokes(ctx, [...wide, single]);
  await ctx.sql`vacuum analyze public.campaign_calls`;
  ctx.say(
    `  ${CAMPAIGNS} campaigns x ${CONTACTS} + 1 on ${NUMBERS} numbers, ${TRUNKS} trunks: set up in ${
      fmt((performance.now() - t) / 1000, 1)
    } s`,
  );

  const resetPacing = async () => {
    await ctx.sql`update internal.carrier_pacing set next_slot = 'epoch', backoff_level = 0,
      backoff_until = null where carrier_trunk in ${ctx.sql(trunks)}`;
    await ctx.sql`delete from internal.carrier_plan where carrier_trunk in ${ctx.sql(trunks)}`;
  };
  const only = async (running: "wide" | "single") => {
    await setStatusQuietly(ctx, running === "wide" ? [single] : wide, "paused");
    await setStatusQuietly(ctx, running === "wide" ? wide : [single], "running");
  };

  return await quietly(ctx, async () => {
    await setStatusQuietly(ctx, [...wide, single], "running");
    try {
      // The claim, alternating which setup goes first.
      const times = { wide: [] as number[], single: [] as number[] };
      const conn = superuser(ctx.info, 1);
      try {
        for (let i = 0; i < WARMUP + BATCHES; i++) {
          for (const which of i % 2 ? ["wide", "single"] as const : ["single", "wide"] as const) {
            await only(which);
            await resetPacing();
            const t0 = performance.now();
            const claimed = await conn<{ campaign_call_id: string }[]>`
              select campaign_call_id from internal.claim_calls(null, ${BATCH}, ${crypto.randomUUID()}, 1, 2)`;
            await conn`update public.campaign_calls set status = 'completed', completed_at = now(),
                lease_until = null, lease_owner = null
              where id in ${conn(claimed.map((c) => c.campaign_call_id))}`;
            const ms = performance.now() - t0;
            if (claimed.length !== BATCH) {
              throw new Error(`${which}: claimed ${claimed.length} of ${BATCH}`);
            }
            if (i >= WARMUP) times[which].push(ms);
          }
        }
      } finally {
        await conn.end();
      }
      const claimWide = median(times.wide);
      const claimSingle = median(times.single);
      ctx.say(
        `  claim + record ${BATCH}: median ${fmt(claimWide)} ms over ${CAMPAIGNS} campaigns, ${
          fmt(claimSingle)
        } ms over one`,
      );

      // The tick's memory, and pacing on every trunk during the wide ticks.
      const peaks = { wide: [] as number[], single: [] as number[] };
      const windows = new Map<string, number>();
      const rates = new Map<string, number[]>();
      for (let i = 0; i < TICK_RUNS; i++) {
        for (const which of i % 2 ? ["single", "wide"] as const : ["wide", "single"] as const) {
          await only(which);
          await resetPacing();
          const before = new Set((await emulatedCalls(ctx.info)).map((c) => c.sipCallId));
          const host = await startFunctionHost(ctx, "campaign-tick");
          try {
            const r = await callFunction(ctx.info, "campaign-tick", ctx.info.serviceKey, {
              ...(which === "single" ? { campaignId: single } : {}),
              maxCalls: TICK_CALLS,
              budgetSec: 30,
            }, host.url);
            if (r.status !== 200 || r.body.dialed === 0) {
              throw new Error(`campaign-tick: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
            }
            peaks[which].push(host.peakRss());
          } finally {
            await host.close();
          }
          if (which !== "wide") continue;
          const calls = (await emulatedCalls(ctx.info)).filter((c) =>
            trunkOf.has(c.fromNumber) && !before.has(c.sipCallId)
          );
          for (const trunk of trunks) {
            const at = calls.filter((c) => trunkOf.get(c.fromNumber) === trunk).map((c) =>
              c.startedAt
            ).sort((a, b) => a - b);
            let busiest = 0;
            for (let a = 0, b = 0; a < at.length; a++) {
              while (b < at.length && at[b] < at[a] + 1000) b++;
              busiest = Math.max(busiest, b - a);
            }
            windows.set(trunk, Math.max(windows.get(trunk) ?? 0, busiest));
            if (at.length > 1) {
              rates.set(trunk, [
                ...(rates.get(trunk) ?? []),
                (at.length - 1) / ((at[at.length - 1] - at[0]) / 1000),
              ]);
            }
          }
        }
      }
      const mb = (b: number) => fmt(b / 2 ** 20, 1);
      const memWide = median(peaks.wide);
      const memSingle = median(peaks.single);
      const busiest = Math.max(...windows.values());
      const slowest = Math.min(...[...rates.values()].flat());
      ctx.say(
        `  tick of ${TICK_CALLS}: peak RSS ${mb(memWide)} MiB over ${CAMPAIGNS} campaigns, ${
          mb(memSingle)
        } MiB over one; busiest second per trunk ${
          JSON.stringify(Object.fromEntries(windows))
        } (budget ${TRUNK_CPS})`,
      );
      return [
        {
          id: "6a",
          what: `claim 100: ${CAMPAIGNS} campaigns, ${TRUNKS} trunks / one campaign`,
          ratio: claimWide / claimSingle,
          target: "<= 1.5",
          pass: claimWide / claimSingle <= 1.5,
          note: `median of ${BATCHES}: ${fmt(claimWide)} vs ${fmt(claimSingle)} ms (${
            CAMPAIGNS * CONTACTS
          } queued; ${MAX_CONCURRENT} live per campaign, so a claim spans ${
            BATCH / MAX_CONCURRENT
          } campaigns)`,
        },
        {
          id: "6b",
          what: `tick peak RSS: ${CAMPAIGNS} campaigns / one campaign`,
          ratio: memWide / memSingle,
          target: "<= 1.2",
          pass: memWide / memSingle <= 1.2,
          note: `${mb(memWide)} vs ${
            mb(memSingle)
          } MiB; ${TICK_CALLS} calls per tick, median of ${TICK_RUNS}`,
        },
        {
          id: "6c",
          what: `pacing on each of ${TRUNKS} trunks: busiest second / budget`,
          ratio: busiest / TRUNK_CPS,
          target: "<= 1.0",
          pass: busiest <= TRUNK_CPS,
          note: `busiest sliding second ${busiest} INVITEs at ${TRUNK_CPS}/s; slowest trunk ${
            fmt(slowest, 0)
          }/s while dialing`,
        },
      ];
    } finally {
      await setStatusQuietly(ctx, [...wide, single], "cancelled");
    }
  });
}
