// What a function's handler is built from. `index.ts` wires the platform's (the environment,
// the pooled database, the LiveKit clients, the wall clock, the log); the local
// gateway, the tests and the benchmarks pass their own. Nothing in a handler reaches for a
// global: a test can run any handler with any configuration side by side with others.
import type { TwilioClient } from "./twilio_client.ts";
import { type Clock, wallClock } from "./clock.ts";
import { type Config, ConfigError, parseConfig } from "./config.ts";
import { db, type Sql } from "./db.ts";
import { NotConfiguredError } from "./errors.ts";
import { type LiveKit, liveKit } from "./livekit.ts";
import { type Fields, type Logger, logger } from "./log.ts";

export { type Clock, wallClock } from "./clock.ts";

export interface Deps {
  config: Config;
  sql: Sql;
  /** The LiveKit clients; reading it without LiveKit configured is a 503 naming the variables. */
  readonly liveKit: LiveKit;
  /**
   * A Twilio client in place of the configured account's (tests); unset, the carrier side makes
   * its own on first use, so functions that never provision never load `twilio`.
   */
  twilio?: () => Promise<TwilioClient>;
  clock: Clock;
  log: Logger;
}

/** Deps for a config: its database pool and clients, created when first used. */
export function depsFor(config: Config, parts: Partial<Omit<Deps, "config">> = {}): Deps {
  let lk: LiveKit | undefined = parts.liveKit;
  return {
    config,
    sql: parts.sql ?? db(config.dbUrl, parts.clock ?? wallClock),
    get liveKit() {
      return lk ??= liveKit(config);
    },
    twilio: parts.twilio,
    clock: parts.clock ?? wallClock,
    log: parts.log ?? logger({}, parts.clock ?? wallClock),
  };
}

/** The same deps logging with more fields (LiveKit still created only when first used). */
export function withFields(deps: Deps, fields: Fields): Deps {
  return {
    config: deps.config,
    sql: deps.sql,
    get liveKit() {
      return deps.liveKit;
    },
    twilio: deps.twilio,
    clock: deps.clock,
    log: deps.log.child(fields),
  };
}

/** Deps from variables like the platform's environment; a bad one is a 503 naming it. */
export function depsFromEnv(env: Record<string, string | undefined>): Deps {
  try {
    return depsFor(parseConfig(env));
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new NotConfiguredError(e.issues.map((i) => i.variable), "This function");
    }
    throw e;
  }
}

let platform: Deps | null = null;

/** The deployed function's deps: its environment, read on the first request. */
export function platformDeps(): Deps {
  return platform ??= depsFromEnv(Deno.env.toObject());
}
