// The real LiveKit server for tests: Redis and livekit-server (the pinned version
// tools/install_livekit.sh builds) on 127.0.0.1 only, on free ports, in a temp dir of their own,
// with a generated API key and secret. Nothing listens beyond loopback: the HTTP/Twirp port binds
// 127.0.0.1, the WebRTC TCP port is off, UDP ports are taken only by media sessions (none here)
// from a range on loopback, no STUN lookup is made (`use_external_ip: false`). livekit-sip is
// not run (its module is not on the Go proxy here), so the SIP API answers trunk and dispatch rule
// calls (they need only Redis) but no call can be placed.
//
//   const lk = await startRealLiveKit();
//   new SipClient(lk.url, lk.apiKey, lk.apiSecret);
//   await lk.close(); // SIGTERM, SIGKILL after a bound; the temp dir goes

export const LIVEKIT_SERVER_VERSION = "1.13.5";
export const LIVEKIT_SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server";
/** What installs it (CI's .ci/run runs it before the tests). */
export const INSTALL_COMMAND = "tools/install_livekit.sh";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Where tools/install_livekit.sh puts the binary, unless LIVEKIT_SERVER_BIN names one. */
export function liveKitServerPath(): string {
  const explicit = Deno.env.get("LIVEKIT_SERVER_BIN");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? "/root"}/.cache`;
  return `${cache}/voice-lines/livekit-server-v${LIVEKIT_SERVER_VERSION}/server`;
}

export class LiveKitServerMissing extends Error {
  constructor(detail: string) {
    super(
      `${detail}. Install livekit-server ${LIVEKIT_SERVER_VERSION} with: ${ROOT}/${INSTALL_COMMAND} ` +
        `(go install ${LIVEKIT_SERVER_MODULE}@v${LIVEKIT_SERVER_VERSION}, about 4 minutes, once; ` +
        `CI's .ci/run runs it), or point LIVEKIT_SERVER_BIN at such a binary.`,
    );
    this.name = "LiveKitServerMissing";
  }
}

/** The binary and its version; throws LiveKitServerMissing when absent or another version. */
export async function findLiveKitServer(): Promise<{ path: string; version: string }> {
  const path = liveKitServerPath();
  try {
    await Deno.stat(path);
  } catch {
    throw new LiveKitServerMissing(`livekit-server is not installed at ${path}`);
  }
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    throw new LiveKitServerMissing(`${path} does not run (${e instanceof Error ? e.message : e})`);
  }
  const text = new TextDecoder().decode(out.stdout).trim();
  const version = /livekit-server version (\S+)/.exec(text)?.[1];
  if (version !== LIVEKIT_SERVER_VERSION) {
    throw new LiveKitServerMissing(
      `${path} is ${version ? `livekit-server ${version}` : `not livekit-server (${text})`}, ` +
        `not ${LIVEKIT_SERVER_VERSION}`,
    );
  }
  return { path, version };
}

/** redis-server from PATH (Debian's package) or REDIS_SERVER_BIN. */
export async function findRedisServer(): Promise<string> {
  const explicit = Deno.env.get("REDIS_SERVER_BIN");
  const candidates = explicit ? [explicit] : [
    ...(Deno.env.get("PATH") ?? "/usr/bin").split(":").map((d) => `${d}/redis-server`),
    "/usr/bin/redis-server",
  ];
  for (const c of candidates) {
    try {
      if ((await Deno.stat(c)).isFile) return c;
    } catch {
      // next
    }
  }
  throw new Error(
    "redis-server is missing (livekit-server's SIP API exists only with Redis). " +
      "Install it with: apt-get install -y redis-server (CI's .ci/run does)",
  );
}

export interface RealLiveKit {
  /** http://127.0.0.1:PORT */
  url: string;
  apiKey: string;
  apiSecret: string;
  /** livekit-server's own `--version`. */
  version: string;
  /** The temp dir holding the config and both logs. */
  dir: string;
  /** The last lines of livekit-server's log (for failure messages). */
  logTail(lines?: number): Promise<string>;
  /** Stops livekit-server, then Redis (SIGTERM, SIGKILL after `graceMs`), removes the dir. */
  close(graceMs?: number): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function randomString(length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A child whose output goes to a file, and that can be stopped with a bound. */
interface Supervised {
  child: Deno.ChildProcess;
  exited: Promise<Deno.CommandStatus>;
  done: boolean;
  stop(graceMs: number): Promise<void>;
}

function supervise(cmd: string, args: string[], logFile: string): Supervised {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = Deno.openSync(logFile, { write: true, create: true, append: true });
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      try {
        log.writeSync(chunk);
      } catch {
        // the log is closed: drop the rest
      }
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const s: Supervised = {
    child,
    done: false,
    exited: child.status.then(async (status) => {
      s.done = true;
      await pumps.catch(() => {});
      log.close();
      return status;
    }),
    async stop(graceMs: number) {
      if (s.done) {
        await s.exited;
        return;
      }
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = delay(graceMs).then(() => "timeout" as const);
      if (await Promise.race([s.exited.then(() => "exited" as const), timer]) === "timeout") {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      await s.exited;
    },
  };
  return s;
}

async function tail(file: string, lines: number): Promise<string> {
  try {
    return (await Deno.readTextFile(file)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Sends PING until Redis answers +PONG. */
async function redisReady(port: number, proc: Supervised, deadline: number, log: string) {
  while (Date.now() < deadline) {
    if (proc.done) throw new Error(`redis-server exited at start:\n${await tail(log, 20)}`);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await conn.read(buf);
        if (n && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG")) return;
      } finally {
        conn.close();
      }
    } catch {
      // not listening yet
    }
    await delay(50);
  }
  throw new Error(`redis-server did not answer PING:\n${await tail(log, 20)}`);
}

/** GET / answers 200 once the node's stats are fresh (406 before). */
async function liveKitReady(url: string, proc: Supervised, deadline: number, log: string) {
  let last = "no answer";
  while (Date.now() < deadline) {
    if (proc.done) throw new Error(`livekit-server exited at start:\n${await tail(log, 30)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await delay(100);
  }
  throw new Error(`livekit-server did not become healthy (${last}):\n${await tail(log, 30)}`);
}

export interface StartOptions {
  /** How long the start may take (default 30 s). */
  startTimeoutMs?: number;
  /** livekit-server's log level (default "info": one line per API call). */
  logLevel?: "debug" | "info" | "warn" | "error";
}

/**
 * Starts Redis and livekit-server for one test. Throws LiveKitServerMissing when the binary is
 * absent (run tools/install_livekit.sh), and stops whatever it started when the start fails.
 */
export async function startRealLiveKit(opts: StartOptions = {}): Promise<RealLiveKit> {
  const { path: binary, version } = await findLiveKitServer();
  const redisBinary = await findRedisServer();
  const dir = await Deno.makeTempDir({ prefix: "livekit-real-" });
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  const apiKey = `API${randomString(12)}`;
  const apiSecret = randomString(43);
  const redisLog = `${dir}/redis.log`;
  const liveKitLog = `${dir}/livekit.log`;
  const started: Supervised[] = [];
  const stopAll = async (graceMs: number) => {
    for (const s of started.reverse()) await s.stop(graceMs);
    started.length = 0;
  };
  try {
    const redisPort = freePort();
    const redis = supervise(redisBinary, [
      "--bind",
      "127.0.0.1",
      "--port",
      String(redisPort),
      "--protected-mode",
      "yes",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
    ], redisLog);
    started.push(redis);
    await redisReady(redisPort, redis, deadline, redisLog);

    const port = freePort();
    // UDP ports of media sessions (none in these tests): nothing binds them at start.
    const udpBase = 40000 + Math.floor(Math.random() * 2000) * 10;
    const config = {
      port,
      bind_addresses: ["127.0.0.1"],
      keys: { [apiKey]: apiSecret },
      redis: { address: `127.0.0.1:${redisPort}` },
      rtc: {
        tcp_port: 0,
        port_range_start: udpBase,
        port_range_end: udpBase + 9,
        use_external_ip: false,
        node_ip: "127.0.0.1",
        enable_loopback_candidate: true,
        ips: { includes: ["127.0.0.1/32"] },
        stun_servers: [],
      },
      turn: { enabled: false },
      logging: { level: opts.logLevel ?? "info" },
    };
    // JSON is YAML: livekit-server reads it as its config file.
    await Deno.writeTextFile(`${dir}/livekit.yaml`, JSON.stringify(config, null, 2));
    const liveKit = supervise(binary, ["--config", `${dir}/livekit.yaml`], liveKitLog);
    started.push(liveKit);
    const url = `http://127.0.0.1:${port}`;
    await liveKitReady(url, liveKit, deadline, liveKitLog);

    let closed = false;
    return {
      url,
      apiKey,
      apiSecret,
      version,
      dir,
      logTail: (lines = 40) => tail(liveKitLog, lines),
      async close(graceMs = 5000) {
        if (closed) return;
        closed = true;
        await stopAll(graceMs);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await stopAll(2000);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
