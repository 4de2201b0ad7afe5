// deno-lint-ignore-file no-explicit-any
// Shared by the reliability tests: response capture (for the secret scan), summary metrics,
// a seeded PRNG, RLS sessions, row counts, stack controls and small waiting helpers.
import { asUser, call, sql, stack, type TestUser } from "../helpers/stack.ts";

export { asUser, webhookToken } from "../helpers/stack.ts";

export type Json = any;

/** Every response body the reliability suite receives, one JSON line each, for the secret scan. */
export const RESPONSES_FILE = `${stack.stateDir}/reliability-responses.jsonl`;

export function recordResponse(source: string, status: number, body: unknown) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  Deno.writeTextFileSync(
    RESPONSES_FILE,
    JSON.stringify({ source, status, body: text }) + "\n",
    { append: true },
  );
}

/** `call` from the shared helpers, with the answer recorded for the secret scan. */
export async function callRecorded(
  name: string,
  opts: Parameters<typeof call>[1] = {},
): Promise<{ status: number; body: Json }> {
  const res = await call(name, opts);
  recordResponse(name, res.status, res.body);
  return res;
}

/** A raw request to a function; the answer's status, content type and text are recorded. */
export async function rawRequest(
  name: string,
  init: { method: string; headers?: Record<string, string>; body?: BodyInit; query?: string },
): Promise<{ status: number; contentType: string; setCookie: string | null; text: string }> {
  const res = await fetch(`${stack.supabaseUrl}/functions/v1/${name}${init.query ?? ""}`, {
    method: init.method,
    headers: init.headers,
    body: init.body,
  });
  const text = await res.text();
  recordResponse(name, res.status, text);
  return {
    status: res.status,
    contentType: res.headers.get("content-type") ?? "",
    setCookie: res.headers.get("set-cookie"),
    text,
  };
}

/** Adds measured counts to the run's summary (summed by the test runner). */
export function addSummary(metrics: Record<string, number>) {
  Deno.writeTextFileSync(`${stack.stateDir}/summary.jsonl`, JSON.stringify(metrics) + "\n", {
    append: true,
  });
}

/** mulberry32: a small seeded PRNG, so generated inputs are the same on every run. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)],
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof prng>;

/** Like asUser, but the statement may fail: returns the error instead of throwing. */
export async function tryAsUser(
  user: Pick<TestUser, "id">,
  fn: (tx: Json) => Promise<Json>,
): Promise<{ ok: true; value: Json } | { ok: false; error: string }> {
  try {
    return { ok: true, value: await asUser(user, fn) };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

export const OWNED_TABLES = [
  "public.assistant",
  "public.phone_number",
  "public.campaigns",
  "public.campaign_calls",
  "public.do_not_call",
  "public.outbound_calls",
  "public.call_events",
  "public.webhook_endpoints",
  "public.webhook_deliveries",
  "internal.provisioning_job",
] as const;

/** A user's rows in every table a request could change, with a fingerprint of their content. */
export async function userRows(userId: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of OWNED_TABLES) {
    const [r] = await sql.unsafe(
      `select count(*)::int as n, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as h
       from ${table} t where owner_id = $1`,
      [userId],
    );
    out[table] = `${r.n}:${r.h}`;
  }
  return out;
}

/** The gateway and a function answer: an OPTIONS preflight and the JWKS. */
export async function healthy(): Promise<boolean> {
  const pre = await fetch(`${stack.supabaseUrl}/functions/v1/list-trunks`, { method: "OPTIONS" });
  await pre.body?.cancel();
  const jwks = await fetch(`${stack.supabaseUrl}/auth/v1/.well-known/jwks.json`);
  const keys = await jwks.json();
  return pre.status === 204 && jwks.status === 200 && Array.isArray(keys.keys);
}

/** Runs `fn` over items with at most `limit` in flight; results in input order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POSTs a local-stack control (fault injection). */
export async function stackControl(path: string, body: unknown = {}) {
  const res = await fetch(`${stack.supabaseUrl}/__stack/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`stack control ${path} answered ${res.status}: ${text}`);
}

/** A campaign-tick run by the service, as pg_cron does. */
export function tick(body: Record<string, unknown>) {
  return callRecorded("campaign-tick", { token: stack.serviceKey, body });
}

/** The error shape of api.md: {"error": {"code": snake_case, "message": text, "details"?: object}}. */
export function isErrorBody(body: Json): boolean {
  const e = body?.error;
  return !!e && typeof e === "object" && typeof e.code === "string" &&
    /^[a-z][a-z0-9_]*$/.test(e.code) && typeof e.message === "string" && e.message.length > 0 &&
    (e.details === undefined || (typeof e.details === "object" && e.details !== null));
}

/** POSTs a webhook body with the given Authorization (LiveKit sends no `Bearer`). */
export function postWebhook(body: string, authorization?: string) {
  return callRecorded("livekit-webhook", {
    body,
    headers: {
      "Content-Type": "application/webhook+json",
      ...(authorization ? { Authorization: authorization } : {}),
    },
  });
}
