// `deno task dev` as a developer runs it, as a subprocess with its own state folder
// (DEV_STATE_DIR: its own lock and cluster, so a developer's running dev stack is untouched):
// Ctrl-C (SIGINT) and SIGTERM stop it by itself, a line per part and a last all-stopped line,
// with nothing of it left (no postgres of its data folder, its ports refuse connections), even
// when Ctrl-C comes during the start and again while it stops; and real Twilio or LiveKit
// variables in the environment choose nothing without --real-twilio / --real-livekit.
import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
/** How long the stack may take to start on a busy machine, and to stop (then it is killed). */
const START_BOUND_MS = 120_000;
const STOP_BOUND_MS = 30_000;
const PARTS = [
  "functions",
  "auth and rest",
  "pg_net worker",
  "livekit emulator",
  "twilio emulator",
  "postgres",
];
const FAKE_TWILIO = {
  TWILIO_ACCOUNT_SID: "AC0123456789abcdef0123456789abcdef",
  TWILIO_AUTH_TOKEN: "not-a-real-token",
};

interface Dev {
  child: Deno.ChildProcess;
  stateDir: string;
  /** stdout and stderr so far, as one text. */
  output(): string;
  /** The exit status, or null if it did not end within `ms`. */
  exit(ms: number): Promise<Deno.CommandStatus | null>;
  /** Waits (bounded) until the output matches `re`; throws with the output otherwise. */
  waitFor(re: RegExp, ms: number): Promise<void>;
}

function startDev(args: string[], env: Record<string, string> = {}): Promise<Dev> {
  return (async () => {
    const stateDir = await Deno.makeTempDir({ prefix: "dev-stop-" });
    // The cluster's OS user (postgres, when the tests run as root) must reach the folder.
    await Deno.chmod(stateDir, 0o755);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "stack/commands/dev.ts", ...args],
      cwd: ROOT,
      env: { ...env, DEV_STATE_DIR: stateDir, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    const read = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
    };
    const reading = Promise.all([read(child.stdout), read(child.stderr)]);
    const status = child.status.then(async (s) => {
      await reading;
      return s;
    });
    const dev: Dev = {
      child,
      stateDir,
      output: () => text,
      async exit(ms) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const s = await Promise.race([
          status,
          new Promise<null>((r) => timer = setTimeout(() => r(null), ms)),
        ]);
        clearTimeout(timer);
        return s;
      },
      async waitFor(re, ms) {
        const until = performance.now() + ms;
        let ended = false;
        status.then(() => ended = true);
        while (!re.test(text)) {
          if (ended) await status; // the last output is read
          if (re.test(text)) return;
          if (ended || performance.now() > until) {
            throw new Error(
              `dev ${ended ? "ended" : "timed out"} before printing ${re}; its output:\n${text}`,
            );
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    };
    return dev;
  })();
}

/** The stack's stack.json once it is written (the stack is up), bounded. */
async function upInfo(dev: Dev) {
  await dev.waitFor(/Ctrl-C stops everything/, START_BOUND_MS);
  return JSON.parse(await Deno.readTextFile(`${dev.stateDir}/stack.json`));
}

function procStat(pid: number): string[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Running (a zombie has ended: it only waits for its parent to read its status). */
const running = (pid: number) => {
  const s = procStat(pid);
  return s !== null && s[0] !== "Z";
};

/** Every process (pid) whose command line contains `text`. */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(text) && running(Number(e.name))) out.push(Number(e.name));
    } catch {
      // ended while reading
    }
  }
  return out;
}

/** Every running descendant of `pid`. */
function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const s = procStat(Number(e.name));
    if (!s) continue;
    byParent.set(Number(s[1]), [...byParent.get(Number(s[1])) ?? [], Number(e.name)]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const c of byParent.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function postmasterPid(pgData: string): number {
  return Number(Deno.readTextFileSync(`${pgData}/postmaster.pid`).split("\n")[0]);
}

/** What the running stack is made of: its processes and ports. */
function snapshot(dev: Dev, info: {
  pgData: string;
  supabaseUrl: string;
  dbUrl: string;
  livekit: { url: string };
  twilio: { url: string } | null;
}) {
  const postmaster = postmasterPid(info.pgData);
  assert.ok(running(postmaster), "the stack's postmaster runs");
  const ports = [info.supabaseUrl, info.dbUrl, info.livekit.url, info.twilio?.url]
    .filter((u): u is string => !!u)
    .map((u) => Number(new URL(u.replace(/^postgres:/, "http:")).port));
  return {
    postmaster,
    pids: [postmaster, ...descendants(postmaster), ...descendants(dev.child.pid)],
    ports,
  };
}

/** After a failure: nothing of the stack may be left for the next run either. */
async function cleanUp(dev: Dev, pgData?: string) {
  if (running(dev.child.pid)) {
    try {
      dev.child.kill("SIGKILL");
    } catch {
      // ended
    }
  }
  await dev.exit(5000);
  if (pgData) {
    for (const pid of processesWith(`-D ${pgData}`)) {
      for (const p of [pid, ...descendants(pid)]) {
        try {
          Deno.kill(p, "SIGKILL");
        } catch {
          // ended
        }
      }
    }
  }
  await Deno.remove(dev.stateDir, { recursive: true }).catch(() => {});
}

/** Sends `signal`, then asserts it ends by itself, says so part by part, and leaves nothing. */
async function assertStops(
  dev: Dev,
  info: { pgData: string },
  seen: ReturnType<typeof snapshot>,
  signal: Deno.Signal,
) {
  dev.child.kill(signal);
  const status = await dev.exit(STOP_BOUND_MS);
  assert.ok(
    status,
    `dev did not end within ${STOP_BOUND_MS / 1000} s of ${signal}:\n${dev.output()}`,
  );
  assert.equal(status.code, 0, dev.output());
  const out = dev.output();
  const after = out.slice(out.indexOf("stopping ..."));
  assert.ok(out.includes("stopping ..."), out);
  for (const part of PARTS) {
    assert.match(after, new RegExp(`^stopped ${part} \\(\\d+\\.\\d s[;)]`, "m"), out);
  }
  const lines = out.trimEnd().split("\n");
  assert.match(lines[lines.length - 1], /^all stopped in \d+\.\d s$/, out);

  // Nothing of it runs, not even listed as ended: the postmaster was reaped by its parent.
  assert.equal(procStat(seen.postmaster), null, `postmaster ${seen.postmaster} is still listed`);
  assert.deepEqual(seen.pids.filter(running), [], "processes of the stack still run");
  assert.deepEqual(processesWith(`-D ${info.pgData}`), [], "a postgres of its data folder runs");
  for (const port of seen.ports) {
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }).then((c) => c.close()),
      `port ${port} still accepts connections`,
    );
  }
  // The lock and stack.json are gone: the next start finds a free state folder.
  await assert.rejects(Deno.stat(`${dev.stateDir}/lock`));
  await assert.rejects(Deno.stat(`${dev.stateDir}/stack.json`));
}

Deno.test("Ctrl-C stops the dev stack by itself, part by part, and leaves nothing running", async () => {
  const dev = await startDev(["--no-demo"]);
  let pgData: string | undefined;
  try {
    const info = await upInfo(dev);
    pgData = info.pgData;
    await assertStops(dev, info, snapshot(dev, info), "SIGINT");
  } finally {
    await cleanUp(dev, pgData);
  }
});

Deno.test("with TWILIO_* and LIVEKIT_* set and no flag, dev uses the emulators and says so; SIGTERM stops it", async () => {
  const dev = await startDev(["--no-demo"], {
    ...FAKE_TWILIO,
    LIVEKIT_URL: "wss://not-a-project.livekit.cloud",
    LIVEKIT_API_KEY: "APInotreal",
    LIVEKIT_API_SECRET: "not-a-real-secret",
  });
  let pgData: string | undefined;
  try {
    const info = await upInfo(dev);
    pgData = info.pgData;
    const out = dev.output();
    const start = out.slice(0, out.indexOf("postgres on port"));
    assert.match(
      start,
      /^Twilio: emulator \(TWILIO_\* in the environment are ignored; pass --real-twilio to use them\)$/m,
    );
    assert.match(
      start,
      /^LiveKit: emulator \(LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET in the environment are ignored; pass --real-livekit to use them\)$/m,
    );
    assert.doesNotMatch(out, /WARNING/);
    assert.equal(info.twilio.emulated, true);
    assert.notEqual(info.twilio.accountSid, FAKE_TWILIO.TWILIO_ACCOUNT_SID);
    assert.match(info.twilio.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(info.livekit.emulated, true);
    assert.match(info.livekit.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(out, /^TWILIO_BASE_URL +http:\/\/127\.0\.0\.1:\d+ \(emulator\)$/m);
    // The emulator takes the stack's own account, and refuses the environment's.
    const numbers = (sid: string, token: string) =>
      fetch(`${info.twilio.url}/2010-04-01/Accounts/${sid}/IncomingPhoneNumbers.json`, {
        headers: { Authorization: `Basic ${btoa(`${sid}:${token}`)}` },
      }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      });
    assert.equal(await numbers(info.twilio.accountSid, info.twilio.authToken), 200);
    assert.equal(
      await numbers(FAKE_TWILIO.TWILIO_ACCOUNT_SID, FAKE_TWILIO.TWILIO_AUTH_TOKEN),
      401,
    );
    await assertStops(dev, info, snapshot(dev, info), "SIGTERM");
  } finally {
    await cleanUp(dev, pgData);
  }
});

Deno.test("--real-twilio warns and skips the demo; Ctrl-C during the start, again and again while it stops, leaves nothing", async () => {
  // A "real" account at an address where nothing listens: nothing real can be reached.
  const dev = await startDev(["--real-twilio"], {
    ...FAKE_TWILIO,
    TWILIO_BASE_URL: "http://127.0.0.1:9",
  });
  try {
    await dev.waitFor(/^postgres on port \d+$/m, START_BOUND_MS);
    const out = dev.output();
    assert.match(
      out,
      /^Twilio: REAL account AC01\.\.\.cdef at http:\/\/127\.0\.0\.1:9 \(--real-twilio\)$/m,
    );
    assert.match(
      out,
      /^WARNING: --real-twilio: the Twilio account AC01\.\.\.cdef will be changed/m,
    );
    assert.match(out, /^demo: skipped: the demo dials its nine hard-coded demo contacts/m);
    const pgData = `${dev.stateDir}/pg/data`;
    // During the migrations: the first Ctrl-C, then one every 100 ms until it has ended.
    dev.child.kill("SIGINT");
    let status: Deno.CommandStatus | null = null;
    const until = performance.now() + STOP_BOUND_MS;
    while (!status && performance.now() < until) {
      status = await dev.exit(100);
      if (!status) {
        try {
          dev.child.kill("SIGINT");
        } catch {
          // ended meanwhile
        }
      }
    }
    assert.ok(status, `dev did not end within ${STOP_BOUND_MS / 1000} s:\n${dev.output()}`);
    const lines = dev.output().trimEnd().split("\n");
    assert.match(lines[lines.length - 1], /^all stopped in \d+\.\d s$/, dev.output());
    assert.match(dev.output(), /^stopped postgres \(/m);
    assert.deepEqual(processesWith(`-D ${pgData}`), [], "a postgres of its data folder runs");
    assert.deepEqual(processesWith(dev.stateDir), [], "a process of its state folder runs");
    await assert.rejects(Deno.stat(`${dev.stateDir}/lock`));
  } finally {
    await cleanUp(dev, `${dev.stateDir}/pg/data`);
  }
});

Deno.test("dev refuses a real flag without its variables, and the demo on a real account", async () => {
  const env = { TWILIO_ACCOUNT_SID: "", TWILIO_AUTH_TOKEN: "" };
  const missing = await startDev(["--no-demo", "--real-twilio"], env);
  const once = await startDev(["--once", "--real-twilio"], FAKE_TWILIO);
  try {
    const [a, b] = [await missing.exit(STOP_BOUND_MS), await once.exit(STOP_BOUND_MS)];
    assert.equal(a?.code, 1, missing.output());
    assert.match(
      missing.output(),
      /^not started: --real-twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN$/m,
    );
    assert.equal(b?.code, 1, once.output());
    assert.match(once.output(), /^demo refused: the demo dials its nine hard-coded demo contacts/m);
    // Refused before anything started: no lock, no cluster.
    for (const dev of [missing, once]) {
      assert.deepEqual([...Deno.readDirSync(dev.stateDir)], [], dev.output());
    }
  } finally {
    await cleanUp(missing);
    await cleanUp(once);
  }
});
