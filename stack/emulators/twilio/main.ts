// Runs the Twilio emulator on its own:
//   TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... PORT=4010 TWILIO_NUMBERS=+15550100,+15550101 \
//     deno run -A stack/emulators/twilio/main.ts

import { z } from "zod";
import { startTwilio } from "./server.ts";

const Env = z.object({
  TWILIO_ACCOUNT_SID: z.string({ error: "missing: the account SID the emulator accepts" }).regex(
    /^AC[0-9a-fA-F]{32}$/,
    "the account SID the emulator accepts must be AC followed by 32 hex digits",
  ),
  TWILIO_AUTH_TOKEN: z.string({ error: "missing: the auth token the emulator accepts" }).min(
    1,
    "missing: the auth token the emulator accepts",
  ),
  PORT: z.coerce.number().int().min(0).max(65535).default(4010),
  TWILIO_NUMBERS: z.string().default("").transform((s) =>
    s.split(",").map((n) => n.trim()).filter((n) => n !== "")
  ),
});

const parsed = Env.safeParse({
  TWILIO_ACCOUNT_SID: Deno.env.get("TWILIO_ACCOUNT_SID"),
  TWILIO_AUTH_TOKEN: Deno.env.get("TWILIO_AUTH_TOKEN"),
  PORT: Deno.env.get("PORT") || undefined,
  TWILIO_NUMBERS: Deno.env.get("TWILIO_NUMBERS"),
});
if (!parsed.success) {
  const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
  console.error(`Cannot start the Twilio emulator; fix these variables:\n${lines.join("\n")}`);
  Deno.exit(1);
}
const env = parsed.data;

const emulator = await startTwilio({
  accountSid: env.TWILIO_ACCOUNT_SID,
  authToken: env.TWILIO_AUTH_TOKEN,
  port: env.PORT,
  numbers: env.TWILIO_NUMBERS.map((phoneNumber) => ({ phoneNumber })),
}).catch((e: Error) => {
  console.error(e.message);
  Deno.exit(1);
});
console.log(`Twilio emulator listening on ${emulator.url}`);

const stop = async () => {
  await emulator.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
