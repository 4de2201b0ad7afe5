// A requester names an assistant by id: theirs, another account's (403) or none at all (404),
// as api.md's error table says.
import type { Sql, Tx } from "./db.ts";
import { ForbiddenError, NotFoundError } from "./errors.ts";

/** The user's own assistant, read under their rights (`tx`); `sql` only tells whose it is. */
export async function requireAssistant(sql: Sql, tx: Tx, assistantId: string) {
  const [a] = await tx<
    { id: string; owner_id: string }[]
  >`select id, owner_id from public.assistant where id = ${assistantId}`;
  if (a) return a;
  const [other] = await sql`select 1 from public.assistant where id = ${assistantId}`;
  if (other) throw new ForbiddenError(`Assistant ${assistantId} belongs to another account.`);
  throw new NotFoundError(`Assistant ${assistantId} does not exist.`);
}
