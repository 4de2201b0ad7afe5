import { z } from "zod";
import { authenticateCallCaller, namedCall } from "../_shared/agent_auth.ts";
import { db } from "../_shared/db.ts";
import { ValidationError } from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { liveKit } from "../_shared/livekit.ts";
import { uuid } from "../_shared/schemas.ts";
import { findCall, parseTransferTarget, transferCall } from "../_shared/transfer.ts";

const Body = z.strictObject({
  callId: uuid.optional(),
  roomName: z.string().min(1).max(256).optional(),
  transferTo: z.string().min(1).max(256),
  playDialtone: z.boolean().optional(),
});

export const handler = serve("transfer-call", ["POST"], async (req, { config, log }) => {
  const caller = await authenticateCallCaller(req, config, { users: true });
  const body = await readJson(req, Body);
  const named = namedCall(caller, body);
  const target = parseTransferTarget(body.transferTo);
  if (!target) {
    throw new ValidationError(
      "transferTo must be an E.164 number (+15551234567), a tel: URI or a sip: URI (sip:user@host).",
      { fields: { transferTo: "expected +E.164, tel:+E.164 or sip:user@host" } },
    );
  }
  const sql = db(config.dbUrl);
  const call = await findCall(sql, caller, named);
  return await transferCall(config, sql, liveKit(config), call, target, body, caller, log);
});
