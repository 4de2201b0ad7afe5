// The console (console/): built with its own npm tooling when its build is missing or older than
// its sources, and served as static files with a config.json that points it at a stack. `deno task
// dev` and the console's browser tests use it; a deployment hosts console/dist anywhere instead.
import { ROOT } from "./stack.ts";

export const CONSOLE_DIR = `${ROOT}/console`;
const DIST = `${CONSOLE_DIR}/dist`;
const SOURCES = [
  "src",
  "index.html",
  "package.json",
  "package-lock.json",
  "vite.config.ts",
  "tsconfig.json",
];

function newest(path: string): number {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory) return info.mtime?.getTime() ?? 0;
  let max = 0;
  for (const e of Deno.readDirSync(path)) max = Math.max(max, newest(`${path}/${e.name}`));
  return max;
}

async function npm(args: string[], log: (line: string) => void) {
  log(`console: npm ${args.join(" ")}`);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("npm", {
      args,
      cwd: CONSOLE_DIR,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    throw new Error(
      `console: npm could not run (${
        e instanceof Error ? e.message : e
      }); install Node.js 20+ and npm`,
    );
  }
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(`console: npm ${args.join(" ")} failed:\n${text.slice(-4000)}`);
  }
}

/** Installs the console's packages when missing and builds it when its build is stale. */
export async function buildConsole(log: (line: string) => void = console.log) {
  try {
    Deno.statSync(`${CONSOLE_DIR}/node_modules/.package-lock.json`);
  } catch {
    await npm(["ci", "--no-audit", "--no-fund"], log);
  }
  const built = newest(`${DIST}/index.html`);
  const sources = Math.max(...SOURCES.map((s) => newest(`${CONSOLE_DIR}/${s}`)));
  if (built > sources) return;
  await npm(["run", "build"], log);
}

export interface ConsoleConfig {
  supabaseUrl: string;
  anonKey: string;
  /** false where the project has no Realtime (the local stack): the console polls. */
  realtime: boolean;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
};

/** Serves console/dist on 127.0.0.1 (port 0: any free one) with `config` as its config.json. */
export function serveConsole(config: ConsoleConfig, port = 0) {
  const configJson = JSON.stringify(config);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path === "/config.json") {
        return new Response(configJson, {
          headers: { "content-type": TYPES.json, "cache-control": "no-store" },
        });
      }
      const rel = path === "/" ? "index.html" : path.slice(1);
      if (rel.split("/").some((p) => p === ".." || p === "")) {
        return new Response("not found", { status: 404 });
      }
      try {
        const body = await Deno.readFile(`${DIST}/${rel}`);
        const ext = rel.slice(rel.lastIndexOf(".") + 1);
        return new Response(body, {
          headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return { url: `http://127.0.0.1:${server.addr.port}/`, stop: () => server.shutdown() };
}
