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
  | "rejected"
  | "not_found"
  | "carrier_error"
  | "cps_limited"
  | "livekit_error"
  | "failed";

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

export interface Mapped {
  status: CallStatus;
  outcome: Outcome;
  /** Worth another attempt later (busy, no answer, carrier limits, LiveKit trouble). */
  retryable: boolean;
}

/** A failed CreateSIPParticipant / dispatch, by SIP status when there is one, else by Twirp code. */
export function outcomeFromError(
  f: { code: string; status: number | null; sipStatusCode: number | null; message?: string },
): Mapped {
  const sip = f.sipStatusCode;
  if (sip !== null) {
    if (sip === 486 || sip === 600) return { status: "busy", outcome: "busy", retryable: true };
    if (sip === 408 || sip === 487) {
      return { status: "no_answer", outcome: "no_answer", retryable: true };
    }
    if (sip === 480) return { status: "no_answer", outcome: "unavailable", retryable: true };
    if (sip === 404 || sip === 484 || sip === 410) {
      return { status: "failed", outcome: "not_found", retryable: false };
    }
    if (sip === 403 || sip === 603 || sip === 401 || sip === 407) {
      return { status: "failed", outcome: "rejected", retryable: false };
    }
    if (sip === 503 && /cps|rate|limit/i.test(f.message ?? "")) {
      return { status: "failed", outcome: "cps_limited", retryable: true };
    }
    if (sip >= 500) return { status: "failed", outcome: "carrier_error", retryable: true };
    return { status: "failed", outcome: "failed", retryable: false };
  }
  // No SIP status: the ringing timeout ran out, or LiveKit itself failed.
  if (f.code === "canceled" || f.code === "deadline_exceeded") {
    return { status: "no_answer", outcome: "no_answer", retryable: true };
  }
  if (f.code === "resource_exhausted") {
    return { status: "failed", outcome: "cps_limited", retryable: true };
  }
  if (f.code === "not_found" || f.code === "invalid_argument" || f.code === "permission_denied") {
    return { status: "failed", outcome: "failed", retryable: false };
  }
  return { status: "failed", outcome: "livekit_error", retryable: true };
}

/** The SIP participant left: what ended the call. */
export function outcomeFromDisconnect(reason: string, answered: boolean): Mapped {
  switch (reason) {
    case "USER_REJECTED":
      return answered
        ? { status: "completed", outcome: "answered", retryable: false }
        : { status: "busy", outcome: "busy", retryable: true };
    case "USER_UNAVAILABLE":
      return answered
        ? { status: "completed", outcome: "answered", retryable: false }
        : { status: "no_answer", outcome: "no_answer", retryable: true };
    case "SIP_TRUNK_FAILURE":
      return answered
        ? { status: "completed", outcome: "answered", retryable: false }
        : { status: "failed", outcome: "carrier_error", retryable: true };
    default:
      return answered
        ? { status: "completed", outcome: "answered", retryable: false }
        : { status: "failed", outcome: "failed", retryable: true };
  }
}

export interface CallState {
  status: CallStatus;
  answeredAt: Date | null;
  endedAt: Date | null;
}

export type CallEvent =
  | { kind: "ringing"; at: Date }
  | { kind: "answered"; at: Date }
  | { kind: "left"; at: Date; reason: string; answered: boolean }
  | { kind: "room_finished"; at: Date };

export interface Transition {
  status: CallStatus;
  answeredAt: Date | null;
  endedAt: Date | null;
  outcome: Outcome | null;
  retryable: boolean | null;
}

/** The state after an event, or null when the event changes nothing. */
export function applyEvent(call: CallState, ev: CallEvent): Transition | null {
  const final = isFinal(call.status);
  switch (ev.kind) {
    case "ringing":
      if (RANK[call.status] >= RANK.ringing) return null;
      return { ...call, status: "ringing", outcome: null, retryable: null };
    case "answered": {
      if (call.answeredAt) return null;
      // A late answer still fills in the time, but never reopens a final call.
      const status = final ? call.status : "in_progress";
      return {
        status,
        answeredAt: ev.at,
        endedAt: call.endedAt,
        outcome: final ? null : "answered",
        retryable: null,
      };
    }
    case "left": {
      if (final) return null;
      const answered = ev.answered || call.answeredAt !== null || call.status === "in_progress";
      const m = outcomeFromDisconnect(ev.reason, answered);
      return {
        status: m.status,
        answeredAt: call.answeredAt,
        endedAt: ev.at,
        outcome: m.outcome,
        retryable: m.retryable,
      };
    }
    case "room_finished": {
      if (final) return null;
      const answered = call.answeredAt !== null || call.status === "in_progress";
      return answered
        ? {
          status: "completed",
          answeredAt: call.answeredAt,
          endedAt: ev.at,
          outcome: "answered",
          retryable: false,
        }
        : {
          status: "failed",
          answeredAt: null,
          endedAt: ev.at,
          outcome: "failed",
          retryable: true,
        };
    }
  }
}

/** Whole seconds between answer and end, when both are known. */
export function durationSec(answeredAt: Date | null, endedAt: Date | null): number | null {
  if (!answeredAt || !endedAt) return null;
  return Math.max(0, Math.round((endedAt.getTime() - answeredAt.getTime()) / 1000));
}
