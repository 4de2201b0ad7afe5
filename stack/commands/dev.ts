// `deno task dev`: starts the local stack, prints how to reach it, runs the demo campaign,
// and stops cleanly on Ctrl-C. `--once` exits after the demo's summary; `--no-demo` skips it.
// One dev stack per checkout: a second start prints where the running one is and exits 1.
// LiveKit and Twilio are the emulators unless --real-livekit / --real-twilio ask for the ones
// of LIVEKIT_* / TWILIO_* (their variables alone never do); the demo never runs on those.
// Ctrl-C (SIGINT) or SIGTERM, during the start too, stops every part at once and prints a
// line as each is down; a second Ctrl-C stops faster (PostgreSQL's immediate shutdown); the
// command ends only when nothing of the stack runs. DEV_STATE_DIR sets another state folder
// (lock, cluster, stack.json, functions.log) than .local/dev, for a second, separate stack.
// `--new-keys` gives the stack only the new API keys (sb_publishable_, sb_secret_; no JWT secret).
// The console (console/) is built when stale and served at the printed `console:` URL (not with
// --once); CONSOLE_PORT fixes its port.
import { runDemo } from "./demo.ts";
import { buildConsole, serveConsole } from "../console.ts";
import {
  chooseServices,
  lockState,
  type Stack,
  type StackLock,
  StackLockedError,
  startStack,
  stateDirOf,
} from "../stack.ts";

const FLAGS = ["--once", "--no-demo", "--real-twilio", "--real-livekit", "--new-keys"];
const unknown = Deno.args.filter((a) => !FLAGS.includes(a));
if (unknown.length > 0) {
  console.error(`unknown argument ${unknown.join(" ")}; the arguments are ${FLAGS.join(" ")}`);
  Deno.exit(2);
}
const once = Deno.args.includes("--once");
let demo = !Deno.args.includes("--no-demo");
const realTwilio = Deno.args.includes("--real-twilio");
const realLiveKit = Deno.args.includes("--real-livekit");
const keys = Deno.args.includes("--new-keys") ? "new" : "legacy";
const timeScale = Number(Deno.env.get("EMULATOR_TIME_SCALE") ?? "0.1");
const NAME = "dev";
const stateOverride = Deno.env.get("DEV_STATE_DIR");
const stateDir = stateOverride
  ? new URL(stateOverride, `file://${Deno.cwd()}/`).pathname.replace(/\/$/, "")
  : stateDirOf(NAME);

// Which LiveKit and Twilio, first and plainly: real ones change real accounts and ring phones.
const choice = chooseServices(Deno.env.toObject(), { realTwilio, realLiveKit });
if (choice.problems.length > 0) {
  console.error(`not started: ${choice.problems.join("; ")}`);
  Deno.exit(1);
}
for (const line of choice.lines) console.log(line);
for (const warning of choice.warnings) console.log(`WARNING: ${warning}`);
const real = [realTwilio && "--real-twilio", realLiveKit && "--real-livekit"].filter(Boolean);
if (real.length > 0 && demo) {
  const why = `the demo dials its nine hard-coded demo contacts, which must never be dialed ` +
    `through a real account (${real.join(", ")})`;
  if (once) {
    console.error(`demo refused: ${why}. Run it without ${real.join(" and ")} (the emulators).`);
    Deno.exit(1);
  }
  console.log(`demo: skipped: ${why}; the stack runs without it`);
  demo = false;
}

let lock: StackLock;
try {
  lock = await lockState(NAME, stateDir);
} catch (e) {
  if (!(e instanceof StackLockedError)) throw e;
  const h = e.holder;
  console.error(
    `A dev stack is already running from this checkout (pid ${h.pid}, started ${
      h.startedAt ?? "earlier"
    }).`,
  );
  if (h.supabaseUrl) console.error(`  SUPABASE_URL  ${h.supabaseUrl}`);
  if (h.stackFile) console.error(`  keys and URLs ${h.stackFile}`);
  console.error(`Use it, or stop it first (Ctrl-C in its terminal, or kill ${h.pid}).`);
  Deno.exit(1);
}

// Holding the lock, any stack.json left here describes a stack that is gone.
const stackFile = `${stateDir}/stack.json`;
await Deno.remove(stackFile).catch(() => {});

// From here on a signal stops the stack, even while it starts.
const startup = new AbortController();
const hurry = new AbortController();
let stopping: Promise<never> | null = null;
let firstSignalAt = 0;

function shutdown(code: number, bySignal = false): Promise<never> {
  return stopping ??= (async () => {
    const t0 = performance.now();
    console.log(`stopping ...${bySignal ? " (Ctrl-C again to stop faster)" : ""}`);
    // A part failing late as it is stopped must not end this process before the cluster is down.
    globalThis.addEventListener("unhandledrejection", (e) => e.preventDefault());
    globalThis.addEventListener("error", (e) => e.preventDefault());
    try {
      startup.abort(new Error("interrupted while starting"));
      // A start that was under way stops what it started itself (and prints the same lines).
      const stack = await starting.catch(() => null);
      await stack?.stop({ log: (l) => console.log(l), hurry: hurry.signal });
      await Deno.remove(stackFile).catch(() => {});
      await lock.release();
      console.log(`all stopped in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      console.error(`stopping failed: ${e instanceof Error ? e.stack : e}`);
      code = 1;
    }
    Deno.exit(code);
  })();
}

function onSignal() {
  if (!stopping) {
    firstSignalAt = performance.now();
    void shutdown(0, true);
    return;
  }
  // One Ctrl-C can arrive more than once (from the terminal, and passed on by `deno task` and
  // npx): a second one counts when it comes later.
  if (hurry.signal.aborted || performance.now() - firstSignalAt < 200) return;
  console.log("stopping faster ...");
  hurry.abort();
}
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

const starting: Promise<Stack> = startStack({
  name: NAME,
  stateDir,
  timeScale,
  realTwilio,
  realLiveKit,
  keys,
  signal: startup.signal,
  hurry: hurry.signal,
  log: (l) => console.log(l),
});
let stack: Stack;
try {
  stack = await starting;
} catch (e) {
  if (stopping) await stopping;
  await lock.release();
  console.error(`could not start the stack: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}
if (stopping) await stopping;
await lock.note({ supabaseUrl: stack.info.supabaseUrl, stackFile });

const { info } = stack;
const summary = {
  SUPABASE_URL: info.supabaseUrl,
  ...(keys === "new"
    ? { "publishable key": info.anonKey, "secret key": info.serviceKey }
    : { SUPABASE_ANON_KEY: info.anonKey, SUPABASE_SERVICE_ROLE_KEY: info.serviceKey }),
  SUPABASE_DB_URL: info.dbUrl,
  auth: `${info.supabaseUrl}/auth/v1 (local stand-in)`,
  rest: `${info.supabaseUrl}/rest/v1 (local stand-in)`,
  functions: `${info.supabaseUrl}/functions/v1/<name>`,
  LIVEKIT_URL: info.livekit.url +
    (info.livekit.emulated ? ` (emulator, time scale ${timeScale})` : " (REAL: --real-livekit)"),
  TWILIO_BASE_URL: info.twilio
    ? `${info.twilio.url ?? "https://api.twilio.com"}${
      info.twilio.emulated ? " (emulator)" : " (REAL: --real-twilio)"
    }`
    : "(static SIP mode)",
  "function logs": info.logFile,
};
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(26)} ${v}`);
if (!once) {
  try {
    await buildConsole((l) => console.log(l));
    const served = serveConsole(
      { supabaseUrl: info.supabaseUrl, anonKey: info.anonKey, realtime: false },
      Number(Deno.env.get("CONSOLE_PORT") ?? 0),
    );
    console.log(`console: ${served.url}`);
    await lock.note({ supabaseUrl: info.supabaseUrl, stackFile, consoleUrl: served.url });
  } catch (e) {
    console.log(`console: not served: ${e instanceof Error ? e.message : e}`);
  }
}
console.log(
  `(also in ${
    stackFile.includes(".local/") ? stackFile.slice(stackFile.indexOf(".local/")) : stackFile
  }; keys, ports and data are new on each start) — Ctrl-C stops everything`,
);

if (demo) {
  // Once stopping, the demo's lines (and its failure as its stack goes away) are not news.
  const say = (l: string) => {
    if (!stopping) console.log(l);
  };
  try {
    await runDemo(info, { once, log: say });
  } catch (e) {
    if (!stopping) console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    if (once) await shutdown(1);
  }
}
if (once) await shutdown(0);
