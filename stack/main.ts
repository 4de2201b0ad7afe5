// `deno task dev`: starts the local stack, prints how to reach it, runs the demo campaign,
// and stops cleanly on Ctrl-C. `--once` exits after the demo's summary; `--no-demo` skips it.
import { runDemo } from "./demo.ts";
import { ROOT, startStack } from "./stack.ts";

const once = Deno.args.includes("--once");
const demo = !Deno.args.includes("--no-demo");
const timeScale = Number(Deno.env.get("EMULATOR_TIME_SCALE") ?? "0.1");

const stack = await startStack({ name: "dev", timeScale, log: (l) => console.log(l) });
let stopping = false;
async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  console.log("stopping ...");
  await stack.stop();
  await Deno.remove(`${ROOT}/.local/stack.json`).catch(() => {});
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
  LIVEKIT_URL: info.livekit.url +
    (info.livekit.emulated ? ` (emulator, time scale ${timeScale})` : ""),
  TWILIO_BASE_URL: info.twilio
    ? `${info.twilio.url ?? "https://api.twilio.com"}${info.twilio.emulated ? " (emulator)" : ""}`
    : "(static SIP mode)",
  functions: `${info.supabaseUrl}/functions/v1/<name>`,
  "function logs": info.logFile,
};
await Deno.writeTextFile(`${ROOT}/.local/stack.json`, JSON.stringify(info, null, 2));
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(26)} ${v}`);
console.log(`(also in .local/stack.json) — Ctrl-C stops everything`);

if (demo) {
  try {
    await runDemo(info, { once, log: (l) => console.log(l) });
  } catch (e) {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    if (once) await shutdown(1);
  }
}
if (once) await shutdown(0);
