// Sends queued webhook deliveries. The database hands out lanes (one endpoint each, leased, with
// its next deliveries in order); each lane is worked through one request at a time and every
// attempt goes back to the database, which decides the retry, the backoff and whether the
// endpoint is disabled. Lanes run side by side (bounded), so a slow or dead endpoint only holds
// up its own deliveries.
import type { Clock } from "../_shared/clock.ts";
import type { Deps } from "../_shared/deps.ts";
import { isDatabaseUnavailable } from "../_shared/errors.ts";
import type { Logger } from "../_shared/log.ts";
import { type PinnedSender, postPinned } from "./pinned_http.ts";
import {
  checkWebhookUrl,
  classifyAnswer,
  DELIVERY_TIMEOUT_MS,
  deliveryBody,
  describeSendError,
  type Resolver,
  resolveWithDns,
  signedHeaders,
} from "../_shared/webhooks.ts";

export interface DeliverOptions {
  /** Only this endpoint's lane. */
  endpointId?: string;
  /** How long the run may keep claiming lanes, in ms. */
  budgetMs?: number;
  /** Endpoints sent to at once by this run (the settings cap all runs together). */
  maxLanes?: number;
}

export interface Network {
  /** Sends one delivery to one of the checked addresses; never resolves the URL's name. */
  post: PinnedSender;
  /** Resolves a name for the URL check (the addresses the delivery then connects to). */
  resolve: Resolver;
}

export interface DeliverCounts {
  lanes: number;
  sent: number;
  delivered: number;
  failed: number;
}

interface Pending {
  id: number;
  eventId: string;
  type: string;
  timestamp: string;
  data: unknown;
  attemptCount: number;
}

interface Lane {
  endpoint_id: string;
  url: string;
  secret: string | null;
  deliveries: Pending[] | null;
}

interface Attempt {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  ms: number;
  retryAfterSec: number | null;
  gone: boolean;
}

const DEFAULT_BUDGET_MS = 20_000;
const DEFAULT_MAX_LANES = 8;
/** After the last lane, look again this often (commits whose poke was folded into ours). */
const IDLE_POLL_MS = 250;
const IDLE_POLLS = 2;

/** Retries a statement while the database is briefly away (a restart takes a second or two). */
async function withDatabase<T>(clock: Clock, fn: () => Promise<T>, tries = 6): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!isDatabaseUnavailable(e) || i >= tries) throw e;
      await clock.sleep(250 * 2 ** (i - 1));
    }
  }
}

async function send(
  clock: Clock,
  net: Network,
  lane: Lane,
  target: { url: string; addresses: string[] },
  d: Pending,
): Promise<Attempt> {
  const body = deliveryBody(d.type, d.timestamp, d.data);
  const started = performance.now();
  try {
    // To the checked addresses only (a fresh DNS answer could be internal); redirects are not
    // followed: only the status line and headers are read.
    const res = await net.post({
      url: target.url,
      addresses: target.addresses,
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "voice-lines-webhooks/1",
        ...signedHeaders(lane.secret!, d.eventId, new Date(clock.now()), body),
      },
      body,
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    const answer = classifyAnswer(res.status, res.headers.get("retry-after"), clock.now());
    return {
      ok: answer.ok,
      statusCode: res.status,
      error: answer.ok
        ? null
        : res.status >= 300 && res.status < 400
        ? `answered ${res.status}: redirects are not followed`
        : null,
      ms: Math.round(performance.now() - started),
      retryAfterSec: answer.retryAfterSec,
      gone: answer.gone,
    };
  } catch (e) {
    return {
      ok: false,
      statusCode: null,
      error: describeSendError(e),
      ms: Math.round(performance.now() - started),
      retryAfterSec: null,
      gone: false,
    };
  }
}

/** Works one lane: its deliveries in order, stopping at the first failure (the lane waits with it). */
async function runLane(
  { config, sql, clock }: Pick<Deps, "config" | "sql" | "clock">,
  net: Network,
  runId: string,
  lane: Lane,
  deadline: number,
  counts: DeliverCounts,
  log: Logger,
) {
  const l = log.child({ endpointId: lane.endpoint_id });
  const record = (d: Pending, a: Attempt) =>
    withDatabase(clock, async () => {
      const [row] = await sql<{ go_on: boolean }[]>`
        select internal.record_webhook_attempt(${runId}, ${d.id}, ${a.ok}, ${a.statusCode}, ${a.error},
          ${a.ms}, ${a.retryAfterSec}, ${a.gone}) as go_on`;
      return row.go_on;
    });
  const deliveries = lane.deliveries ?? [];
  let released = false;
  let sent = 0;
  let failure: Attempt | null = null;
  try {
    if (!lane.secret) throw new Error("the endpoint has no signing secret in Vault");
    // Checked again at send time: a name may have been pointed at a private address since.
    const target = await checkWebhookUrl(lane.url, {
      allowLocalhost: config.webhooksAllowLocalhost,
      resolve: net.resolve,
    });
    if (!target.ok) {
      failure = {
        ok: false,
        statusCode: null,
        error: `not sent: the URL ${target.reason}`,
        ms: 0,
        retryAfterSec: null,
        gone: false,
      };
      if (deliveries[0]) {
        await record(deliveries[0], failure);
        released = true;
      }
      counts.failed++;
      return;
    }
    for (const d of deliveries) {
      if (clock.now() >= deadline) break;
      const attempt = await send(clock, net, lane, target, d);
      sent++;
      counts.sent++;
      const goOn = await record(d, attempt);
      if (!attempt.ok) {
        failure = attempt;
        counts.failed++;
        released = true; // the failure gave the lane back with its retry time
        break;
      }
      counts.delivered++;
      if (!goOn) {
        released = true; // the lease was lost or the endpoint went away: nothing to give back
        break;
      }
    }
  } catch (e) {
    l.error("webhook lane stopped", { error: e instanceof Error ? e.message : String(e) });
  } finally {
    if (!released) {
      await withDatabase(
        clock,
        () => sql`select internal.release_webhook_lane(${runId}, ${lane.endpoint_id})`,
      ).catch(() => {/* the lease runs out by itself */});
    }
    // The endpoint's id and the answer, never its URL (which may carry the customer's token).
    const fields = { sent, failedStatus: failure?.statusCode, failedError: failure?.error };
    (failure ? l.warn : l.info)("webhook lane done", fields);
  }
}

/** One run: claims lanes (up to maxLanes at once) and works them until nothing is due or the budget is spent. */
export async function deliverWebhooks(
  { config, sql, log, clock }: Deps,
  opts: DeliverOptions,
  net: Network = { post: (p) => postPinned(p), resolve: resolveWithDns },
): Promise<DeliverCounts> {
  const runId = crypto.randomUUID();
  const deadline = clock.now() + (opts.budgetMs ?? DEFAULT_BUDGET_MS);
  const maxLanes = opts.maxLanes ?? DEFAULT_MAX_LANES;
  const counts: DeliverCounts = { lanes: 0, sent: 0, delivered: 0, failed: 0 };
  const inflight = new Set<Promise<void>>();
  let idle = 0;
  while (clock.now() < deadline) {
    let claimed: Lane[] = [];
    const free = maxLanes - inflight.size;
    if (free > 0) {
      try {
        claimed = await sql<Lane[]>`
          select * from internal.claim_webhook_lanes(${runId}, ${free}, ${
          opts.endpointId ?? null
        })`;
      } catch (e) {
        if (!isDatabaseUnavailable(e)) throw e;
        log.warn("database unavailable; webhook deliveries wait", {
          code: (e as { code?: string }).code,
        });
        await clock.sleep(500);
        continue;
      }
    }
    for (const lane of claimed) {
      counts.lanes++;
      const p: Promise<void> = runLane(
        { config, sql, clock },
        net,
        runId,
        lane,
        deadline,
        counts,
        log,
      )
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    if (claimed.length > 0) {
      idle = 0;
    } else if (inflight.size === 0) {
      if (++idle > IDLE_POLLS) break;
      await clock.sleep(IDLE_POLL_MS);
      continue;
    }
    if (inflight.size > 0) await Promise.race([...inflight, clock.sleep(IDLE_POLL_MS)]);
  }
  await Promise.allSettled([...inflight]);
  return counts;
}
