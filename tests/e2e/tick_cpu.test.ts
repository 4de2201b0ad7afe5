// A campaign tick keeps within its CPU budget whatever the machine's speed: given far more due
// calls than fit, on a machine slowed by two CPU hogs, it stops taking calls in time and leaves
// the rest queued for the next tick.
import assert from "node:assert/strict";
import process from "node:process";
import { tick } from "../../supabase/functions/campaign-tick/tick.ts";
import { startQuietly } from "../helpers/campaigns.ts";
import {
  DEFAULT_CARRIER_CPS,
  functionDeps,
  readyAssistant,
  setCarrierCps,
  sql,
} from "../helpers/stack.ts";

const BUDGET_MS = 500;
const DUE = 10_000;

/**
 * Two processes that keep both cores busy until stopped, and at most a minute: `timeout` ends
 * its busy loop then by itself, and passes on the SIGTERM that stops it sooner.
 */
function cpuHogs() {
  const hogs = [1, 2].map(() =>
    new Deno.Command("timeout", {
      args: ["60", "sh", "-c", "while :; do :; done"],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  return {
    async stop() {
      for (const h of hogs) h.kill("SIGTERM");
      await Promise.all(hogs.map((h) => h.status));
    },
  };
}

Deno.test("a tick given 10,000 due calls on a busy machine stays within its CPU budget and leaves the rest for the next tick", async () => {
  const { user, assistantId, numberId } = await readyAssistant("cpu-budget");
  const [c] = await sql`
    insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, status, window_start,
      window_end, weekdays, max_concurrent, ringing_timeout_sec)
    values (${user.id}, 'CPU budget', ${assistantId}, ${numberId}, 'draft', '00:00', '23:59:59',
      '{1,2,3,4,5,6,7}', 100, 20)
    returning id`;
  // Callees that answer: the emulator picks a callee's outcome by its last three digits, and
  // an ending such as 401 (a refused credential) would pause the campaign (x20 always answers).
  await sql`
    insert into public.campaign_calls (owner_id, campaign_id, e164)
    select ${user.id}, ${c.id}, format('+1917%s', 2000000 + n * 100 + 20)
    from generate_series(0, ${DUE - 1}) n`;
  await startQuietly(c.id);

  // A carrier trunk other tests left backed off would hold the tick back instead of its budget.
  await setCarrierCps(DEFAULT_CARRIER_CPS);
  const deps = functionDeps({ TICK_CPU_BUDGET_MS: String(BUDGET_MS) })();
  const hogs = cpuHogs();
  const before = process.cpuUsage();
  let result;
  try {
    result = await tick(deps, { campaignId: c.id, budgetMs: 60_000 });
  } finally {
    await hogs.stop();
  }
  const used = process.cpuUsage(before);
  const measuredMs = (used.user + used.system) / 1000;
  const [{ queued }] = await sql`
    select count(*)::integer as queued from public.campaign_calls
    where campaign_id = ${c.id} and status = 'queued'`;
  const [after] = await sql`
    select status, status_reason, throttle_reason from public.campaigns where id = ${c.id}`;
  await sql`update public.campaigns set status = 'cancelled' where id = ${c.id}`;
  const handled = result.dialed + result.failed + result.skipped + result.deferred;
  console.log(
    `tick CPU: ${
      measuredMs.toFixed(0)
    } ms measured, ${result.cpu.usedMs} ms by the tick, budget ${BUDGET_MS} ms; ` +
      `${handled} calls handled, ${queued} of ${DUE} left queued for the next tick`,
  );
  assert.equal(
    result.cpu.stoppedTakingCalls,
    true,
    `it stopped taking calls for its CPU budget (tick: ${JSON.stringify(result)}; campaign: ${
      JSON.stringify(after)
    })`,
  );
  assert.ok(result.cpu.usedMs <= BUDGET_MS, `the tick used ${result.cpu.usedMs} ms`);
  assert.ok(
    measuredMs <= BUDGET_MS,
    `the process used ${measuredMs.toFixed(0)} ms during the tick`,
  );
  assert.ok(handled > 0, "it did take calls");
  assert.ok(queued > 0 && queued < DUE, `${queued} calls were left for the next tick`);
  await deps.sql.end();
  // What this test's dials did to the shared carrier trunk's pacing is not the next test's.
  await setCarrierCps(DEFAULT_CARRIER_CPS);
});
