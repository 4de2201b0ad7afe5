// `deno task dev`: starts the local stack, prints how to reach it, runs the demo campaign,
// and stops cleanly on Ctrl-C. `--once` exits after the demo's summary; `--no-demo` skips it.
// One dev stack per checkout: a second start prints where the running one is and exits 1.
import { runDemo } from "./demo.ts";
import { lockState, type StackLock, StackLockedError, startStack } from "../stack.ts";

const once = Deno.args.includes("--once");
const demo = !Deno.args.includes("--no-demo");
const timeScale = Number(Deno.env.get("EMULATOR_TIME_SCALE") ?? "0.1");
const NAME = "dev";

let lock: StackLock;
try {
  lock = await lockState(NAME);
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
await Deno.remove(`${lock.file.replace(/\/lock$/, "")}/stack.json`).catch(() => {});

let stack: Awaited<ReturnType<typeof startStack>>;
try {
  stack = await startStack({ name: NAME, timeScale, log: (l) => console.log(l) });
} catch (e) {
  await lock.release();
  console.error(`could not start the stack: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}
const stackFile = `${stack.info.stateDir}/stack.json`;
await lock.note({ supabaseUrl: stack.info.supabaseUrl, stackFile });

let stopping = false;
async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  console.log("stopping ...");
  await stack.stop();
  await Deno.remove(stackFile).catch(() => {});
  await lock.release();
  Deno.exit(code);
}
Deno.addSignalListener("SIGINT", () => shutdown());
Deno.addSignalListener("SIGTERM", () => shutdown());

const { info } = stack;
const summary = {
  SUPABASE_URL: info.supabaseUrl,
  SUPABASE_ANON_KEY: info.anonKey,
  SUPABASE_SERVICE_ROLE_KEY: info.serviceKey,
  SUPABASE_DB_URL: info.dbUrl,
  auth: `${info.supabaseUrl}/auth/v1 (local stand-in)`,
  rest: `${info.supabaseUrl}/rest/v1 (local stand-in)`,
  functions: `${info.supabaseUrl}/functions/v1/<name>`,
  LIVEKIT_URL: info.livekit.url +
    (info.livekit.emulated ? ` (emulator, time scale ${timeScale})` : ""),
  TWILIO_BASE_URL: info.twilio
    ? `${info.twilio.url ?? "https://api.twilio.com"}${info.twilio.emulated ? " (emulator)" : ""}`
    : "(static SIP mode)",
  "function logs": info.logFile,
};
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(26)} ${v}`);
console.log(
  `(also in ${
    stackFile.slice(stackFile.indexOf(".local/"))
  }; keys, ports and data are new on each start) — Ctrl-C stops everything`,
);

if (demo) {
  try {
    await runDemo(info, { once, log: (l) => console.log(l) });
  } catch (e) {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    if (once) await shutdown(1);
  }
}
if (once) await shutdown(0);
