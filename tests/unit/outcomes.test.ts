import assert from "node:assert/strict";
import {
  applyEvent,
  type CallState,
  durationSec,
  outcomeFromDisconnect,
  outcomeFromError,
} from "../../supabase/functions/_shared/outcomes.ts";

const at = (s: number) => new Date(Date.UTC(2026, 10, 24, 12, 0, s));

Deno.test("exact SIP statuses of a waited dial map to their own outcomes", () => {
  const f = (sip: number, code = "failed_precondition", sipStatus = "") =>
    outcomeFromError({ code, status: 412, sipStatusCode: sip, sipStatus });
  assert.deepEqual(f(486, "resource_exhausted"), { status: "busy", outcome: "busy" });
  assert.deepEqual(f(480, "resource_exhausted"), { status: "no_answer", outcome: "unavailable" });
  assert.deepEqual(f(408, "deadline_exceeded"), { status: "no_answer", outcome: "no_answer" });
  for (const sip of [404, 410, 484, 604]) assert.equal(f(sip).outcome, "not_found", `${sip}`);
  for (const sip of [401, 407]) assert.equal(f(sip).outcome, "auth_failed", `${sip}`);
  for (const sip of [403, 607, 608]) assert.equal(f(sip).outcome, "blocked", `${sip}`);
  assert.equal(f(603, "permission_denied", "Decline").outcome, "rejected");
  assert.equal(f(603, "permission_denied", "Blocked as potential fraud").outcome, "blocked");
  assert.equal(f(503, "failed_precondition", "Trunk CPS limit exceeded").outcome, "cps_limited");
  assert.equal(f(503, "failed_precondition", "Service Unavailable").outcome, "carrier_error");
  assert.equal(f(488).outcome, "failed");
});

Deno.test("no SIP status: the ringing timeout is no answer and anything else LiveKit's failure", () => {
  const f = (code: string, status: number | null) =>
    outcomeFromError({ code, status, sipStatusCode: null });
  assert.deepEqual(f("canceled", 408), { status: "no_answer", outcome: "no_answer" });
  assert.equal(f("unavailable", 503).outcome, "livekit_error");
  assert.equal(f("unreachable", null).outcome, "livekit_error");
  assert.equal(f("invalid_argument", 400).outcome, "failed");
});

Deno.test("a leave without the dial's answer is judged by LiveKit's coarse disconnect reason", () => {
  assert.equal(outcomeFromDisconnect("USER_REJECTED", false).status, "busy");
  assert.equal(outcomeFromDisconnect("USER_UNAVAILABLE", false).status, "no_answer");
  assert.equal(outcomeFromDisconnect("SIP_TRUNK_FAILURE", false).outcome, "carrier_error");
  assert.equal(outcomeFromDisconnect("CLIENT_INITIATED", false).status, "failed");
  assert.equal(outcomeFromDisconnect("CLIENT_INITIATED", true).status, "completed");
});

const live = (s: Partial<CallState> = {}): CallState => ({
  status: "dialing",
  answeredAt: null,
  endedAt: null,
  dialPending: false,
  ...s,
});

Deno.test("a call only moves forward and a final call is never reopened", () => {
  const ringing = applyEvent(live(), { kind: "ringing", at: at(1) })!;
  assert.equal(ringing.status, "ringing");
  const answered = applyEvent({ ...live(), ...ringing }, { kind: "answered", at: at(3) })!;
  assert.equal(answered.status, "in_progress");
  const a = { ...live(), ...answered };
  assert.equal(
    applyEvent(a, { kind: "ringing", at: at(2) }),
    null,
    "a late ringing changes nothing",
  );
  const left = applyEvent(a, {
    kind: "left",
    at: at(33),
    reason: "CLIENT_INITIATED",
    answered: false,
  })!;
  assert.equal(left.status, "completed");
  assert.equal(durationSec(left.answeredAt, left.endedAt), 30);
  const l = { ...live(), ...left };
  assert.equal(applyEvent(l, { kind: "room_finished", at: at(40), departureSec: 20 }), null);
  assert.equal(
    applyEvent(l, { kind: "left", at: at(41), reason: "USER_REJECTED", answered: false }),
    null,
  );
});

Deno.test("while the dial waits for its answer a leave only notes the time, never an outcome", () => {
  const pending = live({ dialPending: true });
  const t = applyEvent(pending, {
    kind: "left",
    at: at(4),
    reason: "USER_REJECTED",
    answered: false,
  })!;
  assert.equal(t.status, "dialing", "the dial's SIP status decides, not the coarse reason");
  assert.equal(t.outcome, null);
  assert.deepEqual(t.endedAt, at(4));
  assert.equal(
    applyEvent(live({ dialPending: true, endedAt: at(4) }), {
      kind: "room_finished",
      at: at(30),
      departureSec: 20,
    }),
    null,
  );
});

Deno.test("a room that finishes without the leave ends an answered call at its departure time", () => {
  const t = applyEvent(live({ status: "in_progress", answeredAt: at(2) }), {
    kind: "room_finished",
    at: at(50),
    departureSec: 20,
  })!;
  assert.equal(t.status, "completed");
  assert.deepEqual(t.endedAt, at(30));
  assert.equal(durationSec(t.answeredAt, t.endedAt), 28);
});

Deno.test("a late answer fills in the time but keeps a final status", () => {
  const t = applyEvent(live({ status: "busy", endedAt: at(5) }), { kind: "answered", at: at(4) })!;
  assert.equal(t.status, "busy");
  assert.deepEqual(t.answeredAt, at(4));
});
