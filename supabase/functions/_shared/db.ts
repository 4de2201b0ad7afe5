// Postgres access. User work runs under RLS exactly as PostgREST runs it: a transaction
// with `role` = authenticated and `request.jwt.claims` set; service work runs as the owner.
import postgres from "postgres";
import { logger } from "./log.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

const pools = new Map<string, Sql>();
let guarded = false;

/**
 * postgres.js 3.4.9 can throw from a write it queued just before PostgreSQL closed the
 * connection (porsager/postgres#1154, #1208): a TypeError from a timer callback that no caller
 * can catch, which would end the whole isolate when the database restarts. The closed
 * connection has already failed its queries, so the error is noted and ignored; any other
 * uncaught error still ends the process.
 */
export function guardClosedSocketWrites(note: (message: string) => void): void {
  if (guarded) return;
  guarded = true;
  globalThis.addEventListener("error", (e) => {
    const err = e.error;
    if (
      err instanceof TypeError && err.message.includes("reading 'write'") &&
      /postgres\/[0-9.]+\/src\/connection\.js/.test(err.stack ?? "")
    ) {
      e.preventDefault();
      note(`postgres.js wrote to a closed connection after a restart (ignored): ${err.message}`);
    }
  });
}

/** One pool per database URL; `prepare: false` so Supabase's transaction pooler works. */
export function db(url: string): Sql {
  let sql = pools.get(url);
  if (!sql) {
    guardClosedSocketWrites((message) => logger({ component: "db" }).warn(message));
    sql = postgres(url, {
      prepare: false,
      max: 10,
      idle_timeout: 20,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "edge-functions" },
    });
    pools.set(url, sql);
  }
  return sql;
}

export async function closeDb(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((s) => s.end({ timeout: 2 })));
}

export interface UserClaims {
  sub: string;
  role: string;
  [key: string]: unknown;
}

/** Runs `fn` in a transaction as the user, under RLS. */
export function asUser<T>(sql: Sql, claims: UserClaims, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}

/** Runs `fn` in a transaction with the service's rights (RLS bypassed). */
export function asService<T>(sql: Sql, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => await fn(tx)) as Promise<T>;
}
