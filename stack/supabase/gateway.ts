// STAND-IN for Supabase's API gateway and edge runtime: routes /functions/v1/<name> to each
// function's exported handler (config.toml's verify_jwt applied, `EdgeRuntime.waitUntil`
// provided), /auth/v1/* and /rest/v1/* to the Auth and REST stand-ins (stack/supabase/), which
// need the project's apikey as on Supabase, answers CORS preflights, and serves the JWKS at
// /auth/v1/.well-known/jwks.json.
import * as jose from "jose";
import { type Keys, NEW_API_KEY } from "./keys.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { logger } from "../../supabase/functions/_shared/log.ts";

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

/**
 * Every folder under supabase/functions except `_shared`, its handler built from `deps` as the
 * folder's index.ts builds it from the platform's.
 */
export async function discoverFunctions(root: string, deps: () => Deps): Promise<FunctionSpec[]> {
  const verify = readVerifyJwt(await Deno.readTextFile(`${root}/config.toml`));
  const specs: FunctionSpec[] = [];
  for await (const entry of Deno.readDir(`${root}/functions`)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const path = `${root}/functions/${entry.name}/handler.ts`;
    if (!(await Deno.stat(path).catch(() => null))?.isFile) continue;
    specs.push({
      name: entry.name,
      verifyJwt: verify.get(entry.name) ?? true,
      load: async () =>
        (await import(new URL(`file://${Deno.realPathSync(path)}`).href)).handler(deps),
    });
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
};

/** What supabase-js sends to Auth and REST, and the response headers it reads. */
const API_CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, accept, accept-profile, content-profile, prefer, range, x-supabase-api-version, x-retry-count, x-request-id",
  "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
  "Access-Control-Expose-Headers":
    "content-range, x-supabase-api-version, x-sb-error-code, retry-after, x-request-id",
  "Access-Control-Max-Age": "86400",
};

/** A stand-in service mounted under a prefix; `path` is what follows the prefix. */
export type ApiHandler = (req: Request, path: string) => Promise<Response>;

// Supabase's edge runtime lets a function keep work going after its response with
// `EdgeRuntime.waitUntil(promise)`; here the promises are kept (their failures logged, never
// thrown) and the gateway's close() waits for them, bounded.
const background = new Set<Promise<unknown>>();
let edgeRuntimeInstalled = false;

export function installEdgeRuntime(): void {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.EdgeRuntime || edgeRuntimeInstalled) return;
  edgeRuntimeInstalled = true;
  const log = logger({ component: "edge-runtime" });
  g.EdgeRuntime = {
    waitUntil<T>(promise: Promise<T>): Promise<T> {
      const tracked: Promise<unknown> = Promise.resolve(promise).catch((e) =>
        log.error("background task failed", {
          error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
        })
      ).finally(() => background.delete(tracked));
      background.add(tracked);
      return promise;
    },
  };
}

/** Waits (at most `ms`) for the background tasks handed to EdgeRuntime.waitUntil. */
export async function settleBackgroundTasks(ms = 10_000): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = background.size;
  await Promise.race([
    Promise.allSettled([...background]),
    new Promise((r) => (timer = setTimeout(r, ms))),
  ]);
  clearTimeout(timer);
  return pending;
}

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
  /** The Auth stand-in, mounted at /auth/v1. */
  auth?: ApiHandler;
  /** The REST stand-in, mounted at /rest/v1. */
  rest?: ApiHandler;
}): Gateway {
  const { keys } = opts;
  installEdgeRuntime();
  const jwks = jose.createLocalJWKSet(keys.jwks as jose.JSONWebKeySet);
  // "new" mode has no HS256 secret: an HS256 token never passes.
  const secret = keys.mode === "new" ? null : new TextEncoder().encode(keys.jwtSecret);
  const byName = new Map(opts.functions.map((f) => [f.name, f]));
  const loaded = new Map<string, Promise<Handler>>();

  // Like the platform: a legacy HS256 key/token or an asymmetric session token passes.
  async function jwtOk(req: Request): Promise<boolean> {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    if (!m) return false;
    try {
      const { alg } = jose.decodeProtectedHeader(m[1]);
      if (alg === "HS256") {
        if (!secret) return false;
        await jose.jwtVerify(m[1], secret, { algorithms: ["HS256"] });
      } else await jose.jwtVerify(m[1], jwks, { algorithms: ["ES256"] });
      return true;
    } catch {
      return false;
    }
  }

  const known = (key: string | null) => key === keys.anonKey || key === keys.serviceKey;

  /**
   * Auth and REST answer only with the project's anon or service key, as on Supabase: the legacy
   * JWTs, or in "new" mode the `sb_publishable_` and `sb_secret_` keys, in `apikey` (an `sb_` key
   * may also come as `Authorization: Bearer`, as supabase-js sends it without a session). An
   * `sb_` key the project does not have (unknown, revoked) is a 401 wherever it comes.
   */
  function apiKeyProblem(req: Request, url: URL): Response | null {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "")?.[1] ??
      null;
    const key = req.headers.get("apikey") ?? url.searchParams.get("apikey") ??
      (bearer !== null && NEW_API_KEY.test(bearer) ? bearer : null);
    const badBearer = bearer !== null && NEW_API_KEY.test(bearer) && !known(bearer);
    if (known(key) && !badBearer) return null;
    const body = key || badBearer
      ? {
        message: "Invalid API key",
        hint: keys.mode === "new"
          ? "Double check your Supabase publishable or secret API key."
          : "Double check your Supabase `anon` or `service_role` API key.",
      }
      : {
        message: "No API key found in request",
        hint: "No `apikey` request header or url param was found.",
      };
    return new Response(JSON.stringify(body), {
      status: 401,
      headers: { ...API_CORS, "Content-Type": "application/json" },
    });
  }

  async function api(req: Request, url: URL, prefix: string, handler: ApiHandler) {
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: API_CORS });
    const problem = apiKeyProblem(req, url);
    if (problem) return problem;
    let res: Response;
    try {
      res = await handler(req, url.pathname.slice(prefix.length));
    } catch (e) {
      console.error(`${prefix}: ${e instanceof Error ? e.stack : e}`);
      return new Response(JSON.stringify({ message: "The local stand-in crashed." }), {
        status: 500,
        headers: { ...API_CORS, "Content-Type": "application/json" },
      });
    }
    const headers = new Headers(res.headers);
    for (const [k, v] of Object.entries(API_CORS)) headers.set(k, v);
    return new Response(res.body, { status: res.status, headers });
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: opts.port, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/auth/v1/.well-known/jwks.json") {
        return new Response(JSON.stringify(keys.jwks), {
          headers: { ...API_CORS, "Content-Type": "application/json" },
        });
      }
      if (opts.auth && (url.pathname === "/auth/v1" || url.pathname.startsWith("/auth/v1/"))) {
        return await api(req, url, "/auth/v1", opts.auth);
      }
      if (opts.rest && (url.pathname === "/rest/v1" || url.pathname.startsWith("/rest/v1/"))) {
        return await api(req, url, "/rest/v1", opts.rest);
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
    async close() {
      await server.shutdown();
      await settleBackgroundTasks();
    },
  };
}
