// Placing a call and recording what happens to it. One dial helper serves create-participant
// and the campaign engine: resolve the assistant's ready outbound trunk, check the callee,
// write the call record, dispatch the agent into a fresh room, then dial.
import { DisconnectReason, ParticipantInfo_Kind } from "@livekit/protocol";
import type { WebhookEvent } from "livekit-server-sdk";
import type { Config } from "./config.ts";
import { asService, type Sql, type Tx } from "./db.ts";
import { type AppError, NotFoundError, PreconditionError, UpstreamError } from "./errors.ts";
import { describeLiveKitError, type LiveKit } from "./livekit.ts";
import type { Logger } from "./log.ts";
import {
  applyEvent,
  type CallEvent,
  type CallStatus,
  durationSec,
  isFinal,
  type Mapped,
  outcomeFromError,
} from "./outcomes.ts";
import { checkDestination } from "./phone.ts";

export interface CallRow {
  id: string;
  owner_id: string;
  assistant_id: string | null;
  phone_number_id: string | null;
  campaign_id: string | null;
  campaign_call_id: string | null;
  attempt: number | null;
  from_number: string;
  to_number: string;
  room_name: string;
  participant_identity: string;
  participant_id: string | null;
  sip_call_id: string | null;
  dispatch_id: string | null;
  outbound_trunk_id: string;
  status: CallStatus;
  outcome: string | null;
  sip_status_code: number | null;
  sip_status: string | null;
  disconnect_reason: string | null;
  error: string | null;
  answered_at: Date | null;
  ended_at: Date | null;
  duration_sec: number | null;
}

export function callView(c: CallRow) {
  return {
    id: c.id,
    roomName: c.room_name,
    participantId: c.participant_id,
    participantIdentity: c.participant_identity,
    sipCallId: c.sip_call_id,
    outboundTrunkId: c.outbound_trunk_id,
    fromNumber: c.from_number,
    toNumber: c.to_number,
    status: c.status,
    outcome: c.outcome,
  };
}

export interface DialInput {
  ownerId: string;
  /** The assistant whose agent talks; its ready outbound trunk dials. */
  assistantId?: string | null;
  /** Service callers may name the outbound trunk instead. */
  outboundTrunkId?: string | null;
  /** Campaigns dial from a chosen number of the assistant. */
  phoneNumberId?: string | null;
  to: string;
  roomName?: string;
  participantName?: string;
  participantIdentity?: string;
  metadata?: Record<string, unknown>;
  waitUntilAnswered?: boolean;
  ringingTimeoutSec?: number;
  maxCallDurationSec?: number;
  /** Narrows the account's allowed destination countries (a campaign's list). */
  allowedCountries?: readonly string[];
  campaign?: { campaignId: string; campaignCallId: string; attempt: number };
}

export interface DialResult {
  call: CallRow;
  /** The attempt's room already existed: it was dialed before and is not dialed again. */
  duplicate: boolean;
  error: AppError | null;
  mapped: Mapped | null;
}

interface Trunk {
  phone_number_id: string;
  e164: string;
  outbound_trunk_id: string;
  owner_id: string;
  assistant_id: string;
  agent_name: string;
  /** The callee is on the owner's do-not-call list. */
  dnc: boolean;
}

/** Callee checks that need no database: a valid number in an allowed country. */
export function checkDestinationAllowed(config: Config, to: string, narrow?: readonly string[]) {
  const allowed = narrow
    ? config.allowedCountries.filter((c) => narrow.includes(c))
    : config.allowedCountries;
  const dest = checkDestination(to, allowed);
  if (!dest.ok) {
    throw new PreconditionError("destination_not_allowed", `Cannot call ${to}: ${dest.reason}.`, {
      allowed,
    });
  }
}

/**
 * The ready outbound trunk and caller number for the call, with the do-not-call check in the
 * same statement; 422 no_outbound_trunk or do_not_call otherwise.
 */
async function resolveTrunk(sql: Sql, input: DialInput): Promise<Trunk> {
  const rows = await sql<Trunk[]>`
    select p.id as phone_number_id, p.e164, p.outbound_trunk_id, p.owner_id, a.id as assistant_id, a.agent_name,
      exists (select from public.do_not_call d where d.owner_id = p.owner_id and d.e164 = ${input.to}) as dnc
    from public.phone_number p join public.assistant a on a.id = p.assistant_id
    where p.owner_id = ${input.ownerId}
      and p.trunk_status = 'ready' and p.outbound_trunk_id is not null
      ${input.assistantId ? sql`and a.id = ${input.assistantId}` : sql``}
      ${input.outboundTrunkId ? sql`and p.outbound_trunk_id = ${input.outboundTrunkId}` : sql``}
      ${input.phoneNumberId ? sql`and p.id = ${input.phoneNumberId}` : sql``}
    order by p.e164 limit 1`;
  const trunk = rows[0];
  if (trunk?.dnc) {
    throw new PreconditionError(
      "do_not_call",
      `${input.to} is on the do-not-call list; remove it there to call it.`,
    );
  }
  if (trunk) return trunk;
  const who = input.assistantId
    ? `Assistant ${input.assistantId}`
    : `Outbound trunk ${input.outboundTrunkId}`;
  throw new PreconditionError(
    "no_outbound_trunk",
    `${who} has no number with a ready outbound trunk${
      input.phoneNumberId ? ` (number ${input.phoneNumberId})` : ""
    }. ` +
      "Assign a number to the assistant with map-number and wait until its trunkStatus is ready.",
  );
}

const FINISHED_SQL = (tx: Tx, id: string, retryable: boolean | null) =>
  tx`select internal.call_finished(${id}, ${retryable})`;

/** Writes the call record, dispatches the agent, dials, and records the result. */
export async function placeCall(
  config: Config,
  sql: Sql,
  lk: LiveKit,
  input: DialInput,
  log: Logger,
): Promise<DialResult> {
  // Two statements before dialing (this path runs for every campaign call).
  checkDestinationAllowed(config, input.to, input.allowedCountries);
  const trunk = await resolveTrunk(sql, input);
  const id = crypto.randomUUID();
  const room = input.roomName ?? `out-${trunk.assistant_id.slice(0, 8)}-${id}`;
  const identity = input.participantIdentity ?? `sip-${id}`;
  const [inserted] = await sql<CallRow[]>`
    insert into public.outbound_calls (id, owner_id, assistant_id, phone_number_id, campaign_id, campaign_call_id,
      attempt, from_number, to_number, room_name, participant_identity, outbound_trunk_id)
    values (${id}, ${trunk.owner_id}, ${trunk.assistant_id}, ${trunk.phone_number_id},
      ${input.campaign?.campaignId ?? null}, ${input.campaign?.campaignCallId ?? null}, ${
    input.campaign?.attempt ?? null
  },
      ${trunk.e164}, ${input.to}, ${room}, ${identity}, ${trunk.outbound_trunk_id})
    on conflict (room_name) do nothing returning *`;
  const prepared = inserted ? { call: inserted, duplicate: false } : {
    call: (await sql<CallRow[]>`select * from public.outbound_calls where room_name = ${room}`)[0],
    duplicate: true,
  };
  const { duplicate } = prepared;
  let call = prepared.call;
  if (duplicate) return { call, duplicate, error: null, mapped: null };
  const l = log.child({
    callId: call.id,
    assistantId: trunk.assistant_id,
    roomName: call.room_name,
    campaignCallId: input.campaign?.campaignCallId,
  });

  const metadata = {
    ...(input.metadata ?? {}),
    assistantId: trunk.assistant_id,
    callId: call.id,
    campaignId: input.campaign?.campaignId ?? null,
    campaignCallId: input.campaign?.campaignCallId ?? null,
    to: input.to,
    from: trunk.e164,
  };
  let step = "dispatch the agent";
  let dispatchId: string | null = null;
  let placed: { participantId: string; sipCallId: string };
  try {
    const dispatch = await lk.dispatch.createDispatch(call.room_name, trunk.agent_name, {
      metadata: JSON.stringify(metadata),
    });
    dispatchId = dispatch.id;
    step = "dial";
    const p = await lk.sip.createSipParticipant(trunk.outbound_trunk_id, input.to, call.room_name, {
      participantIdentity: call.participant_identity,
      participantName: input.participantName ?? input.to,
      participantMetadata: JSON.stringify(metadata),
      participantAttributes: {
        callId: call.id,
        assistantId: trunk.assistant_id,
        ...(input.campaign ? { campaignCallId: input.campaign.campaignCallId } : {}),
      },
      fromNumber: trunk.e164,
      waitUntilAnswered: input.waitUntilAnswered ?? false,
      ringingTimeout: input.ringingTimeoutSec ?? config.ringingTimeoutSec,
      maxCallDuration: input.maxCallDurationSec ?? config.maxCallDurationSec,
      krispEnabled: true,
    });
    placed = p;
  } catch (e) {
    const f = describeLiveKitError(e);
    const mapped = outcomeFromError(f);
    l.warn("call failed", {
      step,
      upstreamCode: f.code,
      upstreamStatus: f.status,
      sipStatusCode: f.sipStatusCode,
      outcome: mapped.outcome,
    });
    call = await asService(sql, async (tx) => {
      const [row] = await tx<CallRow[]>`
        update public.outbound_calls set status = case when status in ('dialing', 'ringing', 'in_progress')
            then ${mapped.status}::public.call_status else status end,
          outcome = coalesce(outcome, ${mapped.outcome}), sip_status_code = ${f.sipStatusCode}, sip_status = ${f.sipStatus},
          error = ${`${step}: ${f.message}`}, ended_at = coalesce(ended_at, now()),
          dispatch_id = coalesce(dispatch_id, ${dispatchId})
        where id = ${call.id} returning *`;
      if (row.campaign_call_id) await FINISHED_SQL(tx, row.id, mapped.retryable);
      return row;
    });
    // The room was made for this call; do not leave the agent waiting in it.
    lk.rooms.deleteRoom(call.room_name).catch(() => {});
    const error = new UpstreamError(
      "livekit",
      `Cannot ${step} ${input.to}: ${
        f.sipStatusCode ? `SIP ${f.sipStatusCode} ${f.sipStatus ?? ""}`.trim() : f.message
      } (${mapped.outcome})`,
      f.code,
      f.status,
      {
        sipStatusCode: f.sipStatusCode,
        sipStatus: f.sipStatus,
        outcome: mapped.outcome,
        callId: call.id,
      },
    );
    return { call, duplicate: false, error, mapped };
  }

  // Dialed. Record it; a database that is briefly away is retried, and what this misses the
  // webhooks fill in (a successful dial is never treated as a failed one).
  const p = placed;
  const wait = input.waitUntilAnswered ?? false;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      // A webhook may have moved the call already: only fill in, never regress.
      [call] = await sql<CallRow[]>`
        update public.outbound_calls set dispatch_id = ${dispatchId}, participant_id = ${p.participantId},
          sip_call_id = ${p.sipCallId},
          status = case when ${wait} and status in ('dialing', 'ringing')
                        then 'in_progress'::public.call_status else status end,
          answered_at = case when ${wait} then coalesce(answered_at, now()) else answered_at end,
          outcome = case when ${wait} and outcome is null then 'answered' else outcome end
        where id = ${call.id} returning *`;
      break;
    } catch (e) {
      l.warn("call placed, record not updated yet", {
        attempt,
        error: e instanceof Error ? e.message : String(e),
      });
      if (attempt === 3) {
        call = {
          ...call,
          dispatch_id: dispatchId,
          participant_id: p.participantId,
          sip_call_id: p.sipCallId,
        };
      } else {
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }
  l.info("call placed", { participantId: p.participantId, sipCallId: p.sipCallId });
  return { call, duplicate: false, error: null, mapped: null };
}

const FAILURE_REASONS = new Set(["USER_REJECTED", "USER_UNAVAILABLE", "SIP_TRUNK_FAILURE"]);

/** What a LiveKit webhook means for the call in its room, if any. */
export function eventFor(
  call: Pick<CallRow, "participant_identity">,
  ev: WebhookEvent,
): CallEvent | null {
  const at = new Date(Number(ev.createdAt ?? 0n) * 1000 || Date.now());
  const p = ev.participant;
  const isOurs = !!p && p.identity === call.participant_identity &&
    p.kind === ParticipantInfo_Kind.SIP;
  const status = p?.attributes?.["sip.callStatus"];
  switch (ev.event) {
    case "participant_joined":
      if (!isOurs) return null;
      if (status === "active") return { kind: "answered", at };
      return status === "ringing" ? { kind: "ringing", at } : null;
    case "track_published":
      return isOurs ? { kind: "answered", at } : null;
    case "participant_left":
    case "participant_connection_aborted":
      if (!isOurs) return null;
      {
        const reason = DisconnectReason[p!.disconnectReason] ?? "UNKNOWN_REASON";
        // "hangup" follows "active": a call that was answered and then ended normally.
        const answered = status === "active" ||
          (status === "hangup" && !FAILURE_REASONS.has(reason));
        return { kind: "left", at, reason, answered };
      }
    case "room_finished":
      return { kind: "room_finished", at };
    default:
      return null;
  }
}

/** Stores a verified webhook once (by event id) and moves its call forward. */
export async function recordWebhook(sql: Sql, ev: WebhookEvent, log: Logger) {
  const room = ev.room?.name ?? "";
  return await asService(sql, async (tx) => {
    const [call] = room
      ? await tx<
        CallRow[]
      >`select * from public.outbound_calls where room_name = ${room} for update`
      : [];
    const [stored] = await tx`
      insert into public.call_events (event_id, owner_id, call_id, event, room_name, participant_identity, payload, created_at)
      values (${ev.id}, ${call?.owner_id ?? null}, ${call?.id ?? null}, ${ev.event}, ${
      room || null
    },
        ${ev.participant?.identity ?? null}, ${tx.json(JSON.parse(ev.toJsonString()))},
        to_timestamp(${Number(ev.createdAt ?? 0n)}))
      on conflict (event_id) do nothing returning id`;
    if (!stored) return { duplicate: true, callId: call?.id ?? null, status: call?.status ?? null };
    if (!call) return { duplicate: false, callId: null, status: null };
    const event = eventFor(call, ev);
    const next = event &&
      applyEvent(
        { status: call.status, answeredAt: call.answered_at, endedAt: call.ended_at },
        event,
      );
    if (!next) return { duplicate: false, callId: call.id, status: call.status };
    const reason = event?.kind === "left" ? event.reason : null;
    const [row] = await tx<CallRow[]>`
      update public.outbound_calls set status = ${next.status}, answered_at = ${next.answeredAt}, ended_at = ${next.endedAt},
        outcome = coalesce(${next.outcome}, outcome), disconnect_reason = coalesce(${reason}, disconnect_reason),
        duration_sec = ${durationSec(next.answeredAt, next.endedAt)},
        participant_id = coalesce(participant_id, ${ev.participant?.sid || null})
      where id = ${call.id} returning *`;
    if (row.campaign_call_id && row.status === "in_progress") {
      await tx`update public.campaign_calls set status = 'in_progress'
        where id = ${row.campaign_call_id} and status = 'dialing' and attempts = ${row.attempt}`;
    }
    if (isFinal(row.status) && !isFinal(call.status)) {
      log.info("call ended", {
        callId: row.id,
        status: row.status,
        outcome: row.outcome,
        disconnectReason: reason,
      });
      if (row.campaign_call_id) await FINISHED_SQL(tx, row.id, next.retryable);
    }
    return { duplicate: false, callId: row.id, status: row.status };
  });
}

/** Resolves the caller's assistant under their own rights (another user's is simply not found). */
export async function requireAssistant(tx: Tx, assistantId: string) {
  const [a] = await tx<
    { id: string; owner_id: string }[]
  >`select id, owner_id from public.assistant where id = ${assistantId}`;
  if (!a) throw new NotFoundError(`Assistant ${assistantId} does not exist.`);
  return a;
}
