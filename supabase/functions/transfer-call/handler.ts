import { z } from "zod";
import { authenticateCallRequester, namedCall } from "../_shared/agent_auth.ts";
import { ValidationError } from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { uuid } from "../_shared/schemas.ts";
import { findCall, parseTransferTarget, transferCall } from "../_shared/transfer.ts";

const Body = z.strictObject({
  callId: uuid.optional(),
  roomName: z.string().min(1).max(256).optional(),
  transferTo: z.string().min(1).max(256),
  playDialtone: z.boolean().optional(),
});

export const handler = serve("transfer-call", ["POST"], async (req, ctx) => {
  const requester = await authenticateCallRequester(req, ctx, { users: true });
  const body = await readJson(req, Body);
  const named = namedCall(requester, body);
  const target = parseTransferTarget(body.transferTo);
  if (typeof target === "string") {
    throw new ValidationError(
      `transferTo must be an E.164 number (+15551234567), a tel: URI or a sip: URI (sip:user@host): ${target}.`,
      { fields: { transferTo: target } },
    );
  }
  const call = await findCall(ctx.sql, requester, named);
  return await transferCall(ctx, call, target, body, requester);
});
