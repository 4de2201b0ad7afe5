/**
 * What a simulated callee does, and how LiveKit reports each SIP outcome: the Twirp error of
 * CreateSIPParticipant (livekit/protocol SIPStatus.GRPCStatus), the disconnect reason the
 * SIP participant leaves with (livekit/sip classifyInviteError's call status, through
 * CallStatus.DisconnectReason, then livekit-server's handling of the leave request), and the
 * reason classifyInviteError records in the SIP call info.
 */
import { DisconnectReason, SIPStatus, SIPStatusCode } from "@livekit/protocol";
import { encodeErrorDetails, TwirpCode, TwirpError } from "./twirp.ts";

/** Time from the INVITE to the first response (180 Ringing or a final rejection), in seconds. */
export const POST_DIAL_DELAY_S = 0.5;
/** Ringing before an answer, in seconds. */
export const RING_BEFORE_ANSWER_S = 1;
/** Ringing before a 603 Decline, in seconds. */
export const RING_BEFORE_DECLINE_S = 2;
/** Talk time when the number does not choose one, in seconds. */
export const DEFAULT_TALK_S = 20;
/** LiveKit SIP's ringing timeout when the request sets none (livekit/sip defaultRingingTimeout). */
export const DEFAULT_RINGING_TIMEOUT_S = 180;
/** LiveKit SIP's cap on any call (livekit/sip maxCallDuration). */
export const MAX_CALL_DURATION_S = 24 * 60 * 60;
/** How long livekit-server waits on a CreateSIPParticipant with wait_until_answered (pkg/service/sip.go). */
export const WAIT_UNTIL_ANSWERED_LIMIT_S = 80;
/** How long livekit-server waits for the SIP participant to be created otherwise (pkg/service/sip.go). */
export const JOIN_LIMIT_S = 30;

export type CalleeBehaviour =
  | { kind: "answer"; ringS: number; talkS: number }
  | { kind: "reject"; ringS: number; sipStatusCode: number; sipStatus: string }
  | { kind: "no_answer" };

function reject(sipStatusCode: number, sipStatus: string, ringS = 0): CalleeBehaviour {
  return { kind: "reject", ringS, sipStatusCode, sipStatus };
}

/** The outcome table, chosen by the callee number's last three digits. */
export function calleeBehaviour(callTo: string): CalleeBehaviour {
  const last3 = callTo.replace(/\D/g, "").slice(-3);
  switch (last3) {
    case "401":
      return reject(401, "Unauthorized");
    case "403":
      return reject(403, "Forbidden");
    case "486":
      return reject(486, "Busy Here");
    case "480":
      return reject(480, "Temporarily Unavailable");
    case "408":
      return { kind: "no_answer" };
    case "404":
      return reject(404, "Not Found");
    case "603":
      return reject(603, "Decline", RING_BEFORE_DECLINE_S);
    case "503":
      return reject(503, "Service Unavailable");
  }
  if (last3.length === 3 && last3[0] === "9") {
    return { kind: "answer", ringS: RING_BEFORE_ANSWER_S, talkS: Number(last3.slice(1)) };
  }
  return { kind: "answer", ringS: RING_BEFORE_ANSWER_S, talkS: DEFAULT_TALK_S };
}

// SIP status -> Twirp code, from livekit/protocol's sipCodeToGRPCCode (keyed by enum name).
const SIP_TO_TWIRP: Record<string, TwirpCode> = {
  SIP_STATUS_MULTIPLE_CHOICES: "invalid_argument",
  SIP_STATUS_MOVED_PERMANENTLY: "not_found",
  SIP_STATUS_MOVED_TEMPORARILY: "not_found",
  SIP_STATUS_USE_PROXY: "invalid_argument",
  SIP_STATUS_ALTERNATIVE_SERVICE: "invalid_argument",
  SIP_STATUS_BAD_REQUEST: "invalid_argument",
  SIP_STATUS_UNAUTHORIZED: "permission_denied",
  SIP_STATUS_PAYMENT_REQUIRED: "permission_denied",
  SIP_STATUS_FORBIDDEN: "permission_denied",
  SIP_STATUS_NOTFOUND: "not_found",
  SIP_STATUS_METHOD_NOT_ALLOWED: "invalid_argument",
  SIP_STATUS_NOT_ACCEPTABLE: "invalid_argument",
  SIP_STATUS_PROXY_AUTH_REQUIRED: "unauthenticated",
  SIP_STATUS_REQUEST_TIMEOUT: "deadline_exceeded",
  SIP_STATUS_CONFLICT: "failed_precondition",
  SIP_STATUS_GONE: "not_found",
  SIP_STATUS_LENGTH_REQUIRED: "invalid_argument",
  SIP_STATUS_CONDITIONAL_REQUEST_FAILED: "failed_precondition",
  SIP_STATUS_REQUEST_ENTITY_TOO_LARGE: "invalid_argument",
  SIP_STATUS_REQUEST_URI_TOO_LONG: "invalid_argument",
  SIP_STATUS_UNSUPPORTED_MEDIA_TYPE: "invalid_argument",
  SIP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE: "out_of_range",
  SIP_STATUS_UNKNOWN_RESOURCE_PRIORITY: "invalid_argument",
  SIP_STATUS_BAD_EXTENSION: "invalid_argument",
  SIP_STATUS_EXTENSION_REQUIRED: "invalid_argument",
  SIP_STATUS_SESSION_INTERVAL_TOO_SMALL: "invalid_argument",
  SIP_STATUS_INTERVAL_TOO_BRIEF: "invalid_argument",
  SIP_STATUS_BAD_LOCATION_INFORMATION: "invalid_argument",
  SIP_STATUS_BAD_ALERT_MESSAGE: "invalid_argument",
  SIP_STATUS_USE_IDENTITY_HEADER: "unauthenticated",
  SIP_STATUS_PROVIDE_REFERRER_IDENTITY: "invalid_argument",
  SIP_STATUS_FLOW_FAILED: "invalid_argument",
  SIP_STATUS_ANONYMITY_DISALLOWED: "permission_denied",
  SIP_STATUS_BAD_IDENTITY_INFO: "unauthenticated",
  SIP_STATUS_UNSUPPORTED_CERTIFICATE: "unauthenticated",
  SIP_STATUS_INVALID_IDENTITY_HEADER: "unauthenticated",
  SIP_STATUS_FIRST_HOP_LACKS_OUTBOUND_SUPPORT: "invalid_argument",
  SIP_STATUS_MAX_BREADTH_EXCEEDED: "resource_exhausted",
  SIP_STATUS_BAD_INFO_PACKAGE: "invalid_argument",
  SIP_STATUS_CONSENT_NEEDED: "permission_denied",
  SIP_STATUS_TEMPORARILY_UNAVAILABLE: "resource_exhausted",
  SIP_STATUS_CALL_TRANSACTION_DOES_NOT_EXISTS: "not_found",
  SIP_STATUS_LOOP_DETECTED: "failed_precondition",
  SIP_STATUS_TOO_MANY_HOPS: "failed_precondition",
  SIP_STATUS_ADDRESS_INCOMPLETE: "invalid_argument",
  SIP_STATUS_AMBIGUOUS: "invalid_argument",
  SIP_STATUS_BUSY_HERE: "resource_exhausted",
  SIP_STATUS_REQUEST_TERMINATED: "aborted",
  SIP_STATUS_NOT_ACCEPTABLE_HERE: "invalid_argument",
  SIP_STATUS_BAD_EVENT: "invalid_argument",
  SIP_STATUS_REQUEST_PENDING: "aborted",
  SIP_STATUS_UNDECIPHERABLE: "invalid_argument",
  SIP_STATUS_SECURITY_AGREEMENT_REQUIRED: "unauthenticated",
  SIP_STATUS_INTERNAL_SERVER_ERROR: "failed_precondition",
  SIP_STATUS_NOT_IMPLEMENTED: "failed_precondition",
  SIP_STATUS_BAD_GATEWAY: "failed_precondition",
  SIP_STATUS_SERVICE_UNAVAILABLE: "failed_precondition",
  SIP_STATUS_GATEWAY_TIMEOUT: "deadline_exceeded",
  SIP_STATUS_VERSION_NOT_SUPPORTED: "invalid_argument",
  SIP_STATUS_MESSAGE_TOO_LARGE: "invalid_argument",
  SIP_STATUS_GLOBAL_BUSY_EVERYWHERE: "resource_exhausted",
  SIP_STATUS_GLOBAL_DECLINE: "permission_denied",
  SIP_STATUS_GLOBAL_DOES_NOT_EXIST_ANYWHERE: "not_found",
  SIP_STATUS_GLOBAL_NOT_ACCEPTABLE: "invalid_argument",
  SIP_STATUS_GLOBAL_UNWANTED: "permission_denied",
  SIP_STATUS_GLOBAL_REJECTED: "permission_denied",
};

export function sipStatusToTwirpCode(code: number): TwirpCode {
  const name = SIPStatusCode[code] as string | undefined;
  const mapped = name ? SIP_TO_TWIRP[name] : undefined;
  if (mapped) return mapped;
  if (code < 200) return "unknown";
  if (code < 500) return "invalid_argument";
  if (code < 600) return "failed_precondition";
  return "invalid_argument";
}

/** Final responses livekit/sip reports as "INVITE failed"; others are "unexpected status". */
const INVITE_FAILED_CODES = new Set([400, 404, 480, 486, 488]);

/** The Twirp error CreateSIPParticipant returns (with wait_until_answered) for a failed INVITE. */
export function sipCallError(code: number, reason: string): TwirpError {
  const enumName = (SIPStatusCode[code] as string | undefined) ?? `${code}`;
  const detail = reason !== ""
    ? `sip status: ${code}: ${reason}`
    : `sip status: ${code} (${enumName.replace(/^SIP_STATUS_/, "")})`;
  const prefix = INVITE_FAILED_CODES.has(code)
    ? "INVITE failed"
    : "unexpected status from INVITE response";
  const twirpCode = sipStatusToTwirpCode(code);
  const msg = `${prefix}: ${detail}`;
  return new TwirpError(twirpCode, msg, {
    sip_status_code: String(code),
    sip_status: reason !== "" ? reason : enumName,
    error_details: encodeErrorDetails(twirpCode, msg, new SIPStatus({ code, status: reason })),
  });
}

/**
 * A failed transfer, as livekit/sip reports it: the carrier's final answer to the REFER
 * (`sendRefer` returns the SIP status itself), or a NOTIFY whose sipfrag carries a failure
 * (`handleReferNotify`: "call transfer failed: ..."). The service's `ApplySIPStatus` then sets
 * the code from the SIP status (livekit/protocol SIPStatus.GRPCStatus), as for an INVITE, and
 * the SIP status travels in the error's meta.
 */
export function transferError(code: number, reason: string, stage: "refer" | "notify"): TwirpError {
  const enumName = (SIPStatusCode[code] as string | undefined) ?? `${code}`;
  const detail = reason !== ""
    ? `sip status: ${code}: ${reason}`
    : `sip status: ${code} (${enumName.replace(/^SIP_STATUS_/, "")})`;
  const msg = stage === "refer" ? detail : `call transfer failed: ${detail}`;
  const twirpCode = sipStatusToTwirpCode(code);
  return new TwirpError(twirpCode, msg, {
    sip_status_code: String(code),
    sip_status: reason !== "" ? reason : enumName,
    error_details: encodeErrorDetails(twirpCode, msg, new SIPStatus({ code, status: reason })),
  });
}

/** No final response within the ringing timeout: canceled, without SIP metadata. */
export function ringingTimeoutError(): TwirpError {
  return new TwirpError("canceled", "sip request timed out");
}

function isCarrierLimit(reason: string): boolean {
  const r = reason.toLowerCase();
  return r.includes("cps limit exceeded") || r.includes("concurrent call limit exceeded");
}

/**
 * The disconnect reason the SIP participant leaves with. livekit/sip classifyInviteError gives
 * the failed call a status: rejected (401, 403, 407, 486, 488, any other 4xx, 6xx, and 5xx
 * whose reason names a trunk CPS or concurrent call limit), unavailable (404, 408, 480, the
 * ringing timeout) or dropped (any other 5xx). The room connection is closed with
 * CallStatus.DisconnectReason(): USER_REJECTED, USER_UNAVAILABLE, or UNKNOWN_REASON for a
 * dropped call, which livekit-server records as CLIENT_INITIATED (a leave request with a
 * reason it does not map is a client-initiated leave).
 */
export function leaveReasonForSipStatus(code: number, reason: string): DisconnectReason {
  if (code === 404 || code === 408 || code === 480) return DisconnectReason.USER_UNAVAILABLE;
  if (code >= 400 && code < 500) return DisconnectReason.USER_REJECTED;
  if (code >= 500 && code < 600) {
    return isCarrierLimit(reason)
      ? DisconnectReason.USER_REJECTED
      : DisconnectReason.CLIENT_INITIATED;
  }
  if (code >= 600 && code < 700) return DisconnectReason.USER_REJECTED;
  return DisconnectReason.CLIENT_INITIATED;
}

/**
 * The reason classifyInviteError records in the SIP call info (SIPCallInfo.disconnect_reason),
 * which is not the participant's: USER_REJECTED for 401/407, 403, 486, 488 and 6xx;
 * USER_UNAVAILABLE for 404, 408, 480 and any other 4xx; SIP_TRUNK_FAILURE for every 5xx,
 * carrier limits included.
 */
export function sipCallDisconnectReason(code: number): DisconnectReason {
  if ([401, 403, 407, 486, 488].includes(code)) return DisconnectReason.USER_REJECTED;
  if (code >= 400 && code < 500) return DisconnectReason.USER_UNAVAILABLE;
  if (code >= 500 && code < 600) return DisconnectReason.SIP_TRUNK_FAILURE;
  if (code >= 600 && code < 700) return DisconnectReason.USER_REJECTED;
  return DisconnectReason.UNKNOWN_REASON;
}

export type CallOutcome =
  | "dialing"
  | "ringing"
  | "active"
  | "completed"
  | "transferred"
  | "busy"
  | "unavailable"
  | "not_found"
  | "declined"
  | "no_answer"
  | "rate_limited"
  | "unauthorized"
  | "forbidden"
  | "failed"
  | "canceled";

export function outcomeForSipStatus(code: number, reason: string): CallOutcome {
  if (code === 486 || code === 600) return "busy";
  if (code === 480) return "unavailable";
  if (code === 404 || code === 604) return "not_found";
  if (code === 603 || code === 607 || code === 608) return "declined";
  if (code === 401 || code === 407) return "unauthorized";
  if (code === 403) return "forbidden";
  if (code >= 500 && code < 600 && isCarrierLimit(reason)) return "rate_limited";
  return "failed";
}
