// Per-tenant rate limits on what costs a shared upstream: the Twilio account and the LiveKit
// project are every tenant's, so one tenant must not spend their API limits (internal.rate_limit,
// a count per owner, bucket and minute).
import type { Deps } from "./deps.ts";
import { RateLimitError } from "./errors.ts";

/** Counts one use of `bucket` by the owner; a 429 with Retry-After past `perMinute`. */
export async function takeRateLimit(
  { sql }: Pick<Deps, "sql">,
  ownerId: string,
  bucket: string,
  perMinute: number,
  what: string,
): Promise<void> {
  const [{ wait }] = await sql<{ wait: number }[]>`
    select internal.take_rate_limit(${ownerId}, ${bucket}, ${perMinute}) as wait`;
  if (wait > 0) {
    throw new RateLimitError(
      `At most ${perMinute} ${what} a minute; try again in ${wait} s.`,
      wait,
    );
  }
}
