// STAND-IN for Supabase's edge gateway: routes /functions/v1/<name> to each function's
// exported handler, applies config.toml's verify_jwt, answers CORS preflights, and serves
// the JWKS at /auth/v1/.well-known/jwks.json.
import * as jose from "jose";
import type { Keys } from "./keys.ts";

export type Handler = (req: Request) => Promise<Response>;

export interface FunctionSpec {
  name: string;
  verifyJwt: boolean;
  load: () => Promise<Handler>;
}

/** Reads `[functions.NAME] verify_jwt = ...` from supabase/config.toml (default true). */
export function readVerifyJwt(toml: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  let current: string | null = null;
  for (const raw of toml.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const section = /^\[functions\.([A-Za-z0-9_-]+)\]$/.exec(line);
    if (section) {
      current = section[1];
      out.set(current, true);
      continue;
    }
    if (line.startsWith("[")) current = null;
    const setting = /^verify_jwt\s*=\s*(true|false)$/.exec(line);
    if (current && setting) out.set(current, setting[1] === "true");
  }
  return out;
}

/** Every folder under supabase/functions except `_shared`, with its handler module. */
export async function discoverFunctions(root: string): Promise<FunctionSpec[]> {
  const verify = readVerifyJwt(await Deno.readTextFile(`${root}/config.toml`));
  const specs: FunctionSpec[] = [];
  for await (const entry of Deno.readDir(`${root}/functions`)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const path = `${root}/functions/${entry.name}/handler.ts`;
    if (!(await Deno.stat(path).catch(() => null))?.isFile) continue;
    specs.push({
      name: entry.name,
      verifyJwt: verify.get(entry.name) ?? true,
      load: async () => (await import(new URL(`file://${Deno.realPathSync(path)}`).href)).handler,
    });
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
};

function error(status: number, code: string, message: string) {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { ...CORS, "Content-Type": "application/json" },
  });
}

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

/** Local-stack controls for fault tests, under /__stack/ (never on the platform). */
export interface StackControls {
  dropNetRequests(count: number): void;
  restartPostgres(): Promise<void>;
}

export function startGateway(opts: {
  port: number;
  keys: Keys;
  functions: FunctionSpec[];
  controls?: StackControls;
}): Gateway {
  const { keys } = opts;
  const jwks = jose.createLocalJWKSet(keys.jwks as jose.JSONWebKeySet);
  const secret = new TextEncoder().encode(keys.jwtSecret);
  const byName = new Map(opts.functions.map((f) => [f.name, f]));
  const loaded = new Map<string, Promise<Handler>>();

  // Like the platform: a legacy HS256 key/token or an asymmetric session token passes.
  async function jwtOk(req: Request): Promise<boolean> {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    if (!m) return false;
    try {
      const { alg } = jose.decodeProtectedHeader(m[1]);
      if (alg === "HS256") await jose.jwtVerify(m[1], secret, { algorithms: ["HS256"] });
      else await jose.jwtVerify(m[1], jwks, { algorithms: ["ES256"] });
      return true;
    } catch {
      return false;
    }
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: opts.port, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/auth/v1/.well-known/jwks.json") {
        return new Response(JSON.stringify(keys.jwks), {
          headers: { ...CORS, "Content-Type": "application/json" },
        });
      }
      if (url.pathname.startsWith("/__stack/") && opts.controls) {
        if (req.method === "POST" && url.pathname === "/__stack/net/drop") {
          const { count } = await req.json().catch(() => ({ count: 0 }));
          opts.controls.dropNetRequests(Number(count) || 0);
          return new Response(JSON.stringify({ ok: true }), {
            headers: { "Content-Type": "application/json" },
          });
        }
        if (req.method === "POST" && url.pathname === "/__stack/postgres/restart") {
          await opts.controls.restartPostgres();
          return new Response(JSON.stringify({ ok: true }), {
            headers: { "Content-Type": "application/json" },
          });
        }
        return error(404, "not_found", `No stack control ${url.pathname}.`);
      }
      const m = /^\/functions\/v1\/([^/?]+)/.exec(url.pathname);
      if (!m) return error(404, "not_found", `No route for ${url.pathname}.`);
      const fn = byName.get(m[1]);
      if (!fn) return error(404, "not_found", `Function ${m[1]} does not exist.`);
      if (req.method !== "OPTIONS" && fn.verifyJwt && !await jwtOk(req)) {
        return error(401, "unauthenticated", "Invalid or missing JWT.");
      }
      let handler = loaded.get(fn.name);
      if (!handler) {
        handler = fn.load();
        loaded.set(fn.name, handler);
      }
      try {
        return await (await handler)(req);
      } catch {
        return error(500, "internal_error", "The function crashed.");
      }
    },
  );
  return {
    url: `http://127.0.0.1:${opts.port}`,
    close: () => server.shutdown(),
  };
}
