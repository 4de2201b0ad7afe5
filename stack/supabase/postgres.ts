// A throw-away PostgreSQL 15 cluster with pg_cron and pgTAP, the database half of the
// local stack. Runs as an unprivileged OS user when started as root (Postgres refuses root).
// Its bootstrap superuser is `supabase_admin`, as on Supabase; the project's `postgres` role is
// not a superuser (stack/supabase/platform.sql).
import {
  assertMayStart,
  descendants,
  processAlive,
  processesWith,
  runTracked,
  signalProcess,
  waitGone,
} from "./processes.ts";

const PG_BIN = Deno.env.get("PG_BIN") ?? "/usr/lib/postgresql/15/bin";
const EXTENSION_DIR = "/usr/share/postgresql/15/extension";
const PACKAGES = ["postgresql-15-cron", "postgresql-15-pgtap"];
const OS_USER = "postgres";

/**
 * The cluster's login roles, as on a Supabase project: `supabase_admin` is the superuser that
 * initialises the cluster and prepares the platform (stack/supabase/platform.sql); `postgres` is
 * the project's own role, not a superuser, which applies the migrations and runs the functions'
 * database work; `authenticator` is the REST API's login role and `supabase_auth_admin` the Auth
 * server's (platform.sql creates them; migrate.ts sets these passwords).
 */
export const LOGIN_ROLES = [
  "supabase_admin",
  "postgres",
  "authenticator",
  "supabase_auth_admin",
] as const;
export type LoginRole = typeof LOGIN_ROLES[number];

export interface Cluster {
  port: number;
  dir: string;
  /** Each login role's password (random per cluster). */
  passwords: Record<LoginRole, string>;
  /** The `postgres` role's URL: the project's connection (migrations, functions, tests). */
  url: string;
  /** The superuser's URL (`supabase_admin`): only what prepares or plays the platform. */
  adminUrl: string;
  /** A login role's URL. */
  urlOf(role: LoginRole): string;
  /**
   * Stops the cluster and waits until none of its processes is left: `pg_ctl stop -m fast`,
   * `-m immediate` when that takes longer than its bound (or at once when `hurry` fires), and
   * SIGKILL as the last resort. Resolves to how it went when that was not the fast shutdown.
   */
  stop(opts?: { hurry?: AbortSignal }): Promise<string>;
}

/** How long a fast shutdown may take before an immediate one; then SIGKILL after IMMEDIATE. */
const FAST_SHUTDOWN_SEC = 3;
const IMMEDIATE_SHUTDOWN_SEC = 2;

function isRoot(): boolean {
  return Deno.uid() === 0;
}

async function run(
  cmd: string[],
  opts: { asOsUser?: boolean; env?: Record<string, string>; stopping?: boolean } = {},
) {
  const argv = opts.asOsUser && isRoot() ? ["runuser", "-u", OS_USER, "--", ...cmd] : cmd;
  const out = await runTracked(argv, { env: opts.env, stopping: opts.stopping });
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed (exit ${out.code}):\n${text}`);
  return text;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Installs pg_cron and pgTAP when missing and we may; otherwise names the command to run. */
export async function ensurePackages(): Promise<void> {
  const missing: string[] = [];
  if (!await exists(`${EXTENSION_DIR}/pg_cron.control`)) missing.push(PACKAGES[0]);
  if (!await exists(`${EXTENSION_DIR}/pgtap.control`)) missing.push(PACKAGES[1]);
  if (!await exists(`${PG_BIN}/postgres`)) {
    throw new Error(
      `PostgreSQL 15 server binaries are not in ${PG_BIN}. Run: apt-get install -y postgresql-15 (or set PG_BIN)`,
    );
  }
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  const canInstall = isRoot() && await exists("/usr/bin/apt-get");
  if (!canInstall) throw new Error(`Missing PostgreSQL packages. Run as root: ${command}`);
  console.error(`installing ${missing.join(", ")} ...`);
  await run(["apt-get", "update", "-qq"]);
  await run(["apt-get", "install", "-y", "-qq", ...missing], {
    env: { DEBIAN_FRONTEND: "noninteractive" },
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function randomSecret(bytes = 24): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether the unprivileged OS user can reach `dir` (a checkout under /root cannot be). */
async function reachable(dir: string): Promise<boolean> {
  if (!isRoot()) return true;
  const out = await runTracked(["runuser", "-u", OS_USER, "--", "test", "-x", dir], {
    stdout: "null",
    stderr: "null",
  });
  return out.success;
}

/**
 * Creates and starts a fresh cluster in `dir` (wiped first), or in /tmp when the OS user cannot
 * reach it. `onCreated` gets the cluster as soon as its folder is chosen, before anything runs
 * in it, so a caller interrupted during the start can stop whatever was started.
 */
export async function startCluster(
  wanted: string,
  port = freePort(),
  opts: { onCreated?: (cluster: Cluster) => void } = {},
): Promise<Cluster> {
  await ensurePackages();
  await Deno.mkdir(wanted, { recursive: true });
  const dir = await reachable(wanted)
    ? wanted
    : await Deno.makeTempDir({ prefix: "voice-lines-pg-" });
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const passwords = Object.fromEntries(LOGIN_ROLES.map((r) => [r, randomSecret()])) as Record<
    LoginRole,
    string
  >;
  const data = `${dir}/data`;
  const pwfile = `${dir}/pwfile`;
  const urlOf = (role: LoginRole) =>
    `postgres://${role}:${passwords[role]}@127.0.0.1:${port}/postgres`;
  let stopping: Promise<string> | null = null;
  const cluster: Cluster = {
    port,
    passwords,
    dir,
    url: urlOf("postgres"),
    adminUrl: urlOf("supabase_admin"),
    urlOf,
    stop(stopOpts = {}) {
      stopping ??= stopPostmaster(data, stopOpts.hurry).finally(async () => {
        if (dir !== wanted) await Deno.remove(dir, { recursive: true }).catch(() => {});
      });
      return stopping;
    },
  };
  opts.onCreated?.(cluster);
  await Deno.writeTextFile(pwfile, passwords.supabase_admin);
  if (isRoot()) {
    await run(["chown", "-R", OS_USER, dir]);
    await Deno.chmod(dir, 0o700);
  }
  await run([
    `${PG_BIN}/initdb`,
    "-D",
    data,
    // The bootstrap superuser is the platform's, as on Supabase; platform.sql creates `postgres`.
    "-U",
    "supabase_admin",
    "--auth=scram-sha-256",
    `--pwfile=${pwfile}`,
    "-E",
    "UTF8",
    "--locale=C",
  ], { asOsUser: true });
  await Deno.remove(pwfile);
  const conf = [
    `listen_addresses = '127.0.0.1'`,
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    `shared_preload_libraries = 'pg_cron'`,
    `cron.database_name = 'postgres'`,
    `cron.use_background_workers = on`,
    `max_worker_processes = 32`,
    `max_connections = 300`,
    `timezone = 'UTC'`,
    // A throw-away cluster: durability is traded for speed.
    `fsync = off`,
    `synchronous_commit = off`,
    `full_page_writes = off`,
  ].join("\n");
  await Deno.writeTextFile(`${data}/postgresql.conf`, `\n${conf}\n`, { append: true });
  await launch(dir);
  return cluster;
}

/**
 * The postmaster of each data folder this process started, by folder. It is this process's
 * child (through runuser when root), not pg_ctl's: pg_ctl start leaves it to init, and an
 * init that reaps late (a container's) keeps a stopped postmaster listed (defunct) for
 * seconds after the stack has ended.
 */
const launched = new Map<string, Deno.ChildProcess>();

/** Starts the postmaster of `<dir>/data` and waits until it accepts connections (as pg_ctl -w). */
async function launch(dir: string): Promise<void> {
  const data = `${dir}/data`;
  assertMayStart(`postgres -D ${data}`);
  const cmd = ["sh", "-c", 'exec "$0" -D "$1" >>"$2" 2>&1', `${PG_BIN}/postgres`, data];
  cmd.push(`${dir}/postgres.log`);
  const argv = isRoot() ? ["runuser", "-u", OS_USER, "--", ...cmd] : cmd;
  // Its own session, as pg_ctl start gives it: a Ctrl-C at the terminal reaches the stack only.
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  launched.set(data, child);
  const ended: { status?: Deno.CommandStatus } = {};
  child.status.then((s) => ended.status = s);
  const until = performance.now() + 60_000;
  for (;;) {
    // postmaster.pid's 8th line is the postmaster's status (what pg_ctl -w waits for).
    const lines = await Deno.readTextFile(`${data}/postmaster.pid`).then((t) => t.split("\n"))
      .catch(() => []);
    if (lines[7]?.trim() === "ready" && processAlive(Number(lines[0]))) return;
    const exited = ended.status;
    if (exited || performance.now() > until) {
      const log = await Deno.readTextFile(`${dir}/postgres.log`).catch(() => "");
      throw new Error(
        `postgres ${exited ? `exited (code ${exited.code})` : "did not start in 60 s"}:\n` +
          log.split("\n").slice(-15).join("\n"),
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The postmaster's pid from `<data>/postmaster.pid`, or null. */
function postmasterPid(data: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(`${data}/postmaster.pid`).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Runs `pg_ctl stop -m <mode>`, bounded by `sec` (pg_ctl's own -t, and a kill after it). */
async function pgCtlStop(data: string, mode: "fast" | "immediate", sec: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    run([`${PG_BIN}/pg_ctl`, "-D", data, "-m", mode, "-w", "-t", String(sec), "stop"], {
      asOsUser: true,
      stopping: true,
    }).catch(() => {}),
    new Promise((r) => timer = setTimeout(r, (sec + 1) * 1000)),
  ]);
  clearTimeout(timer);
}

/**
 * Stops the postmaster of `data` (if one runs) and waits for all of its processes. The fast
 * shutdown ends the sessions and checkpoints (fsync is off: that is quick); an immediate one
 * follows after FAST_SHUTDOWN_SEC or when `hurry` fires; SIGKILL is the last resort, children
 * first, so that the postmaster reaps them and none is left to init.
 */
async function stopPostmaster(data: string, hurry?: AbortSignal): Promise<string> {
  // A postmaster that had not yet written postmaster.pid is found by its command line.
  const pids = [postmasterPid(data), ...processesWith(`${PG_BIN}/postgres -D ${data} `)]
    .filter((p): p is number => p !== null && processAlive(p));
  const postmasters = [...new Set(pids)];
  if (postmasters.length === 0) return "";
  const children = () => postmasters.flatMap(descendants);
  const seen = new Set([...postmasters, ...children()]);
  const gone = async (ms: number, signal?: AbortSignal) => {
    for (const p of children()) seen.add(p);
    return await waitGone(postmasters, ms, signal);
  };
  let how = "";
  const stops = [pgCtlStop(data, "fast", FAST_SHUTDOWN_SEC)];
  if (!await gone(FAST_SHUTDOWN_SEC * 1000, hurry)) {
    how = hurry?.aborted
      ? "immediate shutdown (hurried)"
      : `immediate shutdown (fast took over ${FAST_SHUTDOWN_SEC} s)`;
    stops.push(pgCtlStop(data, "immediate", IMMEDIATE_SHUTDOWN_SEC));
    if (!await gone(IMMEDIATE_SHUTDOWN_SEC * 1000)) {
      how = `killed (immediate shutdown took over ${IMMEDIATE_SHUTDOWN_SEC} s)`;
      for (const p of children()) signalProcess(p, "SIGKILL");
      if (!await gone(500)) { for (const p of postmasters) signalProcess(p, "SIGKILL"); }
    }
  }
  // The postmaster is gone: its children have ended before it; none may outlive it.
  if (!await waitGone([...seen], 1000)) {
    for (const p of seen) signalProcess(p, "SIGKILL");
    await waitGone([...seen], 1000);
  }
  // Its parent (runuser, or this process) reaps it: nothing is left listed, not even defunct.
  const launcher = launched.get(data);
  if (launcher) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([launcher.status, new Promise((r) => timer = setTimeout(r, 1000))]);
    clearTimeout(timer);
    launched.delete(data);
  }
  // pg_ctl returns as soon as the postmaster is gone; one left waiting on a killed postmaster's
  // pid file is a tracked process, ended with the others when the stack stops.
  if (!how) await Promise.all(stops);
  return how;
}

/** Restarts a running cluster in place (used by fault tests): a fast shutdown, then a start. */
export async function restartCluster(cluster: Cluster): Promise<void> {
  const data = `${cluster.dir}/data`;
  await run([`${PG_BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"], { asOsUser: true });
  await launched.get(data)?.status;
  await launch(cluster.dir);
}

/** Runs a SQL file (or text) through psql as the URL's role; stops at the first error. */
export async function psql(
  cluster: { url: string },
  input: { file: string } | { sql: string },
  extra: string[] = [],
): Promise<string> {
  const args = [
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    ...extra,
    ...("file" in input ? ["-f", input.file] : ["-c", input.sql]),
    cluster.url,
  ];
  const out = await runTracked([`${PG_BIN}/psql`, ...args]);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    const what = "file" in input ? input.file : "sql";
    throw new Error(`psql ${what} failed:\n${stderr || stdout}`);
  }
  return stdout + stderr;
}
