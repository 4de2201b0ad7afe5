// Row 7: time to first response of each function in a fresh Deno process (its own
// index.ts, as deployed), divided by a hello-world Deno.serve started the same way; with
// each function's module graph and whether it can load the Twilio SDK.
import { freePort } from "../stack/supabase/postgres.ts";
import { fmt, type Json, median, ROOT, type Row } from "./lib.ts";

const FUNCTIONS = [
  "campaign-tick",
  "create-participant",
  "create-trunks",
  "list-trunks",
  "livekit-webhook",
  "map-number",
];
/** The functions that provision Twilio and so may load its SDK (on demand). */
const PROVISIONING = new Set(["map-number", "create-trunks"]);
const RUNS = 5;

/** Spawn to first answered request, in ms. */
async function firstResponse(entry: string): Promise<number> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", entry],
    cwd: ROOT,
    env: { DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}` },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    // Deno prints "Listening on ..." once the module graph has run and the server is up.
    const listening = async (stream: ReadableStream<Uint8Array>) => {
      let seen = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        seen += chunk;
        if (seen.includes("Listening on")) return;
      }
      throw new Error(`${entry} exited before serving: ${seen}`);
    };
    await Promise.any([listening(child.stdout), listening(child.stderr)]);
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: "OPTIONS" });
    await res.body?.cancel();
    if (res.status >= 500) throw new Error(`${entry} answered ${res.status}`);
    return performance.now() - started;
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

interface Graph {
  localModules: number;
  npmPackages: number;
  /** The Twilio SDK is loaded at start (static imports). */
  twilioAtStart: boolean;
  /** The Twilio SDK can be loaded later (a dynamic import reaches it). */
  twilioOnDemand: boolean;
}

/** Walks `deno info --json`: runtime imports only (type-only imports are erased). */
async function graph(name: string): Promise<Graph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `supabase/functions/${name}/index.ts`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info: Json = JSON.parse(new TextDecoder().decode(out.stdout));
  const bySpecifier = new Map<string, Json>(info.modules.map((m: Json) => [m.specifier, m]));
  const resolve = (s: string) => info.redirects[s] ?? s;
  const walk = (dynamic: boolean) => {
    const local = new Set<string>();
    const npm = new Set<string>();
    const queue: string[] = info.roots.map(resolve);
    while (queue.length) {
      const m = bySpecifier.get(queue.pop()!);
      if (!m) continue;
      if (m.kind === "npm") {
        const pending = [m.npmPackage as string];
        while (pending.length) {
          const p = pending.pop()!;
          if (npm.has(p)) continue;
          npm.add(p);
          pending.push(...(info.npmPackages[p]?.dependencies ?? []));
        }
        continue;
      }
      if (local.has(m.specifier)) continue;
      local.add(m.specifier);
      for (const d of m.dependencies ?? []) {
        if (d.code && (dynamic || !d.isDynamic)) queue.push(resolve(d.code.specifier));
      }
    }
    return { local, npm };
  };
  const atStart = walk(false);
  const all = walk(true);
  const isTwilio = (p: string) => p.startsWith("twilio@");
  return {
    localModules: atStart.local.size,
    npmPackages: atStart.npm.size,
    twilioAtStart: [...atStart.npm].some(isTwilio),
    twilioOnDemand: [...all.npm].some(isTwilio),
  };
}

export async function coldStart(ctx: { say: (line: string) => void }): Promise<Row[]> {
  const entries = [
    "bench/hello.ts",
    ...FUNCTIONS.map((f) => `supabase/functions/${f}/index.ts`),
  ];
  // One unmeasured start each, so every measured start finds its code already transpiled.
  for (const e of entries) await firstResponse(e);
  const times = new Map<string, number[]>(entries.map((e) => [e, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const e of entries) times.get(e)!.push(await firstResponse(e));
  }
  const hello = median(times.get("bench/hello.ts")!);
  ctx.say(`  hello-world Deno.serve: ${fmt(hello, 0)} ms to first response`);
  const rows: Row[] = [];
  for (const f of FUNCTIONS) {
    const ms = median(times.get(`supabase/functions/${f}/index.ts`)!);
    const g = await graph(f);
    const twilio = g.twilioAtStart ? "at start" : g.twilioOnDemand ? "on demand" : "never";
    const twilioOk = PROVISIONING.has(f) || !g.twilioOnDemand;
    ctx.say(
      `  ${f}: ${
        fmt(ms, 0)
      } ms; ${g.localModules} local modules + ${g.npmPackages} npm packages at start; twilio ${twilio}`,
    );
    rows.push({
      id: "7",
      what: `cold start: ${f} / hello`,
      ratio: ms / hello,
      target: `twilio ${PROVISIONING.has(f) ? "allowed" : "never"}`,
      pass: twilioOk,
      note: `${fmt(ms, 0)} vs ${
        fmt(hello, 0)
      } ms; ${g.localModules} modules + ${g.npmPackages} npm pkgs; twilio ${twilio}`,
    });
  }
  return rows;
}
