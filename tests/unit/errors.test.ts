// Database refusals reach a function's requester with the status PostgREST would give them.
import assert from "node:assert/strict";
import { toErrorBody } from "../../supabase/functions/_shared/errors.ts";

const pg = (fields: Record<string, string>) =>
  Object.assign(new Error(fields.message ?? "refused"), { name: "PostgresError", ...fields });

Deno.test("a status raised as PTnnn is that status, with the SQL's message", () => {
  const notFound = toErrorBody(pg({ code: "PT404", message: "campaign x does not exist" }));
  assert.equal(notFound.status, 404);
  assert.deepEqual(notFound.body.error, {
    code: "not_found",
    message: "campaign x does not exist",
  });
  assert.equal(toErrorBody(pg({ code: "PT403", message: "no" })).status, 403);
  assert.equal(toErrorBody(pg({ code: "PT409", message: "no" })).status, 409);
  assert.equal(toErrorBody(pg({ code: "PT422", message: "no" })).status, 422);
  // Not a status: an internal error whose text is not shown.
  const odd = toErrorBody(pg({ code: "PT999", message: "secret detail" }));
  assert.equal(odd.status, 500);
  assert.ok(!JSON.stringify(odd.body).includes("secret detail"));
});

Deno.test("a check constraint named in plain words is the message, naming its column", () => {
  const r = toErrorBody(pg({
    code: "23514",
    message: 'new row for relation "campaigns" violates check constraint "…"',
    table_name: "campaigns",
    constraint_name: "window_end must be after window_start",
  }));
  assert.equal(r.status, 400);
  assert.equal(r.body.error.message, "window_end must be after window_start.");
  assert.deepEqual(
    (r.body.error.details as { fields: Record<string, string> }).fields,
    { window_end: "must be after window_start" },
  );
});
