// Reconciles LiveKit and Twilio towards the database for one number: the row says which
// assistant should own it; this makes exactly that exist and records where it stands.
import { requireAssistant } from "./assistants.ts";
import { takeRateLimit } from "./rate_limit.ts";
import { requireLiveKit } from "./config.ts";
import { asUser, type Sql } from "./db.ts";
import { withLease } from "./lease.ts";
import type { Requester } from "./auth.ts";
import { AppError, NotFoundError, UpstreamError } from "./errors.ts";
import { attachNumber, detachNumber, NotInAccountError, sipCredentials } from "./carrier_trunk.ts";
import { type Deps, withFields } from "./deps.ts";
import {
  ensureDispatchRule,
  ensureInboundTrunk,
  ensureOutboundTrunk,
  findExisting,
  removeStale,
  type TrunkOwner,
} from "./trunks.ts";

export interface NumberRow {
  id: string;
  owner_id: string;
  e164: string;
  twilio_sid: string | null;
  label: string | null;
  assistant_id: string | null;
  trunk_status: "pending" | "ready" | "error" | "released";
  trunk_error: string | null;
  inbound_trunk_id: string | null;
  inbound_trunk_name: string | null;
  outbound_trunk_id: string | null;
  outbound_trunk_name: string | null;
  dispatch_rule_id: string | null;
  provisioned_assistant_id: string | null;
  carrier_trunk: string | null;
}

/** The number as api.md shows it. */
export function numberView(r: NumberRow) {
  return {
    id: r.id,
    e164: r.e164,
    label: r.label,
    assistantId: r.assistant_id,
    twilioSid: r.twilio_sid,
    trunkStatus: r.trunk_status,
    inboundTrunkId: r.inbound_trunk_id,
    inboundTrunkName: r.inbound_trunk_name,
    outboundTrunkId: r.outbound_trunk_id,
    outboundTrunkName: r.outbound_trunk_name,
    dispatchRuleId: r.dispatch_rule_id,
    carrierTrunk: r.carrier_trunk,
    trunkError: r.trunk_error,
  };
}

export function trunkView(r: NumberRow) {
  return {
    phoneNumberId: r.id,
    e164: r.e164,
    assistantId: r.assistant_id,
    trunkStatus: r.trunk_status,
    trunkError: r.trunk_error,
    inboundTrunkId: r.inbound_trunk_id,
    outboundTrunkId: r.outbound_trunk_id,
    outboundTrunkName: r.outbound_trunk_name,
    dispatchRuleId: r.dispatch_rule_id,
    carrierTrunk: r.carrier_trunk,
  };
}

export type NumberKey = { phoneNumberId: string; e164?: string } | { e164: string };

async function loadRow(sql: Sql, key: NumberKey): Promise<NumberRow | null> {
  const where = "phoneNumberId" in key ? sql`id = ${key.phoneNumberId}` : sql`e164 = ${key.e164}`;
  const [row] = await sql<NumberRow[]>`select * from public.phone_number where ${where}`;
  return row ?? null;
}

export interface ProvisionResult {
  row: NumberRow | null;
  error: AppError | null;
}

/**
 * Makes LiveKit (and Twilio) match the row. Serialised per number by a lease (no transaction
 * is held across the HTTP calls), so concurrent calls converge; a change made meanwhile bumps
 * the number's outbox job, which runs again; a failure is recorded on the row, not lost.
 */
export async function provisionNumber(deps: Deps, key: NumberKey): Promise<ProvisionResult> {
  const { config, sql, log } = deps;
  const first = await loadRow(sql, key);
  const e164 = first?.e164 ?? ("e164" in key ? key.e164 : undefined);
  if (!e164) return { row: null, error: null };
  return await withLease(deps, `provision:${e164}`, async () => {
    const row = first ? await loadRow(sql, { phoneNumberId: first.id }) : null;
    const assistant = row?.assistant_id
      ? (await sql<{ id: string; agent_name: string }[]>`
          select id, agent_name from public.assistant where id = ${row.assistant_id}`)[0]
      : undefined;
    const owner: TrunkOwner | null = row && assistant
      ? {
        phoneNumberId: row.id,
        e164,
        assistantId: assistant.id,
        agentName: assistant.agent_name,
        ownerId: row.owner_id,
      }
      : null;
    const l = log.child({ phoneNumberId: row?.id, e164, assistantId: owner?.assistantId ?? null });
    try {
      // Each step commits as it goes: what Twilio holds and what Vault holds never diverge
      // because a later step failed.
      const creds = owner ? await sipCredentials(deps, sql) : null;
      const lk = deps.liveKit;
      const existing = await findExisting(lk, e164);
      const removed = await removeStale(lk, e164, existing, owner);
      if (removed.rules + removed.inbound + removed.outbound > 0) {
        l.info("removed stale trunks", removed);
      }
      if (!owner) {
        await detachNumber(deps, sql, e164);
        if (!row) return { row: null, error: null };
        const [done] = await sql<NumberRow[]>`select * from internal.number_released(${row.id})`;
        l.info("number released");
        return { row: done, error: null };
      }
      let twilioSid: string | null;
      try {
        // The carrier side first: a number the account does not have gets nothing at LiveKit.
        twilioSid = await attachNumber(deps, sql, e164);
      } catch (e) {
        if (e instanceof NotInAccountError) {
          const gone = await removeStale(lk, e164, existing, null);
          if (gone.rules + gone.inbound + gone.outbound > 0) l.info("removed its trunks", gone);
        }
        throw e;
      }
      const inbound = await ensureInboundTrunk(lk, owner, existing);
      const rule = await ensureDispatchRule(lk, owner, inbound.sipTrunkId, existing);
      const { trunk: outbound, updated } = await ensureOutboundTrunk(
        lk,
        owner,
        creds!,
        existing,
        { fingerprintKey: requireLiveKit(config).apiSecret, preferId: row!.outbound_trunk_id },
      );
      if (updated.length > 0) {
        l.info("outbound trunk updated", { outboundTrunkId: outbound.sipTrunkId, fields: updated });
      }
      const [done] = await sql<NumberRow[]>`
        select * from internal.number_ready(${owner.phoneNumberId}, ${owner.assistantId},
          ${twilioSid}, ${inbound.sipTrunkId}, ${inbound.name}, ${outbound.sipTrunkId},
          ${outbound.name}, ${rule.sipDispatchRuleId}, ${outbound.address})`;
      l.info("number ready", {
        inboundTrunkId: inbound.sipTrunkId,
        outboundTrunkId: outbound.sipTrunkId,
      });
      return { row: done, error: null };
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      l.warn("provisioning failed", { code: e.code, details: e.details, message: e.message });
      if (!row) return { row: null, error: e };
      // Given up (the number is not in the carrier account): its trunks gone, the reason stays
      // until its owner changes it. Otherwise retried with the outbox's backoff.
      const [failed] = await sql<NumberRow[]>`
        select * from internal.number_failed(${row.id}, ${e.message}, ${
        e instanceof NotInAccountError
      })`;
      return { row: failed, error: e };
    }
  });
}

interface Job {
  id: string;
  phone_number_id: string | null;
  e164: string;
  attempts: number;
  generation: number;
}

/** Runs one outbox job; returns null when another worker holds it or it is already done. */
export async function runJob(
  deps: Deps,
  jobId: string,
  rounds = 5,
): Promise<(ProvisionResult & { job: Job }) | null> {
  const sql = deps.sql;
  const [job] = await sql<Job[]>`
    select id::text, phone_number_id, e164, attempts, generation
    from internal.claim_provisioning_job(${jobId})`;
  if (!job) return null;
  const key: NumberKey = job.phone_number_id
    ? { phoneNumberId: job.phone_number_id, e164: job.e164 }
    : { e164: job.e164 };
  let result: ProvisionResult;
  try {
    result = await provisionNumber(withFields(deps, { jobId }), key);
  } catch (e) {
    await sql`select internal.provisioning_job_failed(${jobId}, 'internal error', false)`;
    throw e;
  }
  if (result.error) {
    await sql`select internal.provisioning_job_failed(${jobId}, ${result.error.message}, ${
      result.error instanceof NotInAccountError
    })`;
  } else {
    // A change that arrived while we worked bumped the generation: run again for it.
    const [after] = await sql<{ status: string }[]>`
      select internal.provisioning_job_done(${jobId}, ${job.generation}) as status`;
    if (after?.status === "pending" && rounds > 1) {
      return await runJob(deps, jobId, rounds - 1) ?? { job, ...result };
    }
  }
  return { job, ...result };
}

/** Provisions the numbers a requester names (a user reaches only their own, under RLS). */
export async function provisionRequested(
  deps: Deps,
  requester: Requester,
  body: { phoneNumberId: string } | { assistantId: string },
) {
  const sql = deps.sql;
  if (requester.kind === "user") {
    const per = deps.config.provisioningPerMinutePerUser;
    await takeRateLimit(deps, requester.userId, "provisioning", per, "provisioning requests");
  }
  // Which numbers: a user only reaches their own (RLS); the service reaches any.
  const ids = await (requester.kind === "user"
    ? asUser(sql, requester.claims, async (tx) => {
      if ("assistantId" in body) {
        await requireAssistant(sql, tx, body.assistantId);
        return (await tx<
          { id: string }[]
        >`select id from public.phone_number where assistant_id = ${body.assistantId}`)
          .map((r) => r.id);
      }
      const [n] = await tx<
        { id: string }[]
      >`select id from public.phone_number where id = ${body.phoneNumberId}`;
      if (!n) throw new NotFoundError(`Phone number ${body.phoneNumberId} does not exist.`);
      return [n.id];
    })
    : "assistantId" in body
    ? sql<
      { id: string }[]
    >`select id from public.phone_number where assistant_id = ${body.assistantId}`.then((r) =>
      r.map((x) => x.id)
    )
    : Promise.resolve([body.phoneNumberId]));

  const results = [];
  for (const id of ids) {
    results.push(await provisionNumber(deps, { phoneNumberId: id }));
  }
  const trunks = results.flatMap((r) => r.row ? [trunkView(r.row)] : []);
  if ("phoneNumberId" in body && trunks.length === 0) {
    throw new NotFoundError(`Phone number ${body.phoneNumberId} does not exist.`);
  }
  const failed = results.find((r) => r.error);
  if (failed?.error) {
    if (failed.error instanceof UpstreamError) {
      failed.error.details!.trunks = trunks;
    }
    throw failed.error;
  }
  return { trunks };
}

/**
 * Provisions a number just assigned through its open outbox job (so the trigger's poke finds
 * it done instead of reconciling again); directly when no job is open or another worker holds it.
 */
export async function provisionAssigned(deps: Deps, row: NumberRow): Promise<ProvisionResult> {
  const [job] = await deps.sql<{ id: string }[]>`
    select id::text from internal.provisioning_job where e164 = ${row.e164} and status in ('pending', 'running')`;
  const ran = job ? await runJob(deps, job.id) : null;
  return ran ?? await provisionNumber(deps, { phoneNumberId: row.id });
}
