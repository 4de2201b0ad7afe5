// The functions' database pool when PostgreSQL ends its backends (as a restart or failover
// does): what was under way fails and is not run again; what comes next runs at once.
import assert from "node:assert/strict";
import { asService, closeDb, db } from "../../supabase/functions/_shared/db.ts";
import { eventually, sql, stack } from "../helpers/stack.ts";

const code = (e: unknown) => (e as { code?: string }).code ?? String(e);
const settle = (p: Promise<unknown>) => p.then(() => "ok", code);

Deno.test("statements cut off by ended backends fail once, and the pool serves the next ones at once", async () => {
  const pool = db(stack.dbUrl);
  try {
    // Ten connections, then each busy: five single statements, five transactions.
    await Promise.all(Array.from({ length: 10 }, () => pool`select 1`));
    await new Promise((r) => setTimeout(r, 200));
    const busy = [
      ...Array.from({ length: 5 }, () => settle(pool`select pg_sleep(30) /* db-reconnect */`)),
      ...Array.from(
        { length: 5 },
        () => settle(asService(pool, (tx) => tx`select pg_sleep(30) /* db-reconnect */`)),
      ),
    ];
    const running = () =>
      sql`select pid from pg_stat_activity
        where state = 'active' and query like 'select pg_sleep(30) /* db-reconnect */%'`;
    await eventually(async () => (await running()).length === 10, "ten busy backends");
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
      where state = 'active' and query like 'select pg_sleep(30) /* db-reconnect */%'`;

    // Sent before the backends ended: each fails (run again, it would sleep 30 s instead).
    const cutOff = await Promise.all(busy);
    assert.ok(
      cutOff.every((c) => /^(CONNECTION_CLOSED|ECONNRESET|57P01)$/.test(c)),
      JSON.stringify(cutOff),
    );

    // The connections that were busy fail their next statement in postgres.js 3.4.9 (the old
    // backend's 57P01, or a reconnect that never sends its startup message): none may show.
    const started = Date.now();
    const next = await Promise.all([
      ...Array.from({ length: 10 }, () => settle(pool`select 1`)),
      ...Array.from({ length: 10 }, () => settle(asService(pool, (tx) => tx`select 1`))),
    ]);
    assert.deepEqual(next, Array(20).fill("ok"));
    assert.ok(
      Date.now() - started < 10_000,
      "no statement waited out a reconnect that cannot finish (connect_timeout is 10 s)",
    );
  } finally {
    await closeDb();
  }
});
