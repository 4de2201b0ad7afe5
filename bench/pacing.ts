// Row 2: each carrier trunk's calls-per-second budget, as the carrier sees it (budgets
// belong to carrier trunks; each scenario's numbers get a trunk of their own, with
// BUDGET per number). Campaigns are
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
  const trunk = `bench-pacing-${numbers}`;
  await ctx.sql`update public.phone_number set carrier_trunk = ${trunk}
    where id in ${ctx.sql(lines.map((l) => l.id))}`;
  await ctx.sql`insert into internal.carrier_pacing (carrier_trunk, cps)
    values (${trunk}, ${
    BUDGET * numbers
  }) on conflict (carrier_trunk) do update set cps = excluded.cps`;
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
    const budget = BUDGET * s.lines.length;
    const from = new Set(s.lines.map((l) => l.e164));
    const r = perNumber(calls.filter((c) => from.has(c.fromNumber)), budget);
    const ratio = r.rate / budget;
    ctx.say(
      `  ${s.label}: ${r.calls} calls at ${
        fmt(r.rate, 3)
      }/s of ${budget}, busiest second ${r.busiest}, ${r.overBudget} seconds over budget`,
    );
    rows.push({
      id: s.lines.length === 1 ? "2a" : "2b",
      what: `pacing: ${s.label}, trunk rate / budget`,
      ratio,
      target: ">= 0.95, 0 over",
      pass: ratio >= 0.95 && r.overBudget === 0 && r.calls === s.lines.length * CALLS_PER_NUMBER,
      note: `${r.calls} calls at ${
        fmt(r.rate, 2)
      }/s on a ${budget}/s trunk; ${r.overBudget} wall-clock seconds over budget (busiest ${r.busiest})`,
    });
  }
  return rows;
}
