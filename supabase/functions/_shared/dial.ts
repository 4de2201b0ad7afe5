// Placing a call. One dial helper serves create-participant and the campaign engine: resolve the
// assistant's ready outbound trunk and write the call record (internal.open_call), dispatch the
// agent into a fresh room, wait for it and for a carrier slot, dial, and hand the answer to the
// database (internal.record_answer / internal.record_dial_failure), which decides what it means.
import { ParticipantInfo_Kind, TrackType } from "@livekit/protocol";
import type { ParticipantInfo } from "livekit-server-sdk";
import type { CallRow } from "./calls.ts";
import type { Deps } from "./deps.ts";
import type { Sql } from "./db.ts";
import { AppError, PreconditionError, UpstreamError } from "./errors.ts";
import {
  describeLiveKitError,
  DIAL_TIMEOUT_SEC,
  type LiveKitFailure,
  roomToken,
  SlotMissedError,
} from "./livekit.ts";
import type { Logger } from "./log.ts";
import { type Mapped, type Outcome, outcomeFromError } from "./outcomes.ts";
import { carrierBusy, DIRECT_SLOT_WAIT_SEC, sendInSlot, takeSlot } from "./pacing.ts";
import { checkDestinationAllowed } from "./phone.ts";

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
  /**
   * What a campaign's claim knows of the dial: with it, the agent is dispatched first and the
   * record and the carrier slot are written together once the agent is in the room
   * (internal.open_dial).
   */
  claimed?: { fromNumber: string; outboundTrunkId: string; agentName: string };
  /** When the claim planned the dial (its agent is looked for just before). */
  slot?: Date;
  /** Told when the dial goes out (the SIP participant joins the room a moment later). */
  onDialing?: (call: CallRow) => void;
}

export interface DialResult {
  /** The call's record; null when none was written (a campaign dial no longer current). */
  call: CallRow | null;
  /** The attempt's room already existed: it was dialed before and is not dialed again. */
  duplicate: boolean;
  /** No carrier slot opened, or no agent joined, in time: nothing was dialed and the record is gone. */
  notDialed: boolean;
  /** Not dialed because the assistant's agent did not join the room in time. */
  agentUnavailable?: boolean;
  error: AppError | null;
  mapped: Mapped | null;
}

/**
 * Why a call was not written: its room was used already or it is no longer its contact's
 * current dial (a duplicate: nothing to do), its campaign no longer runs, the callee is on the
 * do-not-call list, or no ready outbound trunk (422 each).
 */
async function refused(sql: Sql, input: DialInput): Promise<DialResult> {
  if (input.roomName) {
    const [call] = await sql<CallRow[]>`
      select * from public.outbound_calls where room_name = ${input.roomName}`;
    if (call) return { call, duplicate: true, notDialed: false, error: null, mapped: null };
  }
  if (input.campaign && input.roomName) {
    // A lease that ran out gave the contact back, or another tick dials it now: nothing to do.
    const [cc] = await sql<{ current: boolean }[]>`
      select status = 'dialing' and internal.dial_room(id, dials) = ${input.roomName} as current
      from public.campaign_calls where id = ${input.campaign.campaignCallId}`;
    if (cc && !cc.current) {
      return { call: null, duplicate: true, notDialed: true, error: null, mapped: null };
    }
  }
  const [why] = await sql<{ code: string; campaign_status: string | null }[]>`
    select * from internal.call_refusal(${input.ownerId}, ${input.assistantId ?? null},
      ${input.outboundTrunkId ?? null}, ${input.phoneNumberId ?? null}, ${input.to},
      ${input.campaign?.campaignId ?? null})`;
  switch (why?.code) {
    case "campaign_not_running":
      throw new PreconditionError(
        "campaign_not_running",
        `Campaign ${input.campaign!.campaignId} is ${why.campaign_status}.`,
      );
    case "do_not_call":
      throw new PreconditionError(
        "do_not_call",
        `${input.to} is on the do-not-call list; remove it there to call it.`,
      );
    case "no_outbound_trunk": {
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
  }
  throw new Error("the call could not be written, for no reason found");
}

/** How long before its slot a dial first looks for its agent. */
const AGENT_LOOK_AHEAD_MS = 60;

/** The dial's answer, or what became of an attempt whose answer was lost. */
type DialAnswer =
  | { kind: "answered"; participantId: string; sipCallId: string }
  | { kind: "failed"; failure: LiveKitFailure; mapped: Mapped; step: string }
  | { kind: "unknown"; failure: LiveKitFailure };

/**
 * Places a call: the record, the agent in the room, a carrier slot, the dial, the answer. A
 * direct call's record is written first (its requester gets its id at once); a campaign dial's
 * is written with its carrier slot once its agent is in the room (internal.open_dial), so no
 * slot is held while an agent joins.
 */
export async function placeCall(deps: Deps, input: DialInput): Promise<DialResult> {
  const { config, sql, log, clock } = deps;
  const lk = deps.liveKit;
  checkDestinationAllowed(config, input.to, input.allowedCountries);
  const id = crypto.randomUUID();
  const claimed = input.campaign && input.roomName && input.participantIdentity
    ? input.claimed ?? null
    : null;
  let call: CallRow | null = null;
  let trunk: {
    assistantId: string;
    agentName: string;
    fromNumber: string;
    outboundTrunkId: string;
  };
  let accountMaxCallSec: number | null = null;
  let slot = input.slot ?? null;
  if (claimed) {
    trunk = { ...claimed, assistantId: input.assistantId! };
  } else {
    // One statement before dialing: the ready trunk, the do-not-call check, a campaign still
    // running, and the record. Only when it writes nothing is the reason looked up.
    const [inserted] = await sql<
      (CallRow & { agent_name: string; account_max_call_sec: number | null })[]
    >`
      select o.*, (select x.agent_name from public.assistant x where x.id = o.assistant_id) as agent_name,
        (select l.max_call_duration_sec from internal.platform_settings l) as account_max_call_sec
      from internal.open_call(${id}, ${input.ownerId}, ${input.assistantId ?? null},
        ${input.outboundTrunkId ?? null}, ${input.phoneNumberId ?? null}, ${input.to},
        ${input.campaign?.campaignId ?? null}, ${input.campaign?.campaignCallId ?? null},
        ${input.campaign?.attempt ?? null}, ${input.roomName ?? null},
        ${input.participantIdentity ?? null}) o`;
    if (!inserted) return await refused(sql, input);
    call = inserted;
    trunk = {
      assistantId: inserted.assistant_id!,
      agentName: inserted.agent_name,
      fromNumber: inserted.from_number,
      outboundTrunkId: inserted.outbound_trunk_id,
    };
    accountMaxCallSec = inserted.account_max_call_sec;
    // A direct call takes its slot once its agent is in the room; it is refused at once only
    // when the carrier trunk has nothing free soon.
    if (!slot) {
      const busy = await carrierBusy(deps, inserted.carrier_trunk ?? "default");
      if (busy.retryAfterSec! > DIRECT_SLOT_WAIT_SEC) {
        await sql`select internal.withdraw_call(${inserted.id})`;
        throw busy;
      }
    }
  }
  const room = call?.room_name ?? input.roomName!;
  const identity = call?.participant_identity ?? input.participantIdentity!;
  const l = log.child({
    callId: id,
    assistantId: trunk.assistantId,
    roomName: room,
    campaignCallId: input.campaign?.campaignCallId,
  });

  // What the agent receives (README, "What the agent receives"): ids, variables, where to report.
  const metadata = {
    ...(input.metadata ?? {}),
    variables: input.metadata ?? {},
    assistantId: trunk.assistantId,
    callId: id,
    roomName: room,
    campaignId: input.campaign?.campaignId ?? null,
    campaignCallId: input.campaign?.campaignCallId ?? null,
    attempt: input.campaign?.attempt ?? null,
    name: input.participantName !== input.to ? input.participantName ?? null : null,
    to: input.to,
    from: trunk.fromNumber,
    functionsUrl: `${config.supabaseUrl}/functions/v1`,
  };
  // The agent's credential for call-report and transfer-call on this call only: a LiveKit token
  // for the call's room (nothing to publish or subscribe), so an agent needs no API secret.
  const maxCallSec = Math.min(
    input.maxCallDurationSec ?? config.maxCallDurationSec,
    accountMaxCallSec ?? Infinity,
  );
  const callToken = await roomToken(config, room, `reporter-${id}`, maxCallSec + 600);
  let dispatchId: string | null = null;
  let answer: DialAnswer | undefined;
  let dialedAt: Date | null = null;
  try {
    const dispatch = await lk.dispatch.createDispatch(room, trunk.agentName, {
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
    agent = await awaitAgent(deps, room, trunk.agentName, config.agentJoinTimeoutSec);
    if (!agent) {
      await lk.dispatch.deleteDispatch(dispatchId, room).catch(() => {});
      if (call) await sql`select internal.withdraw_call(${call.id})`;
      lk.rooms.deleteRoom(room).catch(() => {});
      l.warn("no agent joined; not dialed", { waitSec: config.agentJoinTimeoutSec });
      return {
        call,
        duplicate: false,
        notDialed: true,
        agentUnavailable: true,
        error: new AgentUnavailableError(
          `No agent of assistant ${trunk.assistantId} (${trunk.agentName}) joined the call's room within ${config.agentJoinTimeoutSec} s, so ${input.to} was not dialed; the agent pool may be busy or not running.`,
        ),
        mapped: null,
      };
    }
    if (!call) {
      // The dial's record and its carrier slot, in one statement, now that the agent is here.
      const [opened] = await sql<CallRow[]>`
        select * from internal.open_dial(${id}, ${input.ownerId}, ${trunk.assistantId},
          ${input.phoneNumberId ?? null}, ${input.to}, ${input.campaign!.campaignId},
          ${input.campaign!.campaignCallId}, ${input.campaign!.attempt}, ${room}, ${identity},
          ${config.carrierCps}, ${DIRECT_SLOT_WAIT_SEC})`;
      if (!opened) {
        await lk.dispatch.deleteDispatch(dispatchId, room).catch(() => {});
        lk.rooms.deleteRoom(room).catch(() => {});
        return await refused(sql, input);
      }
      call = opened;
      slot = opened.dialed_at;
    } else {
      slot = await takeSlot(sql, config, call.carrier_trunk ?? "default", DIRECT_SLOT_WAIT_SEC);
    }
    const carrier = call.carrier_trunk ?? "default";
    const opened = call;
    // Always waits for the answer: LiveKit sends no webhook when a call is answered, and only
    // the dial's own error carries the carrier's exact SIP status.
    const ringingTimeout = input.ringingTimeoutSec ?? config.ringingTimeoutSec;
    let participant: { participantId: string; sipCallId: string } | null = null;
    let dialError: unknown = null;
    const sent = await sendInSlot(deps, carrier, slot, room, (at) => {
      dialedAt = new Date(at);
      input.onDialing?.(opened);
    }, async () => {
      try {
        participant = await lk.sip.createSipParticipant(trunk.outboundTrunkId, input.to, room, {
          participantIdentity: identity,
          participantName: input.participantName ?? input.to,
          participantMetadata: JSON.stringify(metadata),
          participantAttributes: {
            callId: id,
            assistantId: trunk.assistantId,
            ...(input.campaign ? { campaignCallId: input.campaign.campaignCallId } : {}),
          },
          fromNumber: trunk.fromNumber,
          waitUntilAnswered: true,
          ringingTimeout,
          // The operator's per-account limit, if any, caps every call's length.
          maxCallDuration: maxCallSec,
          krispEnabled: true,
          timeout: DIAL_TIMEOUT_SEC,
        });
      } catch (e) {
        if (e instanceof SlotMissedError) throw e;
        dialError = e;
      }
    });
    if (!sent) {
      // Never dialed: the record goes, so the attempt's room can be used when it comes back.
      await sql`select internal.withdraw_call(${call.id})`;
      lk.rooms.deleteRoom(room).catch(() => {});
      l.warn("no carrier slot; not dialed", { carrierTrunk: carrier });
      return {
        call,
        duplicate: false,
        notDialed: true,
        error: await carrierBusy(deps, carrier),
        mapped: null,
      };
    }
    const answered = participant as { participantId: string; sipCallId: string } | null;
    if (answered) {
      answer = {
        kind: "answered",
        participantId: answered.participantId,
        sipCallId: answered.sipCallId,
      };
    } else {
      const failure = describeLiveKitError(dialError);
      answer = failure.status === null
        // The request may have reached LiveKit and the phone may be ringing: find out.
        ? await settleLostAnswer(deps, call, ringingTimeout, failure)
        : { kind: "failed", failure, mapped: outcomeFromError(failure), step: "dial" };
    }
  } else if (!call) {
    // The agent could not be dispatched: the attempt is recorded (and settled) as its failure.
    const [opened] = await sql<CallRow[]>`
      select * from internal.open_call(${id}, ${input.ownerId}, ${trunk.assistantId}, null,
        ${input.phoneNumberId ?? null}, ${input.to}, ${input.campaign!.campaignId},
        ${input.campaign!.campaignCallId}, ${input.campaign!.attempt}, ${room}, ${identity})`;
    if (!opened) return await refused(sql, input);
    call = opened;
  }
  answer ??= { kind: "unknown", failure: describeLiveKitError(null) };
  return await recordAnswer(deps, call!, {
    answer,
    dispatchId,
    dialedAt,
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

/**
 * Hands the dial's answer to the database, which decides what it means for the call and its
 * campaign contact; a database that is briefly away is retried (what this misses the
 * reconciliation fills in).
 */
async function recordAnswer(
  { sql, liveKit: lk, clock }: Deps,
  call: CallRow,
  r: {
    answer: DialAnswer;
    dispatchId: string | null;
    dialedAt: Date | null;
    input: DialInput;
    agent: ParticipantInfo | null;
    l: Logger;
  },
): Promise<DialResult> {
  const { answer, l } = r;
  const agentJoinedAt = r.agent ? new Date(Number(r.agent.joinedAtMs) || clock.now()) : null;
  const agentAudioAt = r.agent?.tracks.some((t) => t.type === TrackType.AUDIO) ? r.dialedAt : null;
  const agentIdentity = r.agent?.identity ?? null;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      let rows: CallRow[];
      if (answer.kind === "answered") {
        rows = await sql<CallRow[]>`
          select * from internal.record_answer(${call.id}, ${r.dispatchId}, ${r.dialedAt},
            ${agentIdentity}, ${agentJoinedAt}, ${agentAudioAt}, ${answer.participantId},
            ${answer.sipCallId})`;
      } else {
        const f = answer.failure;
        const mapped = answer.kind === "failed" ? answer.mapped : null;
        const step = answer.kind === "failed" ? answer.step : "dial";
        rows = await sql<CallRow[]>`
          select * from internal.record_dial_failure(${call.id}, ${answer.kind},
            ${mapped?.status ?? null}, ${mapped?.outcome ?? null}, ${`${step}: ${f.message}`},
            ${f.sipStatusCode ?? null}, ${f.sipStatus ?? null}, ${r.dispatchId}, ${r.dialedAt},
            ${agentIdentity}, ${agentJoinedAt}, ${agentAudioAt})`;
      }
      if (rows[0]) call = rows[0];
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
