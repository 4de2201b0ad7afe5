import { z } from "zod";
import { authenticate, requireService } from "../_shared/auth.ts";
import { ForbiddenError } from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { provisionRequested, runJob, trunkView } from "../_shared/provision.ts";
import { uuid } from "../_shared/schemas.ts";
import { checkUpstreams } from "./upstream_check.ts";

const Body = z.union([
  z.strictObject({ phoneNumberId: uuid }),
  z.strictObject({ assistantId: uuid }),
  z.strictObject({
    jobId: z.union([z.string().regex(/^[0-9]{1,18}$/), z.number().int().positive()]),
  }),
  // The service's check of LiveKit and Twilio with these credentials (`deno task doctor`).
  z.strictObject({ check: z.literal(true) }),
], { error: "send exactly one of phoneNumberId, assistantId, jobId or check" });

export const handler = serve("create-trunks", ["POST"], async (req, ctx) => {
  const requester = await authenticate(req, ctx);
  // Validated as sent: a z.record pass first would drop a "__proto__" key, so the strict
  // schemas below would never see (and refuse) it.
  const body = await readJson(req, Body);
  if ("check" in body) {
    requireService(requester);
    return { check: await checkUpstreams(ctx) };
  }
  if (!("jobId" in body)) return await provisionRequested(ctx, requester, body);
  if (requester.kind !== "service") {
    throw new ForbiddenError("Only the service may run provisioning jobs.");
  }
  const job = { id: String(body.jobId), ran: false };
  const ran = await runJob(ctx, job.id);
  if (!ran) return { job, trunks: [] };
  if (ran.error) throw ran.error;
  return { job: { ...job, ran: true }, trunks: ran.row ? [trunkView(ran.row)] : [] };
});
