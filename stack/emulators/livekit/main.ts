/**
 * Runs the LiveKit emulator on its own.
 *
 *   LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret deno run -A stack/emulators/livekit/main.ts
 *
 * Optional: PORT (default 7880, LiveKit's own), WEBHOOK_URL, LIVEKIT_TIME_SCALE (default 1),
 * LIVEKIT_REGIONS (extra listeners listed by /settings/regions, default 0).
 * It listens on 127.0.0.1 only.
 */
import { startLiveKit } from "./server.ts";

function readConfig() {
  const problems: string[] = [];
  const apiKey = Deno.env.get("LIVEKIT_API_KEY") ?? "";
  const apiSecret = Deno.env.get("LIVEKIT_API_SECRET") ?? "";
  if (!apiKey) {
    problems.push("LIVEKIT_API_KEY (the API key clients sign their tokens with) is not set");
  }
  if (!apiSecret) {
    problems.push("LIVEKIT_API_SECRET (the secret that signs API tokens and webhooks) is not set");
  }
  const port = Number(Deno.env.get("PORT") ?? "7880");
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push("PORT must be a port number");
  }
  const timeScale = Number(Deno.env.get("LIVEKIT_TIME_SCALE") ?? "1");
  if (!Number.isFinite(timeScale) || timeScale < 0) {
    problems.push("LIVEKIT_TIME_SCALE must be a number >= 0");
  }
  const regions = Number(Deno.env.get("LIVEKIT_REGIONS") ?? "0");
  if (!Number.isInteger(regions) || regions < 0) {
    problems.push("LIVEKIT_REGIONS must be a whole number >= 0");
  }
  if (problems.length) {
    throw new Error(`cannot start the LiveKit emulator:\n  - ${problems.join("\n  - ")}`);
  }
  return {
    apiKey,
    apiSecret,
    port,
    webhookUrl: Deno.env.get("WEBHOOK_URL") || null,
    timeScale,
    regions,
  };
}

if (import.meta.main) {
  let config;
  try {
    config = readConfig();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    Deno.exit(1);
  }
  const emulator = await startLiveKit(config);
  console.log(emulator.url);
  for (const url of emulator.regionUrls) console.log(url);
  const stop = async () => {
    await emulator.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
