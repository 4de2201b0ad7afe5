// The campaign engine's tick: claims due calls (the database decides which, and when each
// may be sent), dials each at its slot through the shared dial helper, and hands every
// result back to the database, which schedules retries and completes campaigns.
import { type Deps, withFields } from "../_shared/deps.ts";
import { placeCall } from "../_shared/dial.ts";
import { SLOT_TOLERANCE_MS } from "../_shared/pacing.ts";
import type { Sql } from "../_shared/db.ts";
import { PreconditionError } from "../_shared/errors.ts";
import { reconcileCalls } from "./reconcile.ts";

export interface TickOptions {
  campaignId?: string;
  maxCalls?: number;
  /** How long this tick may keep claiming, in ms. */
  budgetMs?: number;
}

interface Claim {
  campaign_call_id: string;
  campaign_id: string;
  owner_id: string;
  assistant_id: string;
  phone_number_id: string;
  carrier_trunk: string;
  e164: string;
  attempt: number;
  send_at: Date;
  room_name: string;
  participant_identity: string;
  ringing_timeout_sec: number;
  max_call_duration_sec: number;
  allowed_countries: string[];
  variables: Record<string, unknown>;
  name: string | null;
  from_number: string;
  outbound_trunk_id: string;
  agent_name: string;
}

type Result = "dialed" | "failed" | "skipped" | "deferred";

export interface Counts {
  dialed: number;
  failed: number;
  skipped: number;
  deferred: number;
}

/**
 * Dials one isolate keeps under way at once, across all its ticks, shared evenly between the
 * ticks it runs at once (each campaign's start sends one): the first to claim does not take
 * the room of those that follow.
 */
const ISOLATE_MAX_INFLIGHT = 200;
let underWay = 0;
let ticksRunning = 0;

/**
 * The isolate's dials over the last 2 s, and whether each went out later than its claimed slot.
 * When most are late, the machine dials slower than the budget: claims then ask for slots no
 * faster than a little above the rate it does dial, so the slots it takes are met instead of
 * missed and taken again. Otherwise (or with too few dials to judge) the budget alone spaces them.
 */
const sent: { at: number; late: boolean }[] = [];
function noteSent(now: number, slot: Date) {
  sent.push({ at: now, late: now > slot.getTime() + SLOT_TOLERANCE_MS });
  while (sent.length > 0 && sent[0].at < now - 2000) sent.shift();
}
export function dialPace(
  recent: readonly { at: number; late: boolean }[],
  now: number,
): number | null {
  const window = recent.filter((d) => d.at >= now - 2000);
  const late = window.filter((d) => d.late).length;
  return window.length >= 20 && late * 2 > window.length ? (window.length / 2) * 1.25 : null;
}

/** A tick claims this few calls until one of its dials has ended and told it what a dial costs. */
const FIRST_CLAIM = 5;
/** What a dial is assumed to cost in CPU (ms) until the tick has measured its own. */
const PRIOR_CPU_PER_DIAL_MS = 20;
/** The share of the budget claims may plan for; the rest absorbs what the estimate misses. */
const CPU_PLANNED = 0.6;

/**
 * How many more calls the tick may claim within its CPU budget. Until a dial has ended, a few
 * (what a dial costs is not known yet: the first request of an isolate also compiles the code);
 * then what the dials under way and the new ones will cost at the rate measured: everything used
 * so far over the dials that ended, which counts the fixed cost of the tick and the work already
 * done by the dials under way as if each dial had cost it (an overestimate, on purpose).
 */
export function cpuRoom(
  budgetMs: number,
  usedMs: number,
  ended: number,
  underWay: number,
): number {
  const planned = budgetMs * CPU_PLANNED;
  if (ended === 0) {
    return usedMs + (underWay + 1) * PRIOR_CPU_PER_DIAL_MS <= planned
      ? Math.min(
        FIRST_CLAIM - underWay,
        Math.floor((planned - usedMs) / PRIOR_CPU_PER_DIAL_MS) - underWay,
      )
      : 0;
  }
  return Math.floor((planned - usedMs) / (usedMs / ended)) - underWay;
}

/**
 * How many calls a tick claims now (0: wait for a dial to end). The isolate's room is shared
 * evenly between the ticks it runs at once; with dials under way, a claim waits until it is
 * worth a quarter of the tick's share (or all it may still take): a claim per ended dial costs
 * more than the dial's own statements.
 */
export function claimRoom(
  r: { left: number; isolateUnderWay: number; ticks: number; tickUnderWay: number; cpu: number },
): number {
  const share = Math.ceil(ISOLATE_MAX_INFLIGHT / Math.max(1, r.ticks));
  const room = Math.min(
    r.left,
    ISOLATE_MAX_INFLIGHT - r.isolateUnderWay,
    share - r.tickUnderWay,
    r.cpu,
  );
  const worth = Math.min(Math.max(1, Math.floor(share / 4)), r.left, r.cpu);
  return room < worth && r.tickUnderWay > 0 ? 0 : Math.max(0, room);
}

/** The dispatch goes out this long before the dial's slot, so the agent is in the room by then. */
const DISPATCH_LEAD_MS = 1000;

/** Returns an undialed claim to the queue (or to cancelled, if its campaign was cancelled). */
async function giveBack(sql: Sql, c: Claim, reason: string) {
  await sql`select internal.give_back(${c.campaign_call_id}, ${c.attempt}, ${reason})`;
}

async function dialOne(deps: Deps, c: Claim): Promise<Result> {
  const { config, sql, clock } = deps;
  await clock.sleep(c.send_at.getTime() - DISPATCH_LEAD_MS - clock.now());
  let result;
  try {
    result = await placeCall(deps, {
      ownerId: c.owner_id,
      assistantId: c.assistant_id,
      phoneNumberId: c.phone_number_id,
      to: c.e164,
      roomName: c.room_name,
      participantIdentity: c.participant_identity,
      participantName: c.name ?? c.e164,
      metadata: c.variables,
      slot: c.send_at,
      claimed: {
        fromNumber: c.from_number,
        outboundTrunkId: c.outbound_trunk_id,
        agentName: c.agent_name,
      },
      onDialing: () => noteSent(clock.now(), c.send_at),
      ringingTimeoutSec: c.ringing_timeout_sec,
      maxCallDurationSec: c.max_call_duration_sec,
      allowedCountries: c.allowed_countries,
      campaign: {
        campaignId: c.campaign_id,
        campaignCallId: c.campaign_call_id,
        attempt: c.attempt,
      },
    });
  } catch (e) {
    if (!(e instanceof PreconditionError)) throw e;
    // Pause and cancel take effect at once, even for calls claimed a moment ago.
    if (e.code === "campaign_not_running") {
      await giveBack(sql, c, e.message);
      return "deferred";
    }
    if (e.code === "no_outbound_trunk") {
      await giveBack(sql, c, e.message);
      await sql`select internal.pause_campaign(${c.campaign_id}, ${e.message})`;
      return "deferred";
    }
    // Do-not-call or destination checks at dial time: this callee is not called at all.
    await sql`select internal.skip_call(${c.campaign_call_id}, ${c.attempt}, ${e.code}, ${e.message})`;
    return "skipped";
  }
  if (result.duplicate) return "skipped";
  if (result.agentUnavailable) {
    await sql`select internal.agent_unavailable(${c.campaign_call_id}, ${c.attempt}, ${config.agentJoinTimeoutSec})`;
    return "deferred";
  }
  if (result.notDialed) {
    await giveBack(sql, c, "no carrier slot opened in time; requeued");
    return "deferred";
  }
  if (result.error) return "failed";
  return "dialed";
}

/** One tick: claim and dial until nothing is due, maxCalls is reached or the budget runs out. */
export async function tick(deps: Deps, opts: TickOptions) {
  const { config, sql, clock } = deps;
  // Without LiveKit configured this is the 503 naming it, before anything is claimed.
  void deps.liveKit;
  const tickId = crypto.randomUUID();
  const scoped = withFields(deps, { tickId, campaignId: opts.campaignId ?? null });
  const l = scoped.log;
  const deadline = clock.now() + (opts.budgetMs ?? 25_000);
  const maxCalls = opts.maxCalls ?? 10_000;
  const totals: Counts = { dialed: 0, failed: 0, skipped: 0, deferred: 0 };
  const byCampaign = new Map<string, Counts>();
  const inflight = new Set<Promise<void>>();
  let claimedTotal = 0;
  // The tick keeps within its CPU budget whatever the machine's speed: it claims only what it
  // can finish within it, and leaves the rest to the next tick.
  const cpuStart = clock.cpuMs();
  const cpuUsed = () => clock.cpuMs() - cpuStart;
  let ended = 0;
  let stoppedFor: "cpu" | null = null;

  await sql`select internal.release_expired_leases()`;
  await reconcileCalls(scoped);
  ticksRunning++;
  try {
    while (clock.now() < deadline && claimedTotal < maxCalls) {
      // Claim only what this isolate can have under way: under overload the ticks wait for
      // their dials instead of taking slots and calls they cannot use.
      const cpu = cpuRoom(config.tickCpuBudgetMs, cpuUsed(), ended, inflight.size);
      if (cpu <= 0 && inflight.size === 0) {
        stoppedFor = "cpu";
        l.info("tick stopped taking calls: CPU budget", {
          cpuMs: Math.round(cpuUsed()),
          budgetMs: config.tickCpuBudgetMs,
        });
        break;
      }
      const room = claimRoom({
        left: maxCalls - claimedTotal,
        isolateUnderWay: underWay,
        ticks: ticksRunning,
        tickUnderWay: inflight.size,
        cpu,
      });
      if (room <= 0) {
        await (inflight.size > 0 ? Promise.race([...inflight]) : clock.sleep(50));
        continue;
      }
      const claims = await sql<Claim[]>`
        select * from internal.claim_calls(${opts.campaignId ?? null}, ${room}, ${tickId},
          ${config.carrierCps}, max_rate => ${dialPace(sent, clock.now())})`;
      claimedTotal += claims.length;
      for (const c of claims) {
        underWay++;
        const p = dialOne(scoped, c)
          .catch(async (e) => {
            l.error("dial crashed", { campaignCallId: c.campaign_call_id, error: String(e) });
            // With the database away the give-back fails too; the lease then returns the claim.
            // This promise must never reject: nothing may be left without a handler.
            await giveBack(sql, c, "internal error; requeued").catch((g) =>
              l.error("give back failed", { campaignCallId: c.campaign_call_id, error: String(g) })
            );
            return "deferred" as const;
          }).then((r) => {
            totals[r]++;
            const per = byCampaign.get(c.campaign_id) ??
              { dialed: 0, failed: 0, skipped: 0, deferred: 0 };
            per[r]++;
            byCampaign.set(c.campaign_id, per);
          }).finally(() => {
            ended++;
            underWay--;
            inflight.delete(p);
          });
        inflight.add(p);
      }
      if (claims.length > 0) {
        // Claim the next slots once these are nearly due (with time to dispatch their agents).
        const last = Math.max(...claims.map((c) => c.send_at.getTime()));
        await clock.sleep(
          Math.min(last - clock.now() - DISPATCH_LEAD_MS - 200, deadline - clock.now()),
        );
        continue;
      }
      // Nothing claimable: stop when nothing is due; else wait for a free line or slot.
      const [{ due }] = await sql<{ due: boolean }[]>`
        select exists (select from public.campaign_calls cc join public.campaigns c on c.id = cc.campaign_id
          where c.status = 'running' and cc.status = 'queued' and cc.next_attempt_at <= now()
            ${opts.campaignId ? sql`and c.id = ${opts.campaignId}` : sql``}) as due`;
      if (!due) {
        if (inflight.size === 0) break;
        // Dials still under way may give calls back (a missed slot): let them finish, then
        // look again, so nothing waits for the next cron run.
        await Promise.all([...inflight]);
        continue;
      }
      await clock.sleep(Math.min(150, deadline - clock.now()));
    }
  } finally {
    ticksRunning--;
    // Even when a claim fails (the database went away), no dial is abandoned mid-way.
    await Promise.all([...inflight]);
  }

  // Every running campaign this tick could have served is completed if nothing is left.
  const rows = await sql<{ id: string; status: string }[]>`
    select id, status from public.campaigns
    where ${opts.campaignId ? sql`id = ${opts.campaignId}` : sql`status = 'running'`}
      or id = any(${[...byCampaign.keys()]}::uuid[])`;
  for (const r of rows) {
    if (r.status === "running") {
      const [{ done }] = await sql<
        { done: boolean }[]
      >`select internal.maybe_complete(${r.id}) as done`;
      if (done) r.status = "completed";
    }
  }
  const campaigns = rows.map((r) => ({
    id: r.id,
    ...(byCampaign.get(r.id) ?? { dialed: 0, failed: 0, skipped: 0, deferred: 0 }),
    status: r.status,
  }));
  const cpuMs = Math.round(cpuUsed());
  l.info("tick done", { ...totals, cpuMs });
  return {
    ...totals,
    campaigns,
    cpu: {
      usedMs: cpuMs,
      budgetMs: config.tickCpuBudgetMs,
      stoppedTakingCalls: stoppedFor === "cpu",
    },
  };
}
