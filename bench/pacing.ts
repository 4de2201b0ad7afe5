// Row 2: each number's calls-per-second budget, as the carrier sees it. Campaigns are
// started the product's way (the status change pokes campaign-tick; pg_cron and finished
// calls poke it again), and the emulator's own INVITE times are counted per wall-clock
// second.
import {
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  type EmulatedCall,
  emulatedCalls,
  eventually,
  fmt,
  type Line,
  provisionLines,
  queueCalls,
  type Row,
} from "./lib.ts";

const BUDGET = 5;
const CALLS_PER_NUMBER = 150;

interface Scenario {
  label: string;
  lines: Line[];
  campaigns: string[];
}

interface PerNumber {
  calls: number;
  /** (calls - 1) / (last INVITE - first INVITE), per second. */
  rate: number;
  /** Wall-clock seconds with more INVITEs than the budget. */
  overBudget: number;
  busiest: number;
}

export function perNumber(calls: EmulatedCall[], budget: number): PerNumber {
  const at = calls.map((c) => c.startedAt).sort((a, b) => a - b);
  const perSecond = new Map<number, number>();
  for (const t of at) {
    const s = Math.floor(t / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  }
  const counts = [...perSecond.values()];
  return {
    calls: at.length,
    rate: at.length > 1 ? (at.length - 1) / ((at.at(-1)! - at[0]) / 1000) : 0,
    overBudget: counts.filter((n) => n > budget).length,
    busiest: Math.max(0, ...counts),
  };
}

async function scenario(
  ctx: Ctx,
  label: string,
  numbers: number,
  campaignsPerNumber: number,
): Promise<Scenario> {
  const user = await createUser(ctx, `bench-pacing-${numbers}`);
  const assistantId = await createAssistant(ctx, user, `pacing-${numbers}-agent`);
  const lines = await provisionLines(ctx, user, assistantId, numbers, BUDGET);
  const campaigns: string[] = [];
  for (const line of lines) {
    for (let k = 0; k < campaignsPerNumber; k++) {
      const c = await createCampaign(
        ctx,
        user,
        assistantId,
        line,
        `${label} ${line.e164} ${k}`,
        { maxConcurrent: 100 },
      );
      // Through the import trigger, as a client's import would be (time zone, window, checks).
      await queueCalls(ctx, c, user.id, CALLS_PER_NUMBER / campaignsPerNumber, {
        areaCode: String(212 + 100 * k),
        viaTrigger: true,
      });
      campaigns.push(c);
    }
  }
  return { label, lines, campaigns };
}

export async function pacing(ctx: Ctx): Promise<Row[]> {
  const one = await scenario(ctx, "1 number", 1, 1);
  const four = await scenario(ctx, "4 numbers x 2 campaigns", 4, 2);
  const all = [...one.campaigns, ...four.campaigns];
  // Both scenarios at once: independent budgets, one engine, many ticks.
  const started = Date.now();
  await ctx.sql`update public.campaigns set status = 'running' where id in ${ctx.sql(all)}`;
  await eventually(
    async () => {
      const [r] = await ctx.sql<{ open: number }[]>`
        select count(*)::int as open from public.campaigns where id in ${
        ctx.sql(all)
      } and status <> 'completed'`;
      return r.open === 0;
    },
    "the pacing campaigns to complete",
    4 * CALLS_PER_NUMBER / BUDGET * 1000,
  );
  ctx.say(`  all campaigns completed in ${fmt((Date.now() - started) / 1000, 1)} s`);
  const calls = await emulatedCalls(ctx.info);
  const rows: Row[] = [];
  for (const s of [one, four]) {
    const results = s.lines.map((l) =>
      perNumber(calls.filter((c) => c.fromNumber === l.e164), BUDGET)
    );
    const worst = results.reduce((a, b) => (b.rate < a.rate ? b : a));
    const over = results.reduce((n, r) => n + r.overBudget, 0);
    const dialed = results.reduce((n, r) => n + r.calls, 0);
    const ratio = worst.rate / BUDGET;
    for (const [i, r] of results.entries()) {
      ctx.say(
        `  ${s.label} ${s.lines[i].e164}: ${r.calls} calls at ${
          fmt(r.rate, 3)
        }/s, busiest second ${r.busiest}, ${r.overBudget} seconds over budget`,
      );
    }
    rows.push({
      id: s.lines.length === 1 ? "2a" : "2b",
      what: `pacing: ${s.label}, rate / budget`,
      ratio,
      target: ">= 0.95, 0 over",
      pass: ratio >= 0.95 && over === 0 && dialed === s.lines.length * CALLS_PER_NUMBER,
      note: `${dialed} calls; slowest number ${
        fmt(worst.rate, 2)
      }/s of ${BUDGET}; ${over} one-second windows over budget (busiest ${
        Math.max(...results.map((r) => r.busiest))
      })`,
    });
  }
  return rows;
}
