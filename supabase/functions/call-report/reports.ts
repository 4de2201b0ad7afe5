// Dispositions: what the agent in the call says happened. The request is checked here (the
// dispositions and their fields); what each one does to the call's campaign contact is
// decided by the database (internal.report_call, internal.settle_contact and the outcome
// table), in one transaction with the call's row lock.
import { z } from "zod";
import type { CallRequester } from "../_shared/agent_auth.ts";
import type { Sql } from "../_shared/db.ts";
import { AppError, ConflictError, NotFoundError, PreconditionError } from "../_shared/errors.ts";
import { uuid } from "../_shared/schemas.ts";

export const DISPOSITIONS = [
  "completed",
  "voicemail",
  "voicemail_left",
  "opted_out",
  "callback",
  "transferred",
  "not_interested",
  "wrong_person",
  "failed",
] as const;
export type Disposition = (typeof DISPOSITIONS)[number];

/** How far a requested callback may lie in the past (clock skew) or in the future. */
const CALLBACK_PAST_MS = 60_000;
const CALLBACK_FUTURE_MS = 366 * 24 * 3600 * 1000;
const MAX_DATA_BYTES = 16 * 1024;

/** The request as of `now` (the deps' clock): a callback time is judged against it. */
export const reportBody = (now: number) =>
  z.strictObject({
    roomName: z.string().min(1).max(256).optional(),
    callId: uuid.optional(),
    disposition: z.enum(DISPOSITIONS, { error: `must be one of ${DISPOSITIONS.join(", ")}` }),
    callbackAt: z.iso.datetime({
      offset: true,
      error: "must be an ISO 8601 time with an offset, e.g. 2026-12-02T10:00:00-05:00",
    }).optional(),
    summary: z.string().max(10_000).optional(),
    data: z.record(z.string(), z.unknown()).refine(
      (d) => new TextEncoder().encode(JSON.stringify(d)).length <= MAX_DATA_BYTES,
      "at most 16 KiB of JSON",
    ).optional(),
    transferTo: z.string().min(1).max(256).optional(),
  }).superRefine((b, ctx) => {
    if (b.disposition === "callback" && !b.callbackAt) {
      ctx.addIssue({ code: "custom", path: ["callbackAt"], message: "is required for a callback" });
    }
    if (b.disposition !== "callback" && b.callbackAt) {
      ctx.addIssue({ code: "custom", path: ["callbackAt"], message: "only goes with a callback" });
    }
    const problem = b.callbackAt ? callbackProblem(b.callbackAt, now) : null;
    if (problem) ctx.addIssue({ code: "custom", path: ["callbackAt"], message: problem });
    if (b.disposition !== "transferred" && b.transferTo) {
      ctx.addIssue({ code: "custom", path: ["transferTo"], message: "only goes with transferred" });
    }
  });
export type ReportRequest = z.infer<ReturnType<typeof reportBody>>;

/** A callback time the request may carry: not in the past, not more than a year ahead. */
export function callbackProblem(callbackAt: string, now: number): string | null {
  const at = Date.parse(callbackAt);
  if (!Number.isFinite(at)) return "is not a valid time";
  if (at < now - CALLBACK_PAST_MS) return "is in the past";
  if (at > now + CALLBACK_FUTURE_MS) return "is more than a year ahead";
  return null;
}

export interface ReportAnswer {
  call: {
    id: string;
    status: string;
    outcome: string | null;
    disposition: string | null;
    callbackAt: string | null;
  };
  campaignCall?: {
    id: string;
    status: string;
    nextAttemptAt: string | null;
    attempts: number;
    lastOutcome: string | null;
  };
  duplicate: boolean;
}

/** Records the report (idempotent per call and disposition) and answers api.md's shape. */
export async function reportCall(
  sql: Sql,
  callId: string,
  body: ReportRequest,
  requester: CallRequester,
): Promise<ReportAnswer> {
  const data = body.transferTo ? { ...(body.data ?? {}), transferTo: body.transferTo } : body.data;
  const [{ r }] = await sql<{ r: Record<string, unknown> }[]>`
    select internal.report_call(${callId}, ${body.disposition}, ${body.callbackAt ?? null},
      ${body.summary ?? null}, ${data ? sql.json(data as never) : null},
      ${requester.kind === "service" ? "service" : "agent"}) as r`;
  switch (r.error) {
    case undefined:
      break;
    case "not_found":
      throw new NotFoundError(`Call ${callId} does not exist.`);
    case "final":
      throw new ConflictError(
        `Call ${callId} was already reported as ${r.disposition} and its campaign contact is final (${r.contactStatus}); a later report replaces an earlier one only while the contact is not final.`,
        { disposition: r.disposition, contactStatus: r.contactStatus },
      );
    case "past_campaign_end":
      throw new PreconditionError(
        "past_campaign_end",
        r.attemptAt
          ? `The callback would be placed at ${r.attemptAt} (the first time the callee's calling window is open), after the campaign ends at ${r.endsAt}; ask for an earlier time or extend the campaign.`
          : "The callee's calling window never opens after that time; ask for another time or widen the campaign's window.",
        { attemptAt: r.attemptAt ?? null, endsAt: r.endsAt ?? null },
      );
    default:
      throw new AppError(400, "invalid_request", `The report was refused (${r.error}).`);
  }
  const answer = r as unknown as ReportAnswer;
  if (!answer.campaignCall) delete answer.campaignCall;
  return answer;
}
