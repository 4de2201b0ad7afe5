import assert from "node:assert/strict";
import {
  applyEvent,
  durationSec,
  outcomeFromDisconnect,
  outcomeFromError,
} from "../../supabase/functions/_shared/outcomes.ts";

const at = (s: number) => new Date(Date.UTC(2026, 10, 24, 12, 0, s));

Deno.test("SIP statuses map to call outcomes", () => {
  const f = (sip: number | null, code = "failed_precondition", message = "") =>
    outcomeFromError({ code, status: 412, sipStatusCode: sip, message });
  assert.deepEqual(f(486, "resource_exhausted"), {
    status: "busy",
    outcome: "busy",
    retryable: true,
  });
  assert.deepEqual(f(480, "resource_exhausted"), {
    status: "no_answer",
    outcome: "unavailable",
    retryable: true,
  });
  assert.deepEqual(f(404, "not_found"), {
    status: "failed",
    outcome: "not_found",
    retryable: false,
  });
  assert.deepEqual(f(603, "permission_denied"), {
    status: "failed",
    outcome: "rejected",
    retryable: false,
  });
  assert.equal(
    f(503, "failed_precondition", "SIP call failed: 503 Trunk CPS limit exceeded").outcome,
    "cps_limited",
  );
  assert.equal(f(503).outcome, "carrier_error");
});

Deno.test("no SIP status: a timeout is no answer and anything else is LiveKit's failure", () => {
  assert.equal(
    outcomeFromError({ code: "canceled", status: 408, sipStatusCode: null }).status,
    "no_answer",
  );
  assert.equal(
    outcomeFromError({ code: "unavailable", status: 503, sipStatusCode: null }).outcome,
    "livekit_error",
  );
  assert.equal(
    outcomeFromError({ code: "unreachable", status: null, sipStatusCode: null }).retryable,
    true,
  );
  assert.equal(
    outcomeFromError({ code: "invalid_argument", status: 400, sipStatusCode: null }).retryable,
    false,
  );
});

Deno.test("a participant that leaves before answering is a failure of its kind", () => {
  assert.equal(outcomeFromDisconnect("USER_REJECTED", false).status, "busy");
  assert.equal(outcomeFromDisconnect("USER_UNAVAILABLE", false).status, "no_answer");
  assert.equal(outcomeFromDisconnect("CLIENT_INITIATED", false).status, "failed");
  assert.equal(outcomeFromDisconnect("CLIENT_INITIATED", true).status, "completed");
});

Deno.test("a call only moves forward and a final call is never reopened", () => {
  const dialing = { status: "dialing" as const, answeredAt: null, endedAt: null };
  const ringing = applyEvent(dialing, { kind: "ringing", at: at(1) })!;
  assert.equal(ringing.status, "ringing");
  const answered = applyEvent(ringing, { kind: "answered", at: at(3) })!;
  assert.equal(answered.status, "in_progress");
  assert.equal(
    applyEvent(answered, { kind: "ringing", at: at(2) }),
    null,
    "a late ringing changes nothing",
  );
  const left = applyEvent(answered, {
    kind: "left",
    at: at(33),
    reason: "CLIENT_INITIATED",
    answered: false,
  })!;
  assert.equal(left.status, "completed");
  assert.equal(durationSec(left.answeredAt, left.endedAt), 30);
  assert.equal(applyEvent(left, { kind: "room_finished", at: at(40) }), null);
  assert.equal(
    applyEvent(left, { kind: "left", at: at(41), reason: "USER_REJECTED", answered: false }),
    null,
  );
});

Deno.test("a late answer fills in the time but keeps a final status", () => {
  const busy = { status: "busy" as const, answeredAt: null, endedAt: at(5) };
  const t = applyEvent(busy, { kind: "answered", at: at(4) })!;
  assert.equal(t.status, "busy");
  assert.deepEqual(t.answeredAt, at(4));
});

Deno.test("a room that finishes before an answer ends the call as failed", () => {
  const t = applyEvent({ status: "ringing", answeredAt: null, endedAt: null }, {
    kind: "room_finished",
    at: at(9),
  })!;
  assert.equal(t.status, "failed");
  assert.equal(t.retryable, true);
});
