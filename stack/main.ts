// `deno task dev`: starts the local stack, prints how to reach it, and stops cleanly on Ctrl-C.
import { ROOT, startStack } from "./stack.ts";

const stack = await startStack({ name: "dev", log: (l) => console.log(l) });
const { info } = stack;
const summary = {
  SUPABASE_URL: info.supabaseUrl,
  SUPABASE_ANON_KEY: info.anonKey,
  SUPABASE_SERVICE_ROLE_KEY: info.serviceKey,
  SUPABASE_DB_URL: info.dbUrl,
  LIVEKIT_URL: info.livekit.url + (info.livekit.emulated ? " (emulator)" : ""),
  TWILIO_BASE_URL: info.twilio ? `${info.twilio.url ?? "api.twilio.com"}${info.twilio.emulated ? " (emulator)" : ""}` : "(static SIP mode)",
  functions: `${info.supabaseUrl}/functions/v1/<name>`,
  logs: info.logFile,
};
await Deno.writeTextFile(`${ROOT}/.local/stack.json`, JSON.stringify(info, null, 2));
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(26)} ${v}`);
console.log(`(also in .local/stack.json) — Ctrl-C stops everything`);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  console.log("stopping ...");
  await stack.stop();
  await Deno.remove(`${ROOT}/.local/stack.json`).catch(() => {});
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
