// Row 5: what the hosted platform's per-request CPU limit allows. campaign-tick in a fresh
// process whose database connection goes through a counting proxy (bench/lib.ts
// startPgCounter): one unmeasured empty tick (the process compiles its code), one measured
// empty tick (the fixed cost of a tick), then one tick of 1,000 calls. CPU of the function's
// process per tick and per dialed call, the most calls one tick can dial within the limit,
// and database round trips per dialed call (Sync and Query messages), by statement.
import {
  callFunction,
  cpuSeconds,
  createCampaign,
  type Ctx,
  emulatedCalls,
  fmt,
  mutePokes,
  queueCalls,
  quietly,
  type Row,
  setBudget,
  setStatusQuietly,
  startFunctionHost,
  startPgCounter,
} from "./lib.ts";
import { dialFixture, HIGH_CPS } from "./same_work.ts";
import { DEFAULT_TICK_CPU_BUDGET_MS } from "../supabase/functions/_shared/config.ts";

/** Supabase Edge Functions: 2 s of CPU time per request (supabase.com/docs/guides/functions/limits). */
export const CPU_LIMIT_MS = 2000;
const TICK_CALLS = 1000;

export async function hostedLimits(ctx: Ctx): Promise<Row[]> {
  const f = await dialFixture(ctx);
  const line = f.lines[0];
  const campaign = await createCampaign(ctx, f.user, f.assistantId, line, "hosted 1000");
  await queueCalls(ctx, campaign, f.user.id, TICK_CALLS, { areaCode: "718" });
  await mutePokes(ctx, [campaign]);
  const counter = startPgCounter(ctx.info.dbUrl);
  try {
    return await quietly(ctx, async () => {
      // As deployed: the tick's CPU budget is the default, kept against its own process here.
      const host = await startFunctionHost(ctx, "campaign-tick", [], {
        SUPABASE_DB_URL: counter.url,
        TICK_CPU_BUDGET_MS: String(DEFAULT_TICK_CPU_BUDGET_MS),
      });
      try {
        const tick = async (body: Record<string, unknown>) => {
          const cpu0 = cpuSeconds(host.pid);
          const r = await callFunction(
            ctx.info,
            "campaign-tick",
            ctx.info.serviceKey,
            body,
            host.url,
          );
          if (r.status !== 200) {
            throw new Error(`campaign-tick: ${r.status} ${JSON.stringify(r.body)}`);
          }
          return { body: r.body, cpuMs: (cpuSeconds(host.pid) - cpu0) * 1000 };
        };
        // Nothing is running yet: these ticks find nothing to dial.
        await tick({ campaignId: campaign });
        counter.reset();
        const empty = await tick({ campaignId: campaign });
        const emptyTrips = counter.roundTrips();
        await setBudget(ctx, f.lines, HIGH_CPS);
        await setStatusQuietly(ctx, [campaign], "running");
        const before = new Set((await emulatedCalls(ctx.info)).map((c) => c.sipCallId));
        counter.reset();
        const full = await tick({ campaignId: campaign, maxCalls: TICK_CALLS, budgetSec: 60 });
        const trips = counter.roundTrips();
        const statements = [...counter.byStatement()].sort((a, b) => b[1] - a[1]);
        const invites = (await emulatedCalls(ctx.info)).filter((c) =>
          c.fromNumber === line.e164 && !before.has(c.sipCallId)
        ).length;
        const dialed = invites;
        if (dialed === 0) {
          const [c] = await ctx.sql<{ status: string; why: string | null }[]>`
            select status, coalesce(status_reason, throttle_reason) as why
            from public.campaigns where id = ${campaign}`;
          throw new Error(
            `the tick dialed nothing: campaign ${c.status} (${c.why ?? "no reason"})`,
          );
        }
        const perCall = (full.cpuMs - empty.cpuMs) / dialed;
        const most = Math.floor((CPU_LIMIT_MS - empty.cpuMs) / perCall);
        const perDial = (trips - emptyTrips) / dialed;
        ctx.say(
          `  empty tick ${
            fmt(empty.cpuMs, 0)
          } ms CPU, ${emptyTrips} round trips; tick of ${dialed} calls ${
            fmt(full.cpuMs, 0)
          } ms CPU, ${trips} round trips`,
        );
        ctx.say(`  tick answered ${JSON.stringify({ ...full.body, campaigns: undefined })}`);
        ctx.say(`  round trips of that tick by statement (count, first words):`);
        for (const [text, n] of statements.slice(0, 14)) {
          ctx.say(`    ${String(n).padStart(5)}  ${text}`);
        }
        const used = full.body.cpu as {
          usedMs: number;
          budgetMs: number;
          stoppedTakingCalls: boolean;
        };
        const [{ left }] = await ctx.sql<{ left: number }[]>`
          select count(*)::integer as left from public.campaign_calls
          where campaign_id = ${campaign} and status = 'queued'`;
        return [
          {
            id: "5a",
            what: `tick CPU: ${TICK_CALLS} due calls / its ${used.budgetMs} ms budget`,
            ratio: full.cpuMs / used.budgetMs,
            target: "<= 1.0",
            pass: full.cpuMs <= used.budgetMs && full.cpuMs <= CPU_LIMIT_MS && dialed > 0,
            note: `${
              fmt(full.cpuMs, 0)
            } ms CPU (the tick read ${used.usedMs}) for ${dialed} calls, ${
              used.stoppedTakingCalls
                ? `stopped taking calls, ${left} left for the next tick`
                : "all"
            } (${fmt(perCall, 2)} ms/call + ${
              fmt(empty.cpuMs, 0)
            } ms per tick); ~${most} calls fit in ${CPU_LIMIT_MS / 1000} s of CPU here`,
          },
          {
            id: "5b",
            what: "database round trips per dial (hot path)",
            ratio: perDial,
            target: "<= 2",
            pass: perDial <= 2,
            note: `${
              trips - emptyTrips
            } round trips for ${dialed} calls (+ ${emptyTrips} per tick); ${
              statements.slice(0, 4).map(([t, n]) =>
                `${fmt(n / dialed, 1)}x ${t.slice(0, 28)}`
              ).join(
                "; ",
              )
            }`,
          },
        ];
      } finally {
        await host.close();
        await setStatusQuietly(ctx, [campaign], "cancelled");
      }
    });
  } finally {
    counter.close();
  }
}
