import { authenticateCallRequester, namedCall } from "../_shared/agent_auth.ts";
import { findCall } from "../_shared/transfer.ts";
import { readJson, serve } from "../_shared/http.ts";
import { reportBody, reportCall } from "./reports.ts";

export const handler = serve("call-report", ["POST"], async (req, ctx) => {
  const { sql, log } = ctx;
  const requester = await authenticateCallRequester(req, ctx, { users: false });
  const body = await readJson(req, reportBody(ctx.clock.now()));
  const named = namedCall(requester, body);
  const call = await findCall(sql, requester, named);
  const answer = await reportCall(sql, call.id, body, requester);
  log.info(answer.duplicate ? "call report repeated" : "call reported", {
    callId: call.id,
    disposition: body.disposition,
    campaignCallId: answer.campaignCall?.id ?? null,
    contactStatus: answer.campaignCall?.status ?? null,
  });
  return answer;
});
