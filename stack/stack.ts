// The local stack: PostgreSQL with Supabase's stand-ins and the project's migrations,
// the functions gateway, pg_net's worker, and the LiveKit and Twilio emulators when no
// real credentials are given. `deno task dev` and `deno task test` both start it.
import postgres from "postgres";
import { type Cluster, freePort, restartCluster, startCluster } from "./supabase/postgres.ts";
import { applyMigrations } from "./supabase/migrate.ts";
import { createKeys, type Keys } from "./supabase/keys.ts";
import { discoverFunctions, type Gateway, startGateway } from "./supabase/gateway.ts";
import { type NetWorker, startNetWorker } from "./supabase/net.ts";
import { authHandler } from "./supabase/auth.ts";
import { restHandler } from "./supabase/rest.ts";
import { type LiveKitEmulator, startLiveKit } from "./emulators/livekit/server.ts";
import { startTwilio, type TwilioEmulator } from "./emulators/twilio/server.ts";
import { setLogSink } from "../supabase/functions/_shared/log.ts";
import { type Deps, depsFromEnv } from "../supabase/functions/_shared/deps.ts";
import { guardClosedSocketWrites } from "../supabase/functions/_shared/db.ts";

import { ROOT } from "./supabase/migrate.ts";
export { ROOT };

/** What a client of the stack needs; written to <state>/stack.json. */
export interface StackInfo {
  supabaseUrl: string;
  anonKey: string;
  serviceKey: string;
  dbUrl: string;
  jwtSecret: string;
  issuer: string;
  privateJwk: Keys["privateJwk"];
  livekit: { url: string; apiKey: string; apiSecret: string; emulated: boolean };
  twilio: { url: string | null; accountSid: string; authToken: string; emulated: boolean } | null;
  numbers: string[];
  logFile: string;
  stateDir: string;
}

export interface Stack {
  info: StackInfo;
  /** The environment the functions are built from (a deployment's function secrets). */
  functionEnv: Record<string, string>;
  cluster: Cluster;
  livekit: LiveKitEmulator | null;
  twilio: TwilioEmulator | null;
  net: NetWorker;
  stop(): Promise<void>;
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

export interface StackOptions {
  /** State folder name under .local/ */
  name: string;
  /** Use emulators even when real credentials are in the environment (tests). */
  forceEmulators?: boolean;
  /** Emulated call durations are multiplied by this. */
  timeScale?: number;
  /** The carrier trunk's calls per second (CARRIER_CPS), enforced by the Twilio emulator too. */
  carrierCps?: number;
  /** How often live calls are checked against LiveKit (CALL_RECONCILE_SEC). */
  reconcileEverySec?: number;
  /** How long a dial waits for the agent to join (AGENT_JOIN_TIMEOUT_SEC). */
  agentJoinTimeoutSec?: number;
  log?: (line: string) => void;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const say = opts.log ?? (() => {});
  // The net worker and the functions share this process and its postgres.js connections.
  guardClosedSocketWrites(say);
  const stateDir = `${ROOT}/.local/${opts.name}`;
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => console.error(String(e)));
    cleanups.length = 0;
  };
  try {
    await Deno.mkdir(stateDir, { recursive: true });
    // Starting a cluster wipes its folder: never do that under a cluster someone else runs.
    await refuseRunningCluster(`${stateDir}/pg`);
    const cluster = await startCluster(`${stateDir}/pg`);
    cleanups.push(() => cluster.stop());
    say(`postgres on port ${cluster.port}`);
    await applyMigrations(cluster.url, say);

    const gatewayPort = freePort();
    const supabaseUrl = `http://127.0.0.1:${gatewayPort}`;
    const keys = await createKeys(supabaseUrl);
    const env = Deno.env.toObject();
    const useRealLiveKit = !opts.forceEmulators && !!(env.LIVEKIT_HOST ?? env.LIVEKIT_URL) &&
      !!env.LIVEKIT_API_KEY && !!env.LIVEKIT_API_SECRET;
    const useRealTwilio = !opts.forceEmulators && !!env.TWILIO_ACCOUNT_SID &&
      !!env.TWILIO_AUTH_TOKEN;

    const carrierCps = opts.carrierCps ?? Number(env.CARRIER_CPS ?? 1);
    let twilio: TwilioEmulator | null = null;
    let twilioInfo: StackInfo["twilio"] = null;
    if (useRealTwilio) {
      twilioInfo = {
        url: env.TWILIO_BASE_URL ?? null,
        accountSid: env.TWILIO_ACCOUNT_SID,
        authToken: env.TWILIO_AUTH_TOKEN,
        emulated: false,
      };
    } else if (!env.SIP_PROVIDER_ADDRESS || opts.forceEmulators) {
      const accountSid = `AC${randomToken(16)}`;
      const authToken = randomToken(16);
      // The emulated trunk rejects INVITEs over the budget the product paces to, as Twilio does.
      twilio = await startTwilio({
        accountSid,
        authToken,
        numbers: SEED_NUMBERS.map((phoneNumber) => ({ phoneNumber })),
        cps: carrierCps,
      });
      cleanups.push(() => twilio!.close());
      twilioInfo = { url: twilio.url, accountSid, authToken, emulated: true };
    }

    let livekit: LiveKitEmulator | null = null;
    let livekitInfo: StackInfo["livekit"];
    if (useRealLiveKit) {
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
      cleanups.push(() => livekit!.close());
      livekitInfo = { url: livekit.url, apiKey, apiSecret, emulated: true };
    }

    // The functions read their configuration from the environment, as on the platform.
    const functionEnv: Record<string, string> = {
      SUPABASE_URL: supabaseUrl,
      SUPABASE_ANON_KEY: keys.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceKey,
      SUPABASE_DB_URL: cluster.url,
      JWT_SECRET: keys.jwtSecret,
      LIVEKIT_URL: livekitInfo.url,
      LIVEKIT_API_KEY: livekitInfo.apiKey,
      LIVEKIT_API_SECRET: livekitInfo.apiSecret,
      LIVEKIT_SIP_HOST: env.LIVEKIT_SIP_HOST ?? "sip.livekit.local",
      CARRIER_CPS: String(carrierCps),
      WEBHOOKS_ALLOW_LOCALHOST: "true", // local receivers (the demo, tests) are http://127.0.0.1
      ...(opts.reconcileEverySec ? { CALL_RECONCILE_SEC: String(opts.reconcileEverySec) } : {}),
      ...(opts.agentJoinTimeoutSec
        ? { AGENT_JOIN_TIMEOUT_SEC: String(opts.agentJoinTimeoutSec) }
        : {}),
    };
    if (twilioInfo) {
      functionEnv.TWILIO_ACCOUNT_SID = twilioInfo.accountSid;
      functionEnv.TWILIO_AUTH_TOKEN = twilioInfo.authToken;
      if (twilioInfo.url) functionEnv.TWILIO_BASE_URL = twilioInfo.url;
    }
    // What the operator's environment sets (limits, countries, ...), then the stack's own.
    const given: Record<string, string | undefined> = { ...env, ...functionEnv };
    if (opts.forceEmulators) {
      for (const k of ["LIVEKIT_HOST", "SIP_PROVIDER_ADDRESS", "SIP_USERNAME", "SIP_PASSWORD"]) {
        delete given[k];
      }
    }
    let built: Deps | null = null;
    const deps = () => built ??= depsFromEnv(given);

    const logFile = `${stateDir}/functions.log`;
    const logHandle = await Deno.open(logFile, { create: true, write: true, truncate: true });
    const encoder = new TextEncoder();
    setLogSink((line) => {
      logHandle.writeSync(encoder.encode(line + "\n"));
    });
    cleanups.push(() => Promise.resolve(logHandle.close()));

    const net = await startNetWorker(cluster.url);
    cleanups.push(() => net.close());

    // The Auth and REST stand-ins share one pool (the superuser; REST switches role per request).
    const apiSql = postgres(cluster.url, {
      max: 10,
      prepare: false,
      onnotice: () => {},
      connection: { application_name: "auth and rest stand-ins" },
    });
    cleanups.push(() => apiSql.end({ timeout: 2 }));

    const gateway: Gateway = startGateway({
      port: gatewayPort,
      keys,
      auth: authHandler({ sql: apiSql, keys }),
      rest: restHandler({ sql: apiSql, keys }),
      functions: await discoverFunctions(`${ROOT}/supabase`, deps),
      controls: {
        dropNetRequests: (count) => net.drop(count),
        restartPostgres: () => restartCluster(cluster),
      },
    });
    cleanups.push(() => gateway.close());
    cleanups.push(async () => {
      const { closeDb } = await import("../supabase/functions/_shared/db.ts");
      await closeDb();
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

    const info: StackInfo = {
      supabaseUrl,
      anonKey: keys.anonKey,
      serviceKey: keys.serviceKey,
      dbUrl: cluster.url,
      jwtSecret: keys.jwtSecret,
      issuer: keys.issuer,
      privateJwk: keys.privateJwk,
      livekit: livekitInfo,
      twilio: twilioInfo,
      numbers: twilio ? SEED_NUMBERS : [],
      logFile,
      stateDir,
    };
    await Deno.writeTextFile(`${stateDir}/stack.json`, JSON.stringify(info, null, 2));
    const fnEnv = Object.fromEntries(
      Object.entries(given).filter((e): e is [string, string] => e[1] !== undefined),
    );
    return { info, functionEnv: fnEnv, cluster, livekit, twilio, net, stop };
  } catch (e) {
    await stop();
    throw e;
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
export async function lockState(name: string): Promise<StackLock> {
  const dir = `${ROOT}/.local/${name}`;
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
