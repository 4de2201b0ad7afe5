// One worker at a time on a named piece of work, without a transaction held open across the
// HTTP calls it makes (internal.lease: taken when free or expired, released by its holder; a
// crashed holder's lease expires). Provisioning a number and ensuring an account's carrier
// trunk each take one.
import type { Deps } from "./deps.ts";
import { UnavailableError } from "./errors.ts";

/** Longer than the work it covers takes (Twilio and LiveKit requests time out well before). */
const LEASE_SEC = 120;
/** How long to wait for another worker's lease before answering 503 with Retry-After. */
const WAIT_MS = 60_000;

/** Runs `fn` holding the lease `key`; waits (bounded) while another worker holds it. */
export async function withLease<T>(
  { sql, clock }: Pick<Deps, "sql" | "clock">,
  key: string,
  fn: () => Promise<T>,
  waitMs = WAIT_MS,
): Promise<T> {
  const holder = crypto.randomUUID();
  const until = clock.now() + waitMs;
  for (let pause = 10;; pause = Math.min(pause * 2, 100)) {
    const [taken] = await sql<{ ok: boolean | null }[]>`
      select internal.take_lease(${key}, ${holder}, ${LEASE_SEC}) as ok`;
    if (taken?.ok) break;
    if (clock.now() + pause > until) {
      throw new UnavailableError(`Another worker is still on ${key}; try again shortly.`, 5);
    }
    await clock.sleep(pause);
  }
  try {
    return await fn();
  } finally {
    await sql`select internal.release_lease(${key}, ${holder})`.catch(() => {});
  }
}
