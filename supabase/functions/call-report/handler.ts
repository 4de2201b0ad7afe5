import { authenticateCallCaller, requireRoom } from "../_shared/agent_auth.ts";
import { findCall } from "../_shared/transfer.ts";
import { db } from "../_shared/db.ts";
import { ValidationError } from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { ReportBody, reportCall } from "../_shared/reports.ts";

export const handler = serve("call-report", ["POST"], async (req, { config, log }) => {
  const caller = await authenticateCallCaller(req, config, { users: false });
  const body = await readJson(req, ReportBody);
  // An agent names its own call by its token's room; a callId names it exactly.
  const roomName = body.roomName ??
    (caller.kind === "agent" && !body.callId ? caller.room : undefined);
  if (!body.callId && !roomName) {
    throw new ValidationError("Name the call: give callId or roomName.", {
      fields: { callId: "give callId or roomName" },
    });
  }
  // A room token may report only on its own room: refused before anything is looked up.
  if (roomName) requireRoom(caller, roomName);
  const sql = db(config.dbUrl);
  const call = await findCall(sql, caller, { callId: body.callId, roomName });
  const answer = await reportCall(sql, call.id, body, caller);
  log.info(answer.duplicate ? "call report repeated" : "call reported", {
    callId: call.id,
    disposition: body.disposition,
    campaignCallId: answer.campaignCall?.id ?? null,
    contactStatus: answer.campaignCall?.status ?? null,
  });
  return answer;
});
