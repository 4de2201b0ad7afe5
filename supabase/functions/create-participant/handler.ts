import { authenticate } from "../_shared/auth.ts";
import { CallBody, requestCall } from "./direct_calls.ts";
import { readJson, serve } from "../_shared/http.ts";

export const handler = serve("create-participant", ["POST"], async (req, ctx) => {
  const requester = await authenticate(req, ctx);
  const body = await readJson(req, CallBody);
  return await requestCall(ctx, requester, body);
});
