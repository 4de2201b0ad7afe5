// The local stack: PostgreSQL with Supabase's stand-ins and the project's migrations,
// the functions gateway, pg_net's worker, and the LiveKit and Twilio emulators. Real LiveKit
// and Twilio are used only when asked for (`realLiveKit`, `realTwilio`: dev's --real-livekit
// and --real-twilio), never because their variables happen to be in the environment.
// `deno task dev` and `deno task test` both start it; stop() stops its parts concurrently,
// each within a bound, and leaves no process behind.
import postgres from "postgres";
import { type Cluster, freePort, restartCluster, startCluster } from "./supabase/postgres.ts";
import { endTrackedProcesses, refuseToolsAfter } from "./supabase/processes.ts";
import { applyMigrations } from "./supabase/migrate.ts";
import { createKeys, type KeyMode, type Keys } from "./supabase/keys.ts";
import {
  discoverFunctions,
  type Gateway,
  settleBackgroundTasks,
  startGateway,
} from "./supabase/gateway.ts";
import { type NetWorker, startNetWorker } from "./supabase/net.ts";
import { authHandler } from "./supabase/auth.ts";
import { restHandler } from "./supabase/rest.ts";
import { type LiveKitEmulator, startLiveKit } from "./emulators/livekit/server.ts";
import { startTwilio, type TwilioEmulator } from "./emulators/twilio/server.ts";
import { setLogSink } from "../supabase/functions/_shared/log.ts";
import { type Deps, depsFromEnv } from "../supabase/functions/_shared/deps.ts";
import { closeDb, guardClosedSocketWrites } from "../supabase/functions/_shared/db.ts";

import { ROOT } from "./supabase/migrate.ts";
export { ROOT };

/** What a client of the stack needs; written to <state>/stack.json. */
export interface StackInfo {
  supabaseUrl: string;
  /** The API keys' kind (StackOptions.keys); absent in a stack.json written before it existed. */
  keys?: KeyMode;
  /** The anon key: the legacy anon JWT, or in "new" mode the `sb_publishable_` key. */
  anonKey: string;
  /** The service key: the legacy service_role JWT, or in "new" mode the `sb_secret_` key. */
  serviceKey: string;
  /**
   * The project's database URL, as the `postgres` role (not a superuser, as on Supabase): what
   * the migrations, the functions (SUPABASE_DB_URL) and the tests use.
   */
  dbUrl: string;
  /**
   * The platform superuser's URL (`supabase_admin`): for what only the platform does (tuning the
   * server, pausing pg_cron's jobs in benchmarks), never the project's code. Absent in a
   * stack.json written before it existed.
   */
  adminDbUrl?: string;
  /** The legacy HS256 secret; "" in "new" mode, which has none. */
  jwtSecret: string;
  issuer: string;
  privateJwk: Keys["privateJwk"];
  livekit: { url: string; apiKey: string; apiSecret: string; emulated: boolean };
  twilio: { url: string | null; accountSid: string; authToken: string; emulated: boolean } | null;
  numbers: string[];
  logFile: string;
  stateDir: string;
  /** The PostgreSQL cluster's data folder (its postmaster's `-D`). */
  pgData?: string;
  /** Function settings this stack was started with (StackOptions.functionSettings). */
  functionSettings?: Record<string, string>;
}

export interface StopOptions {
  /** One line per part as it stops (default: the stack's `log`). */
  log?: (line: string) => void;
  /** Fired (a second Ctrl-C): stop waiting for anything graceful; PostgreSQL goes immediate. */
  hurry?: AbortSignal;
}

export interface Stack {
  info: StackInfo;
  /** The environment the functions are built from (a deployment's function secrets). */
  functionEnv: Record<string, string>;
  cluster: Cluster;
  livekit: LiveKitEmulator | null;
  twilio: TwilioEmulator | null;
  net: NetWorker;
  /** Stops every part (concurrently, each bounded); resolves when nothing of the stack runs. */
  stop(opts?: StopOptions): Promise<void>;
}

/** Numbers the Twilio emulator owns from the start (the demo and tests use them). */
export const SEED_NUMBERS = Array.from(
  { length: 400 },
  (_, i) => `+1415666${String(1000 + i).padStart(4, "0")}`,
);

function randomToken(bytes = 16): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** The state folder of a stack name: `.local/<name>` in the checkout. */
export function stateDirOf(name: string): string {
  return `${ROOT}/.local/${name}`;
}

export interface StackOptions {
  /** State folder name under .local/ */
  name: string;
  /** The state folder itself (absolute), instead of .local/<name>. */
  stateDir?: string;
  /** Use emulators only, whatever else is asked (tests, benchmarks). */
  forceEmulators?: boolean;
  /** Use the real Twilio account of TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (dev --real-twilio). */
  realTwilio?: boolean;
  /** Use the real LiveKit project of LIVEKIT_URL / _API_KEY / _API_SECRET (dev --real-livekit). */
  realLiveKit?: boolean;
  /** Emulated call durations are multiplied by this. */
  timeScale?: number;
  /** The carrier trunk's calls per second (CARRIER_CPS), enforced by the Twilio emulator too. */
  carrierCps?: number;
  /** How often live calls are checked against LiveKit (CALL_RECONCILE_SEC). */
  reconcileEverySec?: number;
  /** How long a dial waits for the agent to join (AGENT_JOIN_TIMEOUT_SEC). */
  agentJoinTimeoutSec?: number;
  /** More of the functions' variables (limits, allowlists), over the stack's own. */
  functionSettings?: Record<string, string>;
  /**
   * The project's API keys: "legacy" (default) anon and service_role JWTs signed with an HS256
   * secret; "new" an `sb_publishable_` and an `sb_secret_` key and no HS256 secret, as a project
   * with only the new keys (the functions get SUPABASE_PUBLISHABLE_KEYS / SUPABASE_SECRET_KEYS).
   */
  keys?: KeyMode;
  /** Aborting it during the start stops what was started and makes startStack throw. */
  signal?: AbortSignal;
  /** For that stop (or one after a failed start): stop faster when it fires (StopOptions). */
  hurry?: AbortSignal;
  log?: (line: string) => void;
}

/** Which LiveKit and carrier the stack uses, decided from the flags alone. */
export interface ServiceChoice {
  livekit: "emulator" | "real";
  /** `static-sip`: the operator's SIP provider (SIP_PROVIDER_*), no Twilio at all. */
  carrier: "emulator" | "real-twilio" | "static-sip";
  /** What to print at start: which is used, and which variables are ignored. */
  lines: string[];
  /** What a real service means (printed as WARNING lines). */
  warnings: string[];
  /** A flag whose variables are missing: the stack refuses to start. */
  problems: string[];
}

const SUPABASE_KEY_VARS = [
  "SUPABASE_ANON_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_PUBLISHABLE_KEYS",
  "SUPABASE_SECRET_KEYS",
  "JWT_SECRET",
];
const LIVEKIT_VARS = ["LIVEKIT_HOST", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"];
const SIP_PROVIDER_VARS = [
  "SIP_PROVIDER_ADDRESS",
  "SIP_PROVIDER_NUMBERS",
  "SIP_USERNAME",
  "SIP_PASSWORD",
];

function maskSid(sid: string): string {
  return sid.length > 10 ? `${sid.slice(0, 4)}...${sid.slice(-4)}` : sid;
}

/**
 * The services the stack uses. Variables in the environment never choose a real service on
 * their own: real Twilio needs `realTwilio`, real LiveKit `realLiveKit` (a SIP provider of
 * SIP_PROVIDER_* is real LiveKit's carrier, used with `realLiveKit` and without `realTwilio`).
 */
export function chooseServices(
  env: Record<string, string | undefined>,
  want: { realTwilio?: boolean; realLiveKit?: boolean; forceEmulators?: boolean },
): ServiceChoice {
  const realTwilio = !want.forceEmulators && !!want.realTwilio;
  const realLiveKit = !want.forceEmulators && !!want.realLiveKit;
  const lines: string[] = [];
  const warnings: string[] = [];
  const problems: string[] = [];
  const set = (k: string) => !!env[k]?.trim();
  const livekitUrl = env.LIVEKIT_HOST ?? env.LIVEKIT_URL;

  if (realLiveKit) {
    const missing = [
      ...(livekitUrl ? [] : ["LIVEKIT_URL (or LIVEKIT_HOST)"]),
      ...["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"].filter((k) => !set(k)),
    ];
    if (missing.length) problems.push(`--real-livekit needs ${missing.join(", ")}`);
    lines.push(`LiveKit: REAL project ${livekitUrl ?? "(not set)"} (--real-livekit)`);
  } else {
    const given = LIVEKIT_VARS.filter(set);
    lines.push(
      given.length
        ? `LiveKit: emulator (${
          given.join(", ")
        } in the environment are ignored; pass --real-livekit to use them)`
        : "LiveKit: emulator",
    );
  }

  let carrier: ServiceChoice["carrier"] = "emulator";
  const twilioGiven = Object.keys(env).filter((k) => k.startsWith("TWILIO_") && set(k));
  if (realTwilio) {
    carrier = "real-twilio";
    const missing = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"].filter((k) => !set(k));
    if (missing.length) problems.push(`--real-twilio needs ${missing.join(", ")}`);
    const account = maskSid(env.TWILIO_ACCOUNT_SID ?? "(not set)");
    lines.push(
      `Twilio: REAL account ${account}${
        env.TWILIO_BASE_URL ? ` at ${env.TWILIO_BASE_URL}` : ""
      } (--real-twilio)`,
    );
    warnings.push(
      `--real-twilio: the Twilio account ${account} will be changed: assigning a number ` +
        `(map-number) creates or updates its Elastic SIP trunk, points the trunk's origination ` +
        `at LIVEKIT_SIP_HOST and moves the number onto it` +
        (realLiveKit
          ? "; calls placed from it dial real phones."
          : " (calls are still placed by the LiveKit emulator; with --real-livekit they dial real phones)."),
    );
    if (!set("LIVEKIT_SIP_HOST")) {
      warnings.push(
        "LIVEKIT_SIP_HOST is not set: provisioning answers 503 not_configured instead of pointing " +
          "the real trunk's origination at a placeholder.",
      );
    }
  } else {
    if (realLiveKit && set("SIP_PROVIDER_ADDRESS")) carrier = "static-sip";
    lines.push(
      twilioGiven.length
        ? "Twilio: emulator (TWILIO_* in the environment are ignored; pass --real-twilio to use them)"
        : "Twilio: emulator",
    );
  }
  if (carrier === "static-sip") {
    lines.push(
      `SIP provider: REAL ${env.SIP_PROVIDER_ADDRESS} (SIP_PROVIDER_*, with --real-livekit)`,
    );
  } else if (SIP_PROVIDER_VARS.some(set)) {
    lines.push(
      "SIP provider: not used (SIP_PROVIDER_* in the environment are ignored; they are real " +
        "LiveKit's carrier with --real-livekit and without --real-twilio)",
    );
  }
  if (realLiveKit) {
    const through = carrier === "real-twilio"
      ? "the real Twilio account"
      : carrier === "static-sip"
      ? `the SIP provider ${env.SIP_PROVIDER_ADDRESS}`
      : "the emulated Twilio trunk's address";
    warnings.push(
      `--real-livekit: trunks, dispatch rules and rooms are created in the LiveKit project ` +
        `${livekitUrl ?? "(not set)"}, and calls placed through it dial real phones (through ` +
        `${through}).`,
    );
  }
  return { livekit: realLiveKit ? "real" : "emulator", carrier, lines, warnings, problems };
}

/**
 * A part of the stack and how it stops (resolving to a note for its line, if any). `boundMs`
 * caps the wait for an in-process part (what is cut short ends with the process); null for a
 * part that bounds its own stop: the functions, and PostgreSQL, which finishes its stop (its
 * bounds escalate to SIGKILL: nothing of it may outlive the stack).
 */
interface Part {
  name: string;
  stop: (hurry: AbortSignal) => Promise<string | void>;
  boundMs: number | null;
}

/** How long in-flight function requests may take to end once the stack stops. */
const FUNCTIONS_GRACE_MS = 2000;

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);

/** Resolves with `p`'s note, or a note saying it was cut short (bound reached or hurried). */
async function bounded(
  p: Promise<string | void>,
  ms: number,
  hurry: AbortSignal,
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onHurry = () => {};
  const cut = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`cut short after ${(ms / 1000).toFixed(1)} s`), ms);
    onHurry = () => resolve("cut short (hurried)");
    if (hurry.aborted) onHurry();
    else hurry.addEventListener("abort", onHurry, { once: true });
  });
  try {
    // A stop that fails after being cut short fails unheard (nothing is left unhandled).
    const settled = p.then(
      (note) => note ?? "",
      (e) => `failed: ${e instanceof Error ? e.message.split("\n")[0] : e}`,
    );
    return await Promise.race([settled, cut]);
  } finally {
    clearTimeout(timer);
    hurry.removeEventListener("abort", onHurry);
  }
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const say = opts.log ?? (() => {});
  const started = opts.signal;
  // The net worker and the functions share this process and its postgres.js connections.
  guardClosedSocketWrites(say);
  const stateDir = opts.stateDir ?? stateDirOf(opts.name);
  const env = Deno.env.toObject();
  const choice = chooseServices(env, opts);
  if (choice.problems.length) throw new Error(choice.problems.join("; "));

  // Interrupted during the start, the tool under way (initdb, a migration's psql) finishes, no
  // other starts, and what was started is stopped; once stopping, nothing starts either.
  const stopped = new AbortController();
  refuseToolsAfter(stopped.signal);
  if (started) refuseToolsAfter(started);
  const parts: Part[] = [];
  const finalizers: (() => void)[] = [];
  let stopping: Promise<void> | null = null;
  const stop = (stopOpts: StopOptions = {}): Promise<void> =>
    stopping ??= (async () => {
      stopped.abort();
      const log = stopOpts.log ?? say;
      const hurry = stopOpts.hurry ?? new AbortController().signal;
      // Every part at once: the traffic sources (the pg_net worker, the gateway) stop taking
      // work at once, and PostgreSQL's fast shutdown ends what the functions still run.
      await Promise.all(
        parts.splice(0).map(async (part) => {
          const t = performance.now();
          let note: string;
          try {
            note = part.boundMs === null
              ? (await part.stop(hurry)) ?? ""
              : await bounded(part.stop(hurry), part.boundMs, hurry);
          } catch (e) {
            note = `failed: ${e instanceof Error ? e.message.split("\n")[0] : e}`;
          }
          log(`stopped ${part.name} (${seconds(t)} s${note ? `; ${note}` : ""})`);
        }),
      );
      const t = performance.now();
      const ended = await endTrackedProcesses(1000, hurry);
      if (ended.length) {
        log(`stopped ${ended.length} child process(es): ${ended.join(", ")} (${seconds(t)} s)`);
      }
      for (const f of finalizers.splice(0).reverse()) f();
    })();
  const checkpoint = () => started?.throwIfAborted();
  try {
    await Deno.mkdir(stateDir, { recursive: true });
    // Starting a cluster wipes its folder: never do that under a cluster someone else runs.
    await refuseRunningCluster(`${stateDir}/pg`);
    checkpoint();
    const cluster = await startCluster(`${stateDir}/pg`, undefined, {
      onCreated: (c) =>
        parts.push({ name: "postgres", stop: (hurry) => c.stop({ hurry }), boundMs: null }),
    });
    checkpoint();
    say(`postgres on port ${cluster.port}`);
    await applyMigrations(cluster, say);
    checkpoint();

    const gatewayPort = freePort();
    const supabaseUrl = `http://127.0.0.1:${gatewayPort}`;
    const keys = await createKeys(supabaseUrl, opts.keys ?? "legacy");

    const carrierCps = opts.carrierCps ?? Number(env.CARRIER_CPS ?? 1);
    let twilio: TwilioEmulator | null = null;
    let twilioInfo: StackInfo["twilio"] = null;
    if (choice.carrier === "real-twilio") {
      twilioInfo = {
        url: env.TWILIO_BASE_URL ?? null,
        accountSid: env.TWILIO_ACCOUNT_SID,
        authToken: env.TWILIO_AUTH_TOKEN,
        emulated: false,
      };
    } else if (choice.carrier === "emulator") {
      const accountSid = `AC${randomToken(16)}`;
      const authToken = randomToken(16);
      // The emulated trunk rejects INVITEs over the budget the product paces to, as Twilio does.
      twilio = await startTwilio({
        accountSid,
        authToken,
        numbers: SEED_NUMBERS.map((phoneNumber) => ({ phoneNumber })),
        cps: carrierCps,
      });
      const emulator = twilio;
      parts.push({ name: "twilio emulator", stop: () => emulator.close(), boundMs: 2000 });
      twilioInfo = { url: twilio.url, accountSid, authToken, emulated: true };
    }

    let livekit: LiveKitEmulator | null = null;
    let livekitInfo: StackInfo["livekit"];
    if (choice.livekit === "real") {
      livekitInfo = {
        url: (env.LIVEKIT_HOST ?? env.LIVEKIT_URL)!,
        apiKey: env.LIVEKIT_API_KEY,
        apiSecret: env.LIVEKIT_API_SECRET,
        emulated: false,
      };
    } else {
      const apiKey = `API${randomToken(6)}`;
      const apiSecret = randomToken(24);
      livekit = await startLiveKit({
        apiKey,
        apiSecret,
        timeScale: opts.timeScale ?? 1,
        // Answers /settings/regions like LiveKit Cloud, so the SDK's replay path can be exercised.
        regions: 2,
        webhookUrl: `${supabaseUrl}/functions/v1/livekit-webhook`,
        carrier: twilio ? (call) => twilio!.terminate(call) : undefined,
      });
      const emulator = livekit;
      parts.push({ name: "livekit emulator", stop: () => emulator.close(), boundMs: 2000 });
      livekitInfo = { url: livekit.url, apiKey, apiSecret, emulated: true };
    }
    checkpoint();

    // The functions read their configuration from the environment, as on the platform.
    const functionEnv: Record<string, string> = {
      SUPABASE_URL: supabaseUrl,
      // As the platform sets them: the legacy keys and secret, or only the new keys.
      ...(keys.mode === "new"
        ? {
          SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.anonKey }),
          SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.serviceKey }),
        }
        : {
          SUPABASE_ANON_KEY: keys.anonKey,
          SUPABASE_SERVICE_ROLE_KEY: keys.serviceKey,
          JWT_SECRET: keys.jwtSecret,
        }),
      SUPABASE_DB_URL: cluster.url,
      LIVEKIT_URL: livekitInfo.url,
      LIVEKIT_API_KEY: livekitInfo.apiKey,
      LIVEKIT_API_SECRET: livekitInfo.apiSecret,
      CARRIER_CPS: String(carrierCps),
      WEBHOOKS_ALLOW_LOCALHOST: "true", // local receivers (the demo, tests) are http://127.0.0.1
      // Every function here runs on the gateway's thread, beside the emulators: the CPU time a
      // tick reads is all of theirs, not its own as in a deployed isolate. The tick's budget is
      // tested where it runs alone (tests/e2e/tick_cpu.test.ts, bench row 5a).
      TICK_CPU_BUDGET_MS: "600000",
      ...(opts.reconcileEverySec ? { CALL_RECONCILE_SEC: String(opts.reconcileEverySec) } : {}),
      ...(opts.agentJoinTimeoutSec
        ? { AGENT_JOIN_TIMEOUT_SEC: String(opts.agentJoinTimeoutSec) }
        : {}),
      ...opts.functionSettings,
    };
    // A real trunk's origination is never pointed at the emulated trunk's placeholder.
    const sipHost = choice.carrier === "real-twilio"
      ? env.LIVEKIT_SIP_HOST
      : env.LIVEKIT_SIP_HOST ?? "sip.livekit.local";
    if (sipHost) functionEnv.LIVEKIT_SIP_HOST = sipHost;
    if (twilioInfo) {
      functionEnv.TWILIO_ACCOUNT_SID = twilioInfo.accountSid;
      functionEnv.TWILIO_AUTH_TOKEN = twilioInfo.authToken;
      if (twilioInfo.url) functionEnv.TWILIO_BASE_URL = twilioInfo.url;
    }
    // What the operator's environment sets (limits, countries, ...), then the stack's own;
    // the variables of a service the stack does not use for real never reach the functions.
    const given: Record<string, string | undefined> = { ...env };
    const drop = (keep: boolean, keys: (k: string) => boolean) => {
      if (!keep) { for (const k of Object.keys(given)) if (keys(k)) delete given[k]; }
    };
    drop(choice.livekit === "real", (k) => LIVEKIT_VARS.includes(k));
    // The platform's key variables come from this stack's keys only, never the environment.
    drop(false, (k) => SUPABASE_KEY_VARS.includes(k));
    drop(choice.carrier === "real-twilio", (k) => k.startsWith("TWILIO_"));
    drop(choice.carrier === "static-sip", (k) => SIP_PROVIDER_VARS.includes(k));
    delete given.LIVEKIT_SIP_HOST;
    Object.assign(given, functionEnv);
    let built: Deps | null = null;
    const deps = () => built ??= depsFromEnv(given);

    const logFile = `${stateDir}/functions.log`;
    const logHandle = await Deno.open(logFile, { create: true, write: true, truncate: true });
    const encoder = new TextEncoder();
    setLogSink((line) => {
      logHandle.writeSync(encoder.encode(line + "\n"));
    });
    // Last, once the parts are down (a request cut short may still log: to nowhere, then).
    finalizers.push(() => {
      setLogSink(() => {});
      logHandle.close();
    });

    // pg_net's worker is the platform's (on Supabase it runs as the superuser).
    const net = await startNetWorker(cluster.adminUrl);
    parts.push({ name: "pg_net worker", stop: () => net.close(), boundMs: 2000 });

    // The Auth and REST stand-ins connect as their servers do on Supabase: Auth as
    // supabase_auth_admin (the owner of GoTrue's tables), REST as authenticator (which switches
    // to anon, authenticated or service_role per request).
    const authSql = postgres(cluster.urlOf("supabase_auth_admin"), {
      max: 5,
      prepare: false,
      onnotice: () => {},
      connection: { application_name: "auth stand-in" },
    });
    const restSql = postgres(cluster.urlOf("authenticator"), {
      max: 10,
      prepare: false,
      onnotice: () => {},
      connection: { application_name: "rest stand-in" },
    });
    parts.push({
      name: "auth and rest",
      stop: () =>
        Promise.all([authSql.end({ timeout: 1 }), restSql.end({ timeout: 1 })]).then(() => {}),
      boundMs: 2000,
    });

    // The requests under way, by name, for the stop to say what it did not wait for.
    const inflight = new Set<{ name: string }>();
    const counted =
      <A extends unknown[]>(name: string, handler: (...a: A) => Promise<Response>) =>
      async (...args: A) => {
        const request = { name };
        inflight.add(request);
        try {
          return await handler(...args);
        } finally {
          inflight.delete(request);
        }
      };
    const gateway: Gateway = startGateway({
      port: gatewayPort,
      keys,
      auth: counted("auth", authHandler({ sql: authSql, keys })),
      rest: counted("rest", restHandler({ sql: restSql, keys })),
      functions: (await discoverFunctions(`${ROOT}/supabase`, deps)).map((f) => ({
        ...f,
        load: async () => counted(f.name, await f.load()),
      })),
      controls: {
        dropNetRequests: (count) => net.drop(count),
        restartPostgres: () => restartCluster(cluster),
      },
    });
    // The gateway stops taking requests at once; those in flight (a campaign tick keeps dialing
    // for up to its 25 s budget while its database answers) end when PostgreSQL goes down,
    // which stops at the same time; FUNCTIONS_GRACE_MS bounds the wait for them.
    // A dial rides out a database restart (it retries for a few seconds), so a request can
    // outlast the grace: it is not waited for, and ends with the process.
    parts.push({
      name: "functions",
      stop: async (hurry) => {
        const note = await bounded(gateway.close(), FUNCTIONS_GRACE_MS, hurry);
        // The functions' pools: PostgreSQL stops at the same time, so there is nothing to
        // wait for (postgres.js would wait out its end timeout for queries that cannot run).
        closeDb().catch(() => {});
        if (!note) return;
        const names = [...inflight].map((r) => r.name);
        const background = await settleBackgroundTasks(0);
        const left = [
          ...(names.length
            ? [`${names.length} request(s) (${[...new Set(names)].join(", ")})`]
            : []),
          ...(background ? [`${background} EdgeRuntime.waitUntil task(s)`] : []),
        ];
        return left.length ? `${left.join(" and ")} still under way, not waited for` : note;
      },
      boundMs: null,
    });

    // The project URL and service key the database uses to call functions (Supabase's
    // documented Vault pattern), then the project's cron jobs.
    const sql = postgres(cluster.url, { max: 1, onnotice: () => {} });
    try {
      await sql`select internal.configure(${supabaseUrl}, ${keys.serviceKey})`;
      if (livekit) {
        // Emulated calls last their simulated time: a "12 s" call is 12 ms at a scale of 0.001.
        // Number health judges short calls on that clock (off where it is too fine to judge).
        const scale = opts.timeScale ?? 1;
        await sql`update internal.number_health_settings
          set short_call_sec = ${scale < 0.01 ? 0 : 12 * scale}`;
      }
    } finally {
      await sql.end();
    }
    checkpoint();

    const info: StackInfo = {
      supabaseUrl,
      keys: keys.mode,
      anonKey: keys.anonKey,
      serviceKey: keys.serviceKey,
      dbUrl: cluster.url,
      adminDbUrl: cluster.adminUrl,
      jwtSecret: keys.jwtSecret,
      issuer: keys.issuer,
      privateJwk: keys.privateJwk,
      livekit: livekitInfo,
      twilio: twilioInfo,
      numbers: twilio ? SEED_NUMBERS : [],
      logFile,
      stateDir,
      pgData: `${cluster.dir}/data`,
      functionSettings: opts.functionSettings,
    };
    await Deno.writeTextFile(`${stateDir}/stack.json`, JSON.stringify(info, null, 2));
    const fnEnv = Object.fromEntries(
      Object.entries(given).filter((e): e is [string, string] => e[1] !== undefined),
    );
    return { info, functionEnv: fnEnv, cluster, livekit, twilio, net, stop };
  } catch (e) {
    await stop({ hurry: opts.hurry });
    throw started?.aborted ? started.reason : e;
  }
}

/** Whether a process with this id is running (a signal-less `kill -0`). */
async function alive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const out = await new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" })
    .output().catch(() => null);
  // kill -0 fails with EPERM for another user's live process (the cluster runs as postgres).
  if (out?.success) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Whether the process runs the stack (guards against a reused pid; true where unknown). */
async function isStack(pid: number): Promise<boolean> {
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes("stack/");
  } catch {
    return true;
  }
}

async function refuseRunningCluster(dir: string) {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/data/postmaster.pid`);
  } catch {
    return;
  }
  const pid = Number(text.split("\n")[0]);
  if (!await alive(pid)) return;
  const pgBin = Deno.env.get("PG_BIN") ?? "/usr/lib/postgresql/15/bin";
  const asUser = Deno.uid() === 0 ? "runuser -u postgres -- " : "";
  throw new Error(
    `A PostgreSQL cluster this stack did not start is running in ${dir}/data (pid ${pid}); ` +
      `it is left alone. Stop the stack that owns it, or the cluster itself: ` +
      `${asUser}${pgBin}/pg_ctl -D ${dir}/data -m fast stop`,
  );
}

export interface StackLock {
  file: string;
  /** Adds details (the running stack's URLs) for a second start to print. */
  note(details: Record<string, unknown>): Promise<void>;
  release(): Promise<void>;
}

export class StackLockedError extends Error {
  constructor(
    readonly holder: { pid: number; startedAt?: string; [k: string]: unknown },
    file: string,
  ) {
    super(`another stack is running from this checkout (pid ${holder.pid}, lock ${file})`);
  }
}

/** One stack per state folder: `<state>/lock` holds the owner's pid (a stale lock is taken over). */
export async function lockState(name: string, dir = stateDirOf(name)): Promise<StackLock> {
  const file = `${dir}/lock`;
  await Deno.mkdir(dir, { recursive: true });
  const mine = { pid: Deno.pid, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await Deno.open(file, { createNew: true, write: true });
      await handle.write(new TextEncoder().encode(JSON.stringify(mine, null, 2)));
      handle.close();
      let details: Record<string, unknown> = mine;
      return {
        file,
        async note(extra) {
          details = { ...details, ...extra };
          await Deno.writeTextFile(file, JSON.stringify(details, null, 2));
        },
        async release() {
          const now = await Deno.readTextFile(file).then(JSON.parse).catch(() => null);
          if (now?.pid === Deno.pid) await Deno.remove(file).catch(() => {});
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const holder = await Deno.readTextFile(file).then(JSON.parse).catch(() => null);
    if (holder && await alive(Number(holder.pid)) && await isStack(Number(holder.pid))) {
      throw new StackLockedError(holder, file);
    }
    // Stale: its owner is gone.
    await Deno.remove(file).catch(() => {});
  }
  throw new Error(`could not take the lock ${file}`);
}
