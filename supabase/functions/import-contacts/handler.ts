import { authenticate, requireUser } from "../_shared/auth.ts";
import { importContacts, ImportQuery } from "./contacts.ts";
import { serve, validate } from "../_shared/http.ts";

export const handler = serve("import-contacts", ["POST"], async (req, ctx) => {
  const user = requireUser(await authenticate(req, ctx));
  const query = validate(ImportQuery, Object.fromEntries(new URL(req.url).searchParams));
  return await importContacts(ctx, user, req, query);
});
