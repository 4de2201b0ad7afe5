import assert from "node:assert/strict";
import { outcomeFromError } from "../../supabase/functions/_shared/outcomes.ts";

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
