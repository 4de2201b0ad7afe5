// Row 3: overload. The tick at a budget the machine can sustain (0.9 x row 1's measured
// rate), then at 10 x that budget: slots given back per call, and the overloaded rate
// against the sustainable one.
import { type Ctx, fmt, type Row } from "./lib.ts";
import { cpuTotal, describe, HIGH_CPS, tickAtHigh, tickRun } from "./same_work.ts";

export async function overload(ctx: Ctx): Promise<Row[]> {
  const capacity = (await tickAtHigh(ctx)).perSecond;
  const sustainable = Math.max(10, Math.floor(capacity * 0.9 / 10) * 10);
  const calm = await tickRun(ctx, sustainable, Math.round(sustainable * 4));
  const misses = (m: typeof calm) =>
    `${m.deferred} given back, ${m.retaken} slots missed and taken again, ${m.claims} claims`;
  ctx.say(`  budget ${sustainable}/s: ${describe(calm)}; ${misses(calm)}`);
  const busy = await tickRun(ctx, sustainable * 10, 1200);
  ctx.say(`  budget ${sustainable * 10}/s: ${describe(busy)}; ${misses(busy)}`);
  // A claimed slot is wasted when its call is given back or its dial, late, takes another.
  const back = (busy.deferred + busy.retaken) / busy.calls;
  const rate = busy.perSecond / calm.perSecond;
  return [
    {
      id: "3a",
      what: "overload 10x: slots given back / calls",
      ratio: back,
      target: "<= 0.01",
      pass: back <= 0.01,
      note:
        `${busy.deferred} calls given back + ${busy.retaken} slots missed (dial late, slot taken again) for ${busy.calls} calls at a budget of ${
          sustainable * 10
        }/s (row 1: ${fmt(capacity, 0)} calls/s at ${HIGH_CPS}/s)`,
    },
    {
      id: "3b",
      what: "overload 10x: calls/s / at a sustainable budget",
      ratio: rate,
      target: ">= 0.9",
      pass: rate >= 0.9,
      note: `${fmt(busy.perSecond, 0)} vs ${
        fmt(calm.perSecond, 0)
      } calls/s at ${sustainable}/s (${calm.deferred} given back); CPU/call ${
        fmt(cpuTotal(busy), 1)
      } vs ${fmt(cpuTotal(calm), 1)} ms`,
    },
  ];
}
