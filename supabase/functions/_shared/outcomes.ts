// What LiveKit's answer to a dial means: the status and outcome its exact SIP status or error
// code maps to. What that then does to the call (forward only, a final call never moves) is
// decided by the database (20261202000650_call_transitions.sql).

/** public.call_status, in its order (tests/e2e/rules.test.ts ties the two). */
export const CALL_STATUSES = [
  "dialing",
  "ringing",
  "in_progress",
  "completed",
  "busy",
  "no_answer",
  "failed",
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

/** The outcomes a dial can end with; each is a row of internal.call_outcome (tied by a test). */
export const OUTCOMES = [
  "answered",
  "busy",
  "no_answer",
  "unavailable",
  "not_found",
  "blocked",
  "rejected",
  "auth_failed",
  "cps_limited",
  "carrier_error",
  "livekit_error",
  "failed",
  "lost",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

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
