import { authenticate, requireUser } from "../_shared/auth.ts";
import { readJson, readQuery, serve } from "../_shared/http.ts";
import { listTrunks, TrunkFilter } from "./listing.ts";

export const handler = serve("list-trunks", ["GET", "POST"], async (req, ctx) => {
  const user = requireUser(await authenticate(req, ctx));
  const filter = req.method === "GET"
    ? readQuery(req, TrunkFilter)
    : await readJson(req, TrunkFilter);
  return await listTrunks(ctx, user, filter);
});
