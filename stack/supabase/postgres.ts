// A throw-away PostgreSQL 15 cluster with pg_cron and pgTAP, the database half of the
// local stack. Runs as an unprivileged OS user when started as root (Postgres refuses root).

const PG_BIN = Deno.env.get("PG_BIN") ?? "/usr/lib/postgresql/15/bin";
const EXTENSION_DIR = "/usr/share/postgresql/15/extension";
const PACKAGES = ["postgresql-15-cron", "postgresql-15-pgtap"];
const OS_USER = "postgres";

export interface Cluster {
  port: number;
  password: string;
  dir: string;
  /** Superuser URL (the `postgres` role, as on Supabase). */
  url: string;
  stop(): Promise<void>;
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

async function run(cmd: string[], opts: { asOsUser?: boolean; env?: Record<string, string> } = {}) {
  const argv = opts.asOsUser && isRoot() ? ["runuser", "-u", OS_USER, "--", ...cmd] : cmd;
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
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
  const out = await new Deno.Command("runuser", {
    args: ["-u", OS_USER, "--", "test", "-x", dir],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Creates and starts a fresh cluster in `dir` (wiped first), or in /tmp when the OS user cannot reach it. */
export async function startCluster(wanted: string, port = freePort()): Promise<Cluster> {
  await ensurePackages();
  await Deno.mkdir(wanted, { recursive: true });
  const dir = await reachable(wanted)
    ? wanted
    : await Deno.makeTempDir({ prefix: "voice-lines-pg-" });
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const password = randomSecret();
  const data = `${dir}/data`;
  const pwfile = `${dir}/pwfile`;
  await Deno.writeTextFile(pwfile, password);
  if (isRoot()) {
    await run(["chown", "-R", OS_USER, dir]);
    await Deno.chmod(dir, 0o700);
  }
  await run([
    `${PG_BIN}/initdb`,
    "-D",
    data,
    "-U",
    "postgres",
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
  await run([
    `${PG_BIN}/pg_ctl`,
    "-D",
    data,
    "-l",
    `${dir}/postgres.log`,
    "-w",
    "-t",
    "60",
    "start",
  ], {
    asOsUser: true,
  });
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    port,
    password,
    dir,
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      await run([`${PG_BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"], { asOsUser: true })
        .catch((e) => console.error(String(e)));
      if (dir !== wanted) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Restarts a running cluster in place (used by fault tests). */
export async function restartCluster(cluster: Cluster): Promise<void> {
  await run([
    `${PG_BIN}/pg_ctl`,
    "-D",
    `${cluster.dir}/data`,
    "-l",
    `${cluster.dir}/postgres.log`,
    "-m",
    "fast",
    "-w",
    "restart",
  ], { asOsUser: true });
}

/** Runs a SQL file (or text) through psql as the superuser; stops at the first error. */
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
  const out = await new Deno.Command(`${PG_BIN}/psql`, { args, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    const what = "file" in input ? input.file : "sql";
    throw new Error(`psql ${what} failed:\n${stderr || stdout}`);
  }
  return stdout + stderr;
}
