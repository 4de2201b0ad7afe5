// Running campaigns from tests: import as the owner, start without the trigger's poke, tick as
// pg_cron would, and wait for a campaign to settle, failing on a stall (no call ended and
// nothing changed for a while), never on a total deadline: a loaded machine is slow, a stuck
// engine is stuck.
import { asUser, call, sql, stack, type TestUser } from "./stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** The import RPC a client calls, run under the user's RLS. */
export async function importAs(user: TestUser, campaignId: string, contacts: Json[]) {
  const [r] = await asUser(
    user,
    (tx) => tx`select public.add_campaign_calls(${campaignId}, ${tx.json(contacts)}) as r`,
  );
  return r.r;
}

/** Starts the campaign without the trigger's poke, so the test decides when ticks run. */
export async function startQuietly(campaignId: string) {
  await sql.begin(async (tx) => {
    await tx`alter table public.campaigns disable trigger changed`;
    await tx`update public.campaigns set status = 'running' where id = ${campaignId}`;
    await tx`alter table public.campaigns enable trigger changed`;
  });
}

/** campaign-tick with the service key, as pg_cron calls it. */
export function tick(body: Record<string, unknown>) {
  return call("campaign-tick", { token: stack.serviceKey, body });
}

export async function progress(campaignId: string): Promise<Json> {
  const [p] = await sql`select * from public.campaign_progress where campaign_id = ${campaignId}`;
  return p;
}

/** Where a campaign stands, printed so that a failure can be read from the log alone. */
export async function explain(campaignId: string) {
  const [c] = await sql`select status, status_reason, throttle_reason, agent_limit
    from public.campaigns where id = ${campaignId}`;
  const calls = await sql`select status, outcome, count(*)::int as n from public.outbound_calls
    where campaign_id = ${campaignId} group by 1, 2 order by 3 desc`;
  const stuck = await sql`select status, lease_until, last_error from public.campaign_calls
    where campaign_id = ${campaignId} and status in ('dialing', 'in_progress', 'queued') limit 5`;
  console.log(JSON.stringify({ campaign: c, progress: await progress(campaignId), calls, stuck }));
}

export interface SettleOptions {
  /** Run this tick body before each look (the test drives the engine itself). */
  tick?: Record<string, unknown>;
  /** Fail when nothing moved for this long. */
  stallSec?: number;
  /** Sees every look at the progress row. */
  each?: (p: Json) => void;
}

/**
 * Waits until the campaign is `status` with no call live; fails, saying where it stands, when
 * no call of it ended and nothing about it changed for `stallSec`.
 */
export async function settled(
  campaignId: string,
  status = "completed",
  opts: SettleOptions = {},
): Promise<Json> {
  const stallMs = (opts.stallSec ?? 60) * 1000;
  let seen = "";
  let movedAt = Date.now();
  // A bound on the loop itself, far beyond any stall: every loop here ends.
  for (let look = 0; look < 100_000; look++) {
    if (opts.tick) {
      const res = await tick({ campaignId, ...opts.tick });
      if (res.status !== 200) throw new Error(`campaign-tick answered ${res.status}`);
    }
    const p = await progress(campaignId);
    opts.each?.(p);
    if (p.status === status && p.dialing + p.in_progress === 0) return p;
    const [{ ended, dials }] = await sql`select
        count(*) filter (where ended_at is not null)::int as ended, count(*)::int as dials
      from public.outbound_calls where campaign_id = ${campaignId}`;
    const now = `${p.status} ${ended} ${dials} ${p.queued} ${p.retrying}`;
    if (now !== seen) {
      seen = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > stallMs) {
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await explain(campaignId);
  throw new Error(`campaign ${campaignId} is not ${status} and made no progress for ${stallMs} ms`);
}

const SPECIAL = new Set(["401", "403", "404", "408", "480", "486", "503", "603"]);

/** Callees that answer (per the emulator's outcome table), unique per prefix. */
export function answering(prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const line = String(i).padStart(4, "0");
    if (SPECIAL.has(line.slice(1)) || line.slice(1) >= "900") continue;
    out.push(`+1${prefix}${line}`);
  }
  return out;
}
