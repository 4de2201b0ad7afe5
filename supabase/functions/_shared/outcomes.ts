// Pure decisions about a call: what a LiveKit error or disconnect means, and how a webhook
// event moves a call. Events may repeat or arrive in any order, so a call only moves
// forward, and a final state is never replaced.

export type CallStatus =
  | "dialing"
  | "ringing"
  | "in_progress"
  | "completed"
  | "busy"
  | "no_answer"
  | "failed";

export type Outcome =
  | "answered"
  | "busy"
  | "no_answer"
  | "unavailable"
  | "not_found"
  | "blocked"
  | "rejected"
  | "auth_failed"
  | "cps_limited"
  | "carrier_error"
  | "livekit_error"
  | "failed"
  | "lost";

export const FINAL: ReadonlySet<CallStatus> = new Set(["completed", "busy", "no_answer", "failed"]);
const RANK: Record<CallStatus, number> = {
  dialing: 0,
  ringing: 1,
  in_progress: 2,
  completed: 3,
  busy: 3,
  no_answer: 3,
  failed: 3,
};

export function isFinal(s: CallStatus): boolean {
  return FINAL.has(s);
}

/**
 * What an ended call is. Whether a campaign retries it, requeues it without counting the
 * attempt, or pauses is decided in one place: the database's internal.call_outcome table.
 */
export interface Mapped {
  status: CallStatus;
  outcome: Outcome;
}

const m = (status: CallStatus, outcome: Outcome): Mapped => ({ status, outcome });

/** A carrier's answer to an INVITE, by its exact SIP status (a dial that waited for the answer). */
export function outcomeFromSip(sip: number, reason: string): Mapped {
  if (sip === 486 || sip === 600) return m("busy", "busy");
  if (sip === 408 || sip === 487) return m("no_answer", "no_answer");
  if (sip === 480) return m("no_answer", "unavailable");
  if (sip === 404 || sip === 410 || sip === 484 || sip === 604) return m("failed", "not_found");
  if (sip === 401 || sip === 407) return m("failed", "auth_failed");
  if (sip === 403 || sip === 607 || sip === 608) return m("failed", "blocked");
  // Twilio answers a suspected fraud with 603 (X-Twilio-Error 32203); a callee's decline is 603 too.
  if (sip === 603) {
    return /fraud|block/i.test(reason) ? m("failed", "blocked") : m("failed", "rejected");
  }
  if (sip === 503 && /cps|calls per second|rate limit/i.test(reason)) {
    return m("failed", "cps_limited");
  }
  if (sip >= 500) return m("failed", "carrier_error");
  return m("failed", "failed");
}

/** A failed dispatch or CreateSIPParticipant: by SIP status when there is one, else by Twirp code. */
export function outcomeFromError(
  f: {
    code: string;
    status: number | null;
    sipStatusCode: number | null;
    sipStatus?: string | null;
    message?: string;
  },
): Mapped {
  if (f.sipStatusCode !== null) {
    return outcomeFromSip(f.sipStatusCode, `${f.sipStatus ?? ""} ${f.message ?? ""}`);
  }
  // No SIP status: the ringing timeout ran out ("sip request timed out"), or LiveKit failed.
  if (f.code === "canceled" || f.code === "deadline_exceeded") return m("no_answer", "no_answer");
  if (f.code === "not_found" || f.code === "invalid_argument" || f.code === "permission_denied") {
    return m("failed", "failed");
  }
  return m("failed", "livekit_error");
}

/**
 * The SIP participant left and the dial's own answer is not known (only reconciliation gets
 * here). livekit/sip's disconnect reasons are coarse: USER_REJECTED covers busy, declines,
 * auth failures and carrier limits; USER_UNAVAILABLE covers no answer and invalid numbers.
 */
export function outcomeFromDisconnect(reason: string, answered: boolean): Mapped {
  if (answered) return m("completed", "answered");
  switch (reason) {
    case "USER_REJECTED":
      return m("busy", "busy");
    case "USER_UNAVAILABLE":
      return m("no_answer", "no_answer");
    case "SIP_TRUNK_FAILURE":
      return m("failed", "carrier_error");
    default:
      return m("failed", "failed");
  }
}

export interface CallState {
  status: CallStatus;
  answeredAt: Date | null;
  endedAt: Date | null;
  /** CreateSIPParticipant is still waiting for the answer: its result, not a webhook, decides a failure. */
  dialPending: boolean;
}

export type CallEvent =
  | { kind: "ringing"; at: Date }
  | { kind: "answered"; at: Date }
  | { kind: "left"; at: Date; reason: string; answered: boolean }
  /** The room closed `departureSec` after its last participant left. */
  | { kind: "room_finished"; at: Date; departureSec: number };

export interface Transition {
  status: CallStatus;
  answeredAt: Date | null;
  endedAt: Date | null;
  /** Null while the call is not final (or an ended call only gains a time). */
  outcome: Outcome | null;
}

/**
 * The state after an event, or null when the event changes nothing. An unanswered call whose
 * dial is still waiting only notes when it ended: the dial's SIP status will say why.
 */
export function applyEvent(call: CallState, ev: CallEvent): Transition | null {
  const final = isFinal(call.status);
  const answered = call.answeredAt !== null || call.status === "in_progress";
  switch (ev.kind) {
    case "ringing":
      if (RANK[call.status] >= RANK.ringing) return null;
      return { ...call, status: "ringing", outcome: null };
    case "answered": {
      if (call.answeredAt) return null;
      // A late answer still fills in the time, but never reopens a final call.
      return {
        status: final ? call.status : "in_progress",
        answeredAt: ev.at,
        endedAt: call.endedAt,
        outcome: final ? null : "answered",
      };
    }
    case "left": {
      if (final) return null;
      if (ev.answered || answered) {
        // Webhook times have whole seconds: never before the answer.
        const endedAt = call.answeredAt && ev.at < call.answeredAt ? call.answeredAt : ev.at;
        return { status: "completed", answeredAt: call.answeredAt, endedAt, outcome: "answered" };
      }
      if (call.dialPending) {
        return call.endedAt ? null : { ...call, endedAt: ev.at, outcome: null };
      }
      const x = outcomeFromDisconnect(ev.reason, false);
      return { status: x.status, answeredAt: null, endedAt: ev.at, outcome: x.outcome };
    }
    case "room_finished": {
      if (final) return null;
      if (answered) {
        // Without the participant's leave, the best estimate of the hang-up: the room closes
        // its departure timeout after the last participant left.
        const left = call.endedAt ?? new Date(ev.at.getTime() - ev.departureSec * 1000);
        const endedAt = call.answeredAt && left < call.answeredAt ? call.answeredAt : left;
        return { status: "completed", answeredAt: call.answeredAt, endedAt, outcome: "answered" };
      }
      if (call.dialPending) return call.endedAt ? null : { ...call, endedAt: ev.at, outcome: null };
      return {
        status: "failed",
        answeredAt: null,
        endedAt: call.endedAt ?? ev.at,
        outcome: "failed",
      };
    }
  }
}

/** Whole seconds between answer and end, when both are known. */
export function durationSec(answeredAt: Date | null, endedAt: Date | null): number | null {
  if (!answeredAt || !endedAt) return null;
  return Math.max(0, Math.round((endedAt.getTime() - answeredAt.getTime()) / 1000));
}
