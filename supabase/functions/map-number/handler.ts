import { authenticate, requireUser } from "../_shared/auth.ts";
import { readJson, serve } from "../_shared/http.ts";
import { AssignBody, assignNumber } from "./numbers.ts";

export const handler = serve("map-number", ["POST"], async (req, ctx) => {
  const user = requireUser(await authenticate(req, ctx));
  return await assignNumber(ctx, user, await readJson(req, AssignBody));
});
