// Row 6: peak RSS of a tick against a campaign with 1,000,000 queued calls, divided by the
// same with 10,000. Each tick runs campaign-tick in a fresh process (the platform gives
// each invocation an isolate) and dials a bounded number of calls; the process's peak
// resident set (VmHWM) is read before it exits.
import {
  callFunction,
  type Ctx,
  fmt,
  median,
  quietly,
  type Row,
  setStatusQuietly,
  startFunctionHost,
} from "./lib.ts";
import { bigQueues, LARGE, resetPacing, SMALL } from "./queue.ts";

const RUNS = 3;
const MAX_CALLS = 300;

export async function memory(ctx: Ctx): Promise<Row[]> {
  const q = await bigQueues(ctx);
  const peaks: Record<string, number[]> = { [q.small]: [], [q.large]: [] };
  const idle: number[] = [];
  const dialed: number[] = [];
  // Only this tick claims: no cron ticks, no webhook pokes.
  await quietly(ctx, async () => {
    await setStatusQuietly(ctx, [q.small, q.large], "running");
    try {
      for (let i = 0; i < RUNS; i++) {
        for (const campaign of i % 2 ? [q.small, q.large] : [q.large, q.small]) {
          await resetPacing(ctx, q);
          const host = await startFunctionHost("campaign-tick");
          try {
            idle.push(host.peakRss());
            const r = await callFunction(ctx.info, "campaign-tick", ctx.info.serviceKey, {
              campaignId: campaign,
              maxCalls: MAX_CALLS,
              budgetSec: 30,
            }, host.url);
            if (r.status !== 200 || r.body.dialed === 0) {
              throw new Error(`campaign-tick: ${r.status} ${JSON.stringify(r.body)}`);
            }
            dialed.push(r.body.dialed);
            peaks[campaign].push(host.peakRss());
          } finally {
            await host.close();
          }
        }
      }
    } finally {
      await setStatusQuietly(ctx, [q.small, q.large], "paused");
    }
  });
  const mb = (b: number) => fmt(b / 2 ** 20, 1);
  const small = median(peaks[q.small]);
  const large = median(peaks[q.large]);
  const base = median(idle);
  ctx.say(
    `  peak RSS: ${mb(small)} MiB with ${SMALL} queued, ${
      mb(large)
    } MiB with ${LARGE} (idle process ${mb(base)} MiB)`,
  );
  return [{
    id: "6",
    what: "tick peak RSS: 1M queued / 10k queued",
    ratio: large / small,
    target: "<= 1.2",
    pass: large / small <= 1.2,
    note: `${mb(large)} vs ${mb(small)} MiB (idle ${mb(base)}); ${Math.min(...dialed)}-${
      Math.max(...dialed)
    } calls dialed per tick, median of ${RUNS}`,
  }];
}
