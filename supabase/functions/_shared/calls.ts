// Placing a call and recording what happens to it. One dial helper serves create-participant
// and the campaign engine: resolve the assistant's ready outbound trunk, check the callee,
// write the call record, dispatch the agent into a fresh room, then dial.
import { DisconnectReason, ParticipantInfo_Kind, TrackType } from "@livekit/protocol";
import type { ParticipantInfo, WebhookEvent } from "livekit-server-sdk";
import type { Config } from "./config.ts";
import type { Clock } from "./clock.ts";
import type { Deps } from "./deps.ts";
import { asService, type Sql, type Tx } from "./db.ts";
import {
  AppError,
  isDatabaseUnavailable,
  PreconditionError,
  RateLimitError,
  UpstreamError,
} from "./errors.ts";
import {
  describeLiveKitError,
  DIAL_TIMEOUT_SEC,
  type LiveKitFailure,
  roomToken,
} from "./livekit.ts";
import type { Logger } from "./log.ts";
import {
  applyEvent,
  type CallEvent,
  type CallState,
  type CallStatus,
  durationSec,
  isFinal,
  type Mapped,
  type Outcome,
  outcomeFromDisconnect,
  outcomeFromError,
  type Transition,
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
  carrier_trunk: string | null;
  status: CallStatus;
  outcome: string | null;
  sip_status_code: number | null;
  sip_status: string | null;
  disconnect_reason: string | null;
  error: string | null;
  answered_at: Date | null;
  ended_at: Date | null;
  duration_sec: number | null;
  dialed_at: Date | null;
  dial_returned_at: Date | null;
  checked_at: Date | null;
  created_at: Date;
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
  /** Service requesters may name the outbound trunk instead. */
  outboundTrunkId?: string | null;
  /** Campaigns dial from a chosen number of the assistant. */
  phoneNumberId?: string | null;
  to: string;
  roomName?: string;
  participantName?: string;
  participantIdentity?: string;
  metadata?: Record<string, unknown>;
  ringingTimeoutSec?: number;
  maxCallDurationSec?: number;
  /** Narrows the account's allowed destination countries (a campaign's list). */
  allowedCountries?: readonly string[];
  campaign?: { campaignId: string; campaignCallId: string; attempt: number };
  /** The carrier trunk's send slot, when already taken (the campaign claim hands them out). */
  slot?: Date;
  /** Told when the dial goes out (the SIP participant joins the room a moment later). */
  onDialing?: (call: CallRow) => void;
}

export interface DialResult {
  call: CallRow;
  /** The attempt's room already existed: it was dialed before and is not dialed again. */
  duplicate: boolean;
  /** No carrier slot opened, or no agent joined, in time: nothing was dialed and the record is gone. */
  notDialed: boolean;
  /** Not dialed because the assistant's agent did not join the room in time. */
  agentUnavailable?: boolean;
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
  carrier_trunk: string | null;
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
 * Why a call was not written: its room was used already (a duplicate), its campaign no longer
 * runs, the callee is on the do-not-call list, or no ready outbound trunk (422 each).
 */
async function refused(sql: Sql, input: DialInput): Promise<DialResult> {
  if (input.roomName) {
    const [call] = await sql<CallRow[]>`
      select * from public.outbound_calls where room_name = ${input.roomName}`;
    if (call) return { call, duplicate: true, notDialed: false, error: null, mapped: null };
  }
  if (input.campaign) {
    const [c] = await sql<{ status: string }[]>`
      select status from public.campaigns where id = ${input.campaign.campaignId}`;
    if (c?.status !== "running") {
      throw new PreconditionError(
        "campaign_not_running",
        `Campaign ${input.campaign.campaignId} is ${c?.status ?? "deleted"}.`,
      );
    }
  }
  await resolveTrunk(sql, input);
  throw new Error("the call could not be written, for no reason found");
}

/** The requester's numbers a dial may go out from: ready, and the ones the input names. */
function dialableNumbers(sql: Sql, input: DialInput) {
  return sql`p.owner_id = ${input.ownerId}
    and p.trunk_status = 'ready' and p.outbound_trunk_id is not null
    ${input.assistantId ? sql`and a.id = ${input.assistantId}` : sql``}
    ${input.outboundTrunkId ? sql`and p.outbound_trunk_id = ${input.outboundTrunkId}` : sql``}
    ${input.phoneNumberId ? sql`and p.id = ${input.phoneNumberId}` : sql``}`;
}

async function resolveTrunk(sql: Sql, input: DialInput): Promise<Trunk> {
  const rows = await sql<Trunk[]>`
    select p.id as phone_number_id, p.e164, p.outbound_trunk_id, p.owner_id, a.id as assistant_id, a.agent_name, p.carrier_trunk,
      exists (select from public.do_not_call d where d.owner_id = p.owner_id and d.e164 = ${input.to}) as dnc
    from public.phone_number p join public.assistant a on a.id = p.assistant_id
    where ${dialableNumbers(sql, input)}
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

/** A dial sent later than this after its slot takes a new one (internal.take_carrier_slots). */
export const SLOT_TOLERANCE_MS = 30;
/** How long before its slot a dial first looks for its agent. */
const AGENT_LOOK_AHEAD_MS = 60;
/** How far ahead a direct call may wait for its carrier trunk's next slot. */
const DIRECT_SLOT_WAIT_SEC = 5;

/** One send slot of the carrier trunk, or null when none opens within `horizonSec`. */
async function takeSlot(sql: Sql, config: Config, carrier: string, horizonSec: number) {
  const [{ slots }] = await sql<{ slots: Date[] }[]>`
    select internal.take_carrier_slots(${carrier}, ${config.carrierCps}, 1, ${horizonSec}) as slots`;
  return slots[0] ?? null;
}

/**
 * How much of an earlier dial's lateness a dial need not make up: slots are 40 ms more than a
 * second apart per cps, and the rest covers what happens after the check (signing the request,
 * connecting, the network), which no check sees.
 */
const SLOT_SHRINK_MS = 10;
/** This isolate's dials per carrier trunk in the last 2 s, as they went: slot and lateness (ms). */
const sentDials = new Map<string, { slot: number; late: number }[]>();
function sentOn(clock: Clock, carrier: string) {
  const sent = (sentDials.get(carrier) ?? []).filter((d) => d.slot > clock.now() - 2000);
  sentDials.set(carrier, sent);
  return sent;
}

/**
 * How long after its slot a dial waits so that it is no closer to an earlier dial of this
 * isolate than their slots are apart, less SLOT_SHRINK_MS: a dial that went out late pushes
 * back the ones that may share a sliding second with it, those up to 1.04 s later (5 ms more
 * for slots rounded to the ms), by its lateness.
 */
export function carriedLateness(sent: readonly { slot: number; late: number }[], slot: number) {
  let wait = 0;
  for (const d of sent) {
    if (d.slot < slot && slot - d.slot <= 1045) wait = Math.max(wait, d.late - SLOT_SHRINK_MS);
  }
  return wait;
}

/** Waits for the slot; a dial that would go out late takes a new slot instead (false: none). */
async function awaitSlot(deps: Deps, carrier: string, slot: Date) {
  const { sql, config, clock } = deps;
  for (let tries = 0; tries < 5; tries++) {
    await clock.sleep(slot.getTime() - clock.now());
    const wait = carriedLateness(sentOn(clock, carrier), slot.getTime());
    if (wait > 0) await clock.sleep(slot.getTime() + wait - clock.now());
    const late = clock.now() - slot.getTime();
    if (late <= SLOT_TOLERANCE_MS) {
      sentOn(clock, carrier).push({ slot: slot.getTime(), late });
      return true;
    }
    let next: Date | null;
    try {
      next = await takeSlot(sql, config, carrier, DIRECT_SLOT_WAIT_SEC);
    } catch (e) {
      // The database restarting: nothing has gone out yet, so ask again shortly.
      if (!isDatabaseUnavailable(e) || tries === 4) throw e;
      await clock.sleep(250 * (tries + 1));
      continue;
    }
    if (!next) return false;
    slot = next;
  }
  return false;
}

/** The dial's answer, or what became of an attempt whose answer was lost. */
type DialAnswer =
  | { kind: "answered"; participantId: string; sipCallId: string }
  | { kind: "failed"; failure: LiveKitFailure; mapped: Mapped; step: string }
  | { kind: "unknown"; failure: LiveKitFailure };

/** Writes the call record, dispatches the agent, waits for a carrier slot, dials, and records. */
export async function placeCall(deps: Deps, input: DialInput): Promise<DialResult> {
  const { config, sql, log, clock } = deps;
  const lk = deps.liveKit;
  checkDestinationAllowed(config, input.to, input.allowedCountries);
  const id = crypto.randomUUID();
  // One statement before dialing: the ready trunk, the do-not-call check, a campaign still
  // running, and the record. Only when it writes nothing is the reason looked up.
  const [inserted] = await sql<
    (CallRow & { agent_name: string; account_max_call_sec: number | null })[]
  >`
    insert into public.outbound_calls (id, owner_id, assistant_id, phone_number_id, campaign_id, campaign_call_id,
      attempt, from_number, to_number, room_name, participant_identity, outbound_trunk_id, carrier_trunk)
    select ${id}, p.owner_id, a.id, p.id, ${input.campaign?.campaignId ?? null}, ${
    input.campaign?.campaignCallId ?? null
  },
      ${input.campaign?.attempt ?? null}, p.e164, ${input.to},
      coalesce(${input.roomName ?? null}, format('out-%s-%s', left(a.id::text, 8), ${id}::text)),
      ${
    input.participantIdentity ?? `sip-${id}`
  }, p.outbound_trunk_id, coalesce(p.carrier_trunk, 'default')
    from public.phone_number p join public.assistant a on a.id = p.assistant_id
    where ${dialableNumbers(sql, input)}
      and not exists (select from public.do_not_call d where d.owner_id = p.owner_id and d.e164 = ${input.to})
      ${
    input.campaign
      ? sql`and exists (select from public.campaigns c where c.id = ${input.campaign.campaignId} and c.status = 'running')`
      : sql``
  }
    order by (p.rest_until > now()) is true, p.e164 limit 1
    on conflict (room_name) do nothing
    returning *, (select x.agent_name from public.assistant x where x.id = assistant_id) as agent_name,
      (select l.max_call_duration_sec from internal.platform_settings l) as account_max_call_sec`;
  if (!inserted) return await refused(sql, input);
  const trunk = {
    ...inserted,
    assistant_id: inserted.assistant_id!,
    e164: inserted.from_number,
  };
  const carrier = trunk.carrier_trunk ?? "default";
  // A direct call takes its slot once its agent is in the room; it is refused at once only
  // when the carrier trunk has nothing free soon.
  let slot = input.slot ?? null;
  if (!slot) {
    const busy = await carrierBusy(deps, carrier);
    if (busy.retryAfterSec! > DIRECT_SLOT_WAIT_SEC) {
      await sql`delete from public.outbound_calls where id = ${inserted.id}`;
      throw busy;
    }
  }
  const call = inserted;
  const l = log.child({
    callId: call.id,
    assistantId: trunk.assistant_id,
    roomName: call.room_name,
    campaignCallId: input.campaign?.campaignCallId,
  });

  // What the agent receives (README, "What the agent receives"): ids, variables, where to report.
  const metadata = {
    ...(input.metadata ?? {}),
    variables: input.metadata ?? {},
    assistantId: trunk.assistant_id,
    callId: call.id,
    roomName: call.room_name,
    campaignId: input.campaign?.campaignId ?? null,
    campaignCallId: input.campaign?.campaignCallId ?? null,
    attempt: input.campaign?.attempt ?? null,
    name: input.participantName !== input.to ? input.participantName ?? null : null,
    to: input.to,
    from: trunk.e164,
    functionsUrl: `${config.supabaseUrl}/functions/v1`,
  };
  // The agent's credential for call-report and transfer-call on this call only: a LiveKit token
  // for the call's room (nothing to publish or subscribe), so an agent needs no API secret.
  const maxCallSec = Math.min(
    input.maxCallDurationSec ?? config.maxCallDurationSec,
    trunk.account_max_call_sec ?? Infinity,
  );
  const callToken = await roomToken(
    config,
    call.room_name,
    `reporter-${call.id}`,
    maxCallSec + 600,
  );
  let dispatchId: string | null = null;
  let answer: DialAnswer;
  let dialedAt: Date | null = null;
  try {
    const dispatch = await lk.dispatch.createDispatch(call.room_name, trunk.agent_name, {
      metadata: JSON.stringify({ ...metadata, callToken }),
    });
    dispatchId = dispatch.id;
  } catch (e) {
    const failure = describeLiveKitError(e);
    answer = {
      kind: "failed",
      failure,
      mapped: outcomeFromError(failure),
      step: "dispatch the agent",
    };
  }
  let agent: ParticipantInfo | null = null;
  if (dispatchId !== null) {
    // No silent answers: the callee's phone rings only once the agent is in the room. It has
    // until just before the slot to join unseen (one look then usually finds it).
    if (slot) await clock.sleep(slot.getTime() - AGENT_LOOK_AHEAD_MS - clock.now());
    agent = await awaitAgent(deps, call.room_name, trunk.agent_name, config.agentJoinTimeoutSec);
    if (!agent) {
      await lk.dispatch.deleteDispatch(dispatchId, call.room_name).catch(() => {});
      await sql`delete from public.outbound_calls where id = ${call.id}`;
      lk.rooms.deleteRoom(call.room_name).catch(() => {});
      l.warn("no agent joined; not dialed", { waitSec: config.agentJoinTimeoutSec });
      return {
        call,
        duplicate: false,
        notDialed: true,
        agentUnavailable: true,
        error: new AgentUnavailableError(
          `No agent of assistant ${trunk.assistant_id} (${trunk.agent_name}) joined the call's room within ${config.agentJoinTimeoutSec} s, so ${input.to} was not dialed; the agent pool may be busy or not running.`,
        ),
        mapped: null,
      };
    }
    slot ??= await takeSlot(sql, config, carrier, DIRECT_SLOT_WAIT_SEC);
    if (!slot || !(await awaitSlot(deps, carrier, slot))) {
      // Never dialed: the record goes, so the attempt's room can be used when it comes back.
      await sql`delete from public.outbound_calls where id = ${call.id}`;
      lk.rooms.deleteRoom(call.room_name).catch(() => {});
      l.warn("no carrier slot; not dialed", { carrierTrunk: carrier });
      return {
        call,
        duplicate: false,
        notDialed: true,
        error: await carrierBusy(deps, carrier),
        mapped: null,
      };
    }
    dialedAt = new Date(clock.now());
    input.onDialing?.(call);
    // Always waits for the answer: LiveKit sends no webhook when a call is answered, and only
    // the dial's own error carries the carrier's exact SIP status.
    const ringingTimeout = input.ringingTimeoutSec ?? config.ringingTimeoutSec;
    try {
      const p = await lk.sip.createSipParticipant(
        trunk.outbound_trunk_id,
        input.to,
        call.room_name,
        {
          participantIdentity: call.participant_identity,
          participantName: input.participantName ?? input.to,
          participantMetadata: JSON.stringify(metadata),
          participantAttributes: {
            callId: call.id,
            assistantId: trunk.assistant_id,
            ...(input.campaign ? { campaignCallId: input.campaign.campaignCallId } : {}),
          },
          fromNumber: trunk.e164,
          waitUntilAnswered: true,
          ringingTimeout,
          // The operator's per-account limit, if any, caps every call's length.
          maxCallDuration: maxCallSec,
          krispEnabled: true,
          timeout: DIAL_TIMEOUT_SEC,
        },
      );
      answer = { kind: "answered", participantId: p.participantId, sipCallId: p.sipCallId };
    } catch (e) {
      const failure = describeLiveKitError(e);
      answer = failure.status === null
        // The request may have reached LiveKit and the phone may be ringing: find out.
        ? await settleLostAnswer(deps, call, ringingTimeout, failure)
        : { kind: "failed", failure, mapped: outcomeFromError(failure), step: "dial" };
    }
  }
  answer ??= { kind: "unknown", failure: describeLiveKitError(null) };
  return await recordAnswer(deps, call, {
    answer,
    dispatchId,
    dialedAt,
    carrier,
    input,
    agent,
    l,
  });
}

/** 503 agent_unavailable: no agent joined in time; nothing was dialed. */
export class AgentUnavailableError extends AppError {
  constructor(message: string, retryAfterSec = 10) {
    super(503, "agent_unavailable", message, { retryAfterSec });
    this.retryAfterSec = retryAfterSec;
  }
}

/** LiveKit's attribute naming the agent name an agent participant was dispatched under. */
const AGENT_NAME_ATTRIBUTE = "lk.agent_name";

/**
 * The assistant's agent once it is in the room (LiveKit's participants say so), or null. Only an
 * AGENT participant whose `lk.agent_name` is the assistant's agent name counts: LiveKit also
 * dispatches agent name "" to every new room, so a worker registered without a name joins too.
 */
async function awaitAgent(
  { liveKit: lk, clock }: Deps,
  room: string,
  agentName: string,
  waitSec: number,
) {
  const until = clock.now() + waitSec * 1000;
  for (let pause = 25;; pause = Math.min(pause * 2, 250)) {
    const found = await lk.rooms.listParticipants(room).then(
      (ps) =>
        ps.find((p) =>
          p.kind === ParticipantInfo_Kind.AGENT && p.attributes[AGENT_NAME_ATTRIBUTE] === agentName
        ) ?? null,
      () => null,
    );
    if (found) return found;
    if (clock.now() + pause > until) return null;
    await clock.sleep(pause);
  }
}

/** 429 with the wait until the carrier trunk's next slot. */
async function carrierBusy({ sql, clock }: Deps, carrier: string) {
  const [{ at }] = await sql<{ at: Date }[]>`select internal.carrier_next_slot(${carrier}) as at`;
  const wait = Math.max(1, Math.ceil((at.getTime() - clock.now()) / 1000));
  return new RateLimitError(
    `The carrier trunk's calls-per-second budget is used up; try again in ${wait} s.`,
    wait,
  );
}

/**
 * The dial's answer was lost (connection dropped or timed out). With failover off nothing
 * was replayed; LiveKit's participants say whether the call exists and how it stands.
 */
async function settleLostAnswer(
  { liveKit: lk, clock }: Deps,
  call: CallRow,
  ringingTimeoutSec: number,
  failure: LiveKitFailure,
): Promise<DialAnswer> {
  const until = clock.now() + (ringingTimeoutSec + 10) * 1000;
  let seen = false;
  while (clock.now() < until) {
    const p = await lk.rooms.getParticipant(call.room_name, call.participant_identity).catch(
      () => null,
    );
    if (p) {
      seen = true;
      if (p.attributes?.["sip.callStatus"] === "active") {
        return {
          kind: "answered",
          participantId: p.sid,
          sipCallId: p.attributes?.["sip.callID"] ?? "",
        };
      }
    } else if (seen) {
      break;
    } else {
      // Never joined (the request did nothing) or already gone: the webhooks, if any, tell.
      break;
    }
    await clock.sleep(1000);
  }
  return { kind: "unknown", failure };
}

/** Records the dial's answer; a database that is briefly away is retried (what this misses the reconciliation fills in). */
async function recordAnswer(
  { sql, liveKit: lk, clock }: Deps,
  call: CallRow,
  r: {
    answer: DialAnswer;
    dispatchId: string | null;
    dialedAt: Date | null;
    carrier: string;
    input: DialInput;
    agent: ParticipantInfo | null;
    l: Logger;
  },
): Promise<DialResult> {
  const { answer, l } = r;
  const agentJoinedAt = r.agent ? new Date(Number(r.agent.joinedAtMs) || clock.now()) : null;
  const agentAudioAt = r.agent?.tracks.some((t) => t.type === TrackType.AUDIO) ? r.dialedAt : null;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      if (answer.kind === "answered") {
        // The hot path, in one statement: the answer (a leave noted while the dial waited ends
        // the call at once; a final call keeps its outcome), then the campaign call goes live.
        const [row] = await sql<CallRow[]>`
          with answered as (
            update public.outbound_calls o set
              status = case when o.status in ('completed', 'busy', 'no_answer', 'failed') then o.status
                            when o.ended_at is not null then 'completed'::public.call_status
                            else 'in_progress'::public.call_status end,
              outcome = case when o.status in ('completed', 'busy', 'no_answer', 'failed') then o.outcome
                             else 'answered' end,
              answered_at = coalesce(o.answered_at, now()),
              ended_at = case when o.ended_at is null then null
                              else greatest(o.ended_at, coalesce(o.answered_at, now())) end,
              duration_sec = case when o.ended_at is null then null else round(extract(epoch from
                greatest(o.ended_at, coalesce(o.answered_at, now())) - coalesce(o.answered_at, now())))::integer end,
              dispatch_id = coalesce(o.dispatch_id, ${r.dispatchId}), dialed_at = ${r.dialedAt},
              dial_returned_at = now(),
              agent_identity = coalesce(o.agent_identity, ${r.agent?.identity ?? null}),
              agent_joined_at = coalesce(o.agent_joined_at, ${agentJoinedAt}),
              agent_audio_at = coalesce(o.agent_audio_at, ${agentAudioAt}),
              participant_id = coalesce(${answer.participantId}, o.participant_id),
              sip_call_id = coalesce(${answer.sipCallId || null}, o.sip_call_id)
            where o.id = ${call.id} returning o.*)
          select a.*, case when a.campaign_call_id is not null and a.status = 'in_progress'
              then internal.call_answered(a.id) else false end as live
          from answered a`;
        // Rare: the callee had already hung up; the campaign call is settled with the outcome.
        if (row.campaign_call_id && row.status === "completed") {
          await sql`select internal.call_finished(${row.id})`;
        }
        call = row;
        break;
      }
      const row = await asService(sql, async (tx) => {
        const [cur] = await tx<
          CallRow[]
        >`select * from public.outbound_calls where id = ${call.id} for update`;
        let next: {
          status: CallStatus;
          outcome: string | null;
          answeredAt: Date | null;
          endedAt: Date | null;
        };
        const failure = answer.failure;
        if (answer.kind === "failed") {
          next = isFinal(cur.status) ? { ...currentOf(cur) } : {
            status: answer.mapped.status,
            outcome: answer.mapped.outcome,
            answeredAt: cur.answered_at,
            endedAt: cur.ended_at ?? new Date(clock.now()),
          };
        } else {
          // Unknown: what the webhooks said while waiting, else the call is written off as lost
          // (never re-dialed: the callee may have answered), unless it never left LiveKit's hands.
          const x = cur.answered_at
            ? { status: "completed" as const, outcome: "answered" as const }
            : cur.disconnect_reason
            ? outcomeFromDisconnect(cur.disconnect_reason, false)
            : r.dialedAt
            ? { status: "failed" as const, outcome: "lost" as const }
            : { status: "failed" as const, outcome: "livekit_error" as const };
          next = isFinal(cur.status) ? { ...currentOf(cur) } : {
            status: x.status,
            outcome: x.outcome,
            answeredAt: cur.answered_at,
            endedAt: cur.ended_at ?? new Date(clock.now()),
          };
        }
        const [row] = await tx<CallRow[]>`
          update public.outbound_calls set status = ${next.status}, outcome = ${next.outcome},
            answered_at = ${next.answeredAt}, ended_at = ${next.endedAt},
            duration_sec = ${durationSec(next.answeredAt, next.endedAt)},
            dispatch_id = coalesce(dispatch_id, ${r.dispatchId}), dialed_at = ${r.dialedAt},
            dial_returned_at = now(),
            agent_identity = coalesce(agent_identity, ${r.agent?.identity ?? null}),
            agent_joined_at = coalesce(agent_joined_at, ${agentJoinedAt}),
            agent_audio_at = coalesce(agent_audio_at, ${agentAudioAt}),
            sip_status_code = coalesce(${failure?.sipStatusCode ?? null}, sip_status_code),
            sip_status = coalesce(${failure?.sipStatus ?? null}, sip_status),
            error = coalesce(${
          failure ? `${answer.kind === "failed" ? answer.step : "dial"}: ${failure.message}` : null
        }, error)
          where id = ${call.id} returning *`;
        if (row.outcome === "cps_limited" && !isFinal(cur.status)) {
          await tx`select internal.carrier_rejected(${r.carrier})`;
        }
        if (row.campaign_call_id && isFinal(row.status)) {
          await tx`select internal.call_finished(${row.id})`;
        }
        return row;
      });
      call = row;
      break;
    } catch (e) {
      l.warn("call answer not recorded yet", {
        attempt,
        error: e instanceof Error ? e.message : String(e),
      });
      if (attempt === 3) break;
      await clock.sleep(250 * attempt);
    }
  }

  if (answer.kind === "answered") {
    l.info("call answered", { participantId: answer.participantId, sipCallId: answer.sipCallId });
    return { call, duplicate: false, notDialed: false, error: null, mapped: null };
  }
  // The room was made for this call; do not leave the agent waiting in it.
  lk.rooms.deleteRoom(call.room_name).catch(() => {});
  const f = answer.failure;
  const mapped: Mapped = { status: call.status, outcome: (call.outcome ?? "failed") as Outcome };
  const step = answer.kind === "failed" ? answer.step : "dial";
  l.warn("call failed", {
    step,
    upstreamCode: f.code,
    upstreamStatus: f.status,
    sipStatusCode: f.sipStatusCode,
    outcome: mapped.outcome,
  });
  const error = new UpstreamError(
    "livekit",
    `Cannot ${step} ${r.input.to}: ${
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
  return { call, duplicate: false, notDialed: false, error, mapped };
}

function currentOf(c: CallRow) {
  return { status: c.status, outcome: c.outcome, answeredAt: c.answered_at, endedAt: c.ended_at };
}

/** What a LiveKit webhook means for the call in its room, if any. */
export function eventFor(
  call: Pick<CallRow, "participant_identity">,
  ev: WebhookEvent,
  now: number,
): CallEvent | null {
  const at = new Date(Number(ev.createdAt ?? 0n) * 1000 || now);
  const p = ev.participant;
  // track_published carries only sid and identity, and fires when the SIP participant
  // joins, before the phone rings: it says nothing about an answer.
  const isOurs = !!p && p.identity === call.participant_identity &&
    p.kind === ParticipantInfo_Kind.SIP;
  const status = p?.attributes?.["sip.callStatus"];
  switch (ev.event) {
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
      return { kind: "room_finished", at, departureSec: ev.room?.departureTimeout ?? 20 };
    default:
      return null;
  }
}

const FAILURE_REASONS = new Set(["USER_REJECTED", "USER_UNAVAILABLE", "SIP_TRUNK_FAILURE"]);

/** Stores a verified webhook once (by event id) and moves its call forward. */
export async function recordWebhook({ sql, log, clock }: Deps, ev: WebhookEvent) {
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
    const p = ev.participant;
    if (
      ev.event === "participant_joined" && p?.identity === call.participant_identity &&
      p.kind === ParticipantInfo_Kind.SIP
    ) {
      // The SIP participant joined (at dial time): its ids, nothing about an answer.
      await tx`update public.outbound_calls set participant_id = coalesce(participant_id, ${
        p.sid || null
      }),
          sip_call_id = coalesce(sip_call_id, ${p.attributes?.["sip.callID"] || null})
        where id = ${call.id}`;
      return { duplicate: false, callId: call.id, status: call.status };
    }
    if (ev.event === "track_published" && p && p.identity !== call.participant_identity) {
      // Only the agent shares the call's room with the SIP participant: it can be heard now.
      const at = new Date(Number(ev.createdAt ?? 0n) * 1000 || clock.now());
      await tx`update public.outbound_calls set agent_audio_at = coalesce(agent_audio_at, ${at}),
          agent_identity = coalesce(agent_identity, ${p.identity})
        where id = ${call.id}`;
      return { duplicate: false, callId: call.id, status: call.status };
    }
    const event = eventFor(call, ev, clock.now());
    const next = event && applyEvent(stateOf(call), event);
    if (!next) return { duplicate: false, callId: call.id, status: call.status };
    const reason = event?.kind === "left" ? event.reason : null;
    const row = await moveCall(tx, call, next, reason);
    if (isFinal(row.status) && !isFinal(call.status)) {
      log.info("call ended", {
        callId: row.id,
        status: row.status,
        outcome: row.outcome,
        disconnectReason: reason,
      });
    }
    return { duplicate: false, callId: row.id, status: row.status };
  });
}

export function stateOf(call: CallRow): CallState {
  return {
    status: call.status,
    answeredAt: call.answered_at,
    endedAt: call.ended_at,
    dialPending: call.dial_returned_at === null,
  };
}

/** Writes a transition (forward only) and settles the campaign call when the call ended. */
export async function moveCall(tx: Tx, call: CallRow, next: Transition, reason: string | null) {
  const [row] = await tx<CallRow[]>`
    update public.outbound_calls set status = ${next.status}, answered_at = ${next.answeredAt}, ended_at = ${next.endedAt},
      outcome = coalesce(${next.outcome}, outcome), disconnect_reason = coalesce(${reason}, disconnect_reason),
      duration_sec = ${durationSec(next.answeredAt, next.endedAt)}
    where id = ${call.id} returning *`;
  if (row.campaign_call_id && isFinal(row.status) && !isFinal(call.status)) {
    await tx`select internal.call_finished(${row.id})`;
  }
  return row;
}
