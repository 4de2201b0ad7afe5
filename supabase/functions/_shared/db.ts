// Postgres access. User work runs under RLS exactly as PostgREST runs it: a transaction
// with `role` = authenticated and `request.jwt.claims` set; service work runs as the owner.
import postgres from "postgres";
import { isDatabaseUnavailable } from "./errors.ts";
import { type Clock, wallClock } from "./clock.ts";
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

/** What postgres.js 3.4.9 keeps on a query (src/query.js). */
interface QueryInternals {
  /** Null until a connection takes the query: connection.js execute() sets it before any write. */
  state: unknown;
  /** The dispatcher of the pool that made the query. */
  handler: (query: QueryInternals) => void;
  /** Where every failure path of the driver ends. */
  reject: (e: unknown) => void;
}

interface Pool {
  sql: Sql;
  dispatch: (query: QueryInternals) => void;
  openedAt: number;
}

/**
 * The pool, with a query or transaction that failed with a connection error before any of it
 * reached the server run once more: it cannot be applied twice. postgres.js 3.4.9 fails such
 * queries after PostgreSQL restarts: a connection that was busy at the restart fails its next
 * query with the old backend's FATAL (57P01) at the new backend's ReadyForQuery, and one that
 * had a write buffered at the close never flushes another (its stale write timer stops every
 * later startup message: CONNECT_TIMEOUT on each reconnect; porsager/postgres#1208, #1215).
 * A refused connect fails the same way. A query a connection took is never run again
 * (CONNECTION_CLOSED, ECONNRESET, EPIPE: it may have been written, and applied), nor a
 * transaction whose body ran. Any connection error also replaces the pool (at most every
 * 100 ms), so later queries never meet connections the driver cannot bring back; the old pool
 * finishes what it runs and its connections idle out.
 */
function resilient(open: () => Sql, clock: Clock): Sql {
  const start = (): Pool => {
    const sql = open();
    // A query that is never run, for its pool's dispatcher.
    const { handler } = sql.unsafe("") as unknown as QueryInternals;
    return { sql, dispatch: handler, openedAt: clock.now() };
  };
  let pool = start();
  // Left to finish their work and idle out; the latest are kept for `end`.
  const retired: Sql[] = [];
  const renew = (failed: Pool) => {
    if (failed !== pool || clock.now() - failed.openedAt < 100) return;
    pool = start();
    if (retired.push(failed.sql) > 10) retired.shift();
  };
  const retryUnsent = <T>(from: Pool, value: T): T => {
    const query = value as Partial<QueryInternals>;
    if (!(value instanceof Promise) || typeof query.reject !== "function") return value;
    const reject = query.reject;
    let retried = false;
    query.reject = (e) => {
      if (!isDatabaseUnavailable(e)) return reject(e);
      renew(from);
      if (retried || query.state !== null) return reject(e);
      retried = true;
      // After the failing connection's own bookkeeping.
      queueMicrotask(() => pool.dispatch(query as QueryInternals));
    };
    return value;
  };
  const own: Record<PropertyKey, unknown> = {
    unsafe: (...args: Parameters<Sql["unsafe"]>) => {
      const p = pool;
      return retryUnsent(p, p.sql.unsafe(...args));
    },
    begin: async (...args: unknown[]) => {
      const body = args.pop() as (tx: Tx) => unknown;
      let ran = false;
      const attempt = (p: Pool) =>
        (p.sql.begin as unknown as (...a: unknown[]) => Promise<unknown>)(...args, (tx: Tx) => {
          ran = true;
          return body(tx);
        });
      const first = pool;
      try {
        return await attempt(first);
      } catch (e) {
        if (!isDatabaseUnavailable(e)) throw e;
        renew(first);
        // A transaction whose body never ran sent at most BEGIN, which changes nothing.
        if (ran) throw e;
        return await attempt(pool);
      }
    },
    end: async (options?: { timeout?: number }) => {
      await Promise.all([pool.sql, ...retired.splice(0)].map((s) => s.end(options)));
    },
  };
  return new Proxy(pool.sql, {
    apply: (_target, _this, args) => {
      const p = pool;
      return retryUnsent(p, (p.sql as unknown as (...a: unknown[]) => unknown)(...args));
    },
    get: (_target, key) => (key in own ? own[key] : Reflect.get(pool.sql, key)),
  });
}

/** One pool per database URL; `prepare: false` so Supabase's transaction pooler works. */
export function db(url: string, clock: Clock = wallClock): Sql {
  let sql = pools.get(url);
  if (!sql) {
    guardClosedSocketWrites((message) => logger({ component: "db" }, clock).warn(message));
    sql = resilient(() =>
      postgres(url, {
        prepare: false,
        max: 10,
        idle_timeout: 20,
        connect_timeout: 10,
        onnotice: () => {},
        connection: { application_name: "edge-functions" },
      }), clock);
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
