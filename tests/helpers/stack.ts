// deno-lint-ignore-file no-explicit-any
// What tests need from the running local stack (started by `deno task test`).
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import * as jose from "jose";
import postgres from "postgres";
import * as fixtures from "../../stack/fixtures.ts";
import { eventually as poll } from "../../stack/poll.ts";
import type { StackInfo } from "../../stack/stack.ts";
import { type Deps, depsFromEnv } from "../../supabase/functions/_shared/deps.ts";

const file = Deno.env.get("STACK_FILE");
if (!file) throw new Error("STACK_FILE is not set: run the tests with `deno task test`.");
export const stack: StackInfo = JSON.parse(Deno.readTextFileSync(file));

/**
 * The project's connection (the `postgres` role, not a superuser, as on Supabase) for arranging
 * and inspecting state: a test that needs more than a hosted project allows is testing the wrong
 * thing.
 */
export const sql = postgres(stack.dbUrl, { max: 4, onnotice: () => {}, prepare: false });

export interface TestUser {
  id: string;
  email: string;
  token: string;
  client: SupabaseClient;
}

/** The stack as the shared fixtures (stack/fixtures.ts) see it. */
export const fixture: fixtures.Fixture = { info: stack, sql };

export async function createUser(label = "user"): Promise<TestUser> {
  const user = await fixtures.createUser(fixture, label);
  return { ...user, client: userClient(user.token) };
}

export function userClient(token: string): SupabaseClient {
  return createClient(stack.supabaseUrl, stack.anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

export const serviceClient = () =>
  createClient(stack.supabaseUrl, stack.serviceKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });

/** Calls a function over HTTP and returns status and parsed JSON. */
export async function call(
  name: string,
  opts: {
    token?: string | null;
    body?: unknown;
    method?: string;
    query?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined && !headers["Content-Type"]) {
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(`${stack.supabaseUrl}/functions/v1/${name}${opts.query ?? ""}`, {
    method: opts.method ?? "POST",
    headers,
    body: opts.body === undefined
      ? undefined
      : typeof opts.body === "string"
      ? opts.body
      : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: the assertion will say so */ }
  return { status: res.status, body };
}

export async function createAssistant(
  user: TestUser,
  name = "Receptionist",
  agentName = "receptionist",
) {
  return await fixtures.createAssistant(fixture, user, agentName, name);
}

/** A seeded number of the Twilio emulator that no other test has taken. */
export async function freeNumber(): Promise<string> {
  return (await fixtures.freeNumbers(fixture, 1))[0];
}

/** Free numbers that differ from each other (drawn one by one, two could be the same). */
export function freeNumbers(count: number): Promise<string[]> {
  return fixtures.freeNumbers(fixture, count);
}

/** The LiveKit emulator's state and request log. */
export async function livekitState(): Promise<any> {
  return await (await fetch(`${stack.livekit.url}/emulator/state`)).json();
}
export async function livekitRequests(): Promise<any[]> {
  return (await (await fetch(`${stack.livekit.url}/emulator/requests`)).json()).requests;
}
export async function configureLiveKit(knobs: Record<string, unknown>) {
  const res = await fetch(`${stack.livekit.url}/emulator/config`, {
    method: "POST",
    body: JSON.stringify(knobs),
  });
  await res.body?.cancel();
}
export async function twilioState(): Promise<any> {
  return await (await fetch(`${stack.twilio!.url}/emulator/state`)).json();
}
export async function configureTwilio(knobs: Record<string, unknown>) {
  const res = await fetch(`${stack.twilio!.url}/emulator/config`, {
    method: "POST",
    body: JSON.stringify(knobs),
  });
  await res.body?.cancel();
}

/** Polls until `check` returns a truthy value (20 s at most, unless told); returns it. */
export function eventually<T>(
  check: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  return poll(check, what, timeoutMs);
}

/** Waits until no provisioning job is open for the number (the trigger's own run is done). */
export async function outboxDrained(e164: string) {
  await fixtures.outboxDrained(fixture, [e164]);
}

/** Runs `fn` in a transaction as the user under RLS, as PostgREST does. */
export async function asUser(
  user: Pick<TestUser, "id">,
  fn: (tx: any) => Promise<any>,
): Promise<any> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${
      JSON.stringify({ sub: user.id, role: "authenticated" })
    }, true)`;
    return await fn(tx);
  });
}

/** A LiveKit webhook token for `body`, as LiveKit signs it (or tampered, by the options). */
export async function webhookToken(
  body: string,
  opts: { secret?: string; apiKey?: string; exp?: number; sha?: string } = {},
): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
  const sha = opts.sha ?? btoa(String.fromCharCode(...new Uint8Array(digest)));
  return await new jose.SignJWT({ sha256: sha, video: {} })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(opts.apiKey ?? stack.livekit.apiKey)
    .setNotBefore(Math.floor(Date.now() / 1000) - 60)
    .setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 300)
    .sign(new TextEncoder().encode(opts.secret ?? stack.livekit.apiSecret));
}

/** A user whose assistant has a number assigned through map-number, provisioned and settled. */
export async function readyAssistant(label: string) {
  const user = await createUser(label);
  const assistantId = await createAssistant(user, `${label} assistant`, `${label}-agent`);
  const n = await fixtures.assignNumber(fixture, user.token, assistantId, await freeNumber());
  return { user, assistantId, e164: n.e164, numberId: n.id, outboundTrunkId: n.outboundTrunkId };
}

/** The calls-per-second budget the stack starts with (stack/commands/test.ts). */
export const DEFAULT_CARRIER_CPS = 50;

/**
 * Sets every carrier trunk's calls-per-second budget, in the product's pacing and in the
 * Twilio emulator's trunk check alike (the carrier rejects what the product lets through).
 */
let carrierCps = DEFAULT_CARRIER_CPS;
export async function setCarrierCps(cps: number) {
  // The carrier counts the last second's INVITEs against a lowered budget too: let them age out.
  if (cps < carrierCps) await new Promise((r) => setTimeout(r, 1100));
  carrierCps = cps;
  await sql`insert into internal.carrier_pacing (carrier_trunk, cps)
    select k, ${cps} from (select 'default' as k union
      select distinct carrier_trunk from public.phone_number where carrier_trunk is not null) keys
    on conflict (carrier_trunk) do update set cps = excluded.cps, backoff_level = 0, backoff_until = null,
      next_slot = least(internal.carrier_pacing.next_slot, now())`;
  await sql`update internal.carrier_plan set planned_slot = least(planned_slot, now())`;
  if (stack.twilio?.url) await configureTwilio({ cps: Math.ceil(cps) });
}

/** A supabase-js client as a frontend makes one: the anon key, the session kept in memory. */
export function frontendClient(): SupabaseClient {
  return createClient(stack.supabaseUrl, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
}

export interface SignedUpUser {
  id: string;
  email: string;
  password: string;
  client: SupabaseClient;
  accessToken: string;
  refreshToken: string;
}

/** A user who signed up through the stack's Auth (supabase-js signUp); `client` holds the session. */
export async function signUp(label = "user"): Promise<SignedUpUser> {
  const client = frontendClient();
  const email = `${label}-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const password = `pw-${crypto.randomUUID()}`;
  const { data, error } = await client.auth.signUp({ email, password });
  if (error || !data.session || !data.user) {
    throw new Error(`signUp failed: ${error?.message ?? "no session"}`);
  }
  return {
    id: data.user.id,
    email,
    password,
    client,
    accessToken: data.session.access_token,
    refreshToken: data.session.refresh_token,
  };
}

/** The functions' environment as the stack sets it; an undefined override removes a variable. */
export function functionEnv(
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    SUPABASE_URL: stack.supabaseUrl,
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceKey,
    SUPABASE_DB_URL: stack.dbUrl,
    JWT_SECRET: stack.jwtSecret,
    LIVEKIT_URL: stack.livekit.url,
    LIVEKIT_API_KEY: stack.livekit.apiKey,
    LIVEKIT_API_SECRET: stack.livekit.apiSecret,
    LIVEKIT_SIP_HOST: "sip.livekit.local",
    TWILIO_ACCOUNT_SID: stack.twilio?.accountSid,
    TWILIO_AUTH_TOKEN: stack.twilio?.authToken,
    TWILIO_BASE_URL: stack.twilio?.url ?? undefined,
    ...stack.functionSettings,
    ...overrides,
  };
}

/**
 * Deps for handlers run in this process, built from the stack's environment changed by
 * `overrides`, as a deployment configured that way would build them (read on first request,
 * so a bad variable is the function's 503, as deployed).
 */
export function functionDeps(overrides: Record<string, string | undefined> = {}): () => Deps {
  const env = functionEnv(overrides);
  return () => depsFromEnv(env);
}

/** The stack's function log lines (JSON) carrying this request id. */
export async function logLines(requestId: string): Promise<any[]> {
  const text = await Deno.readTextFile(stack.logFile);
  return text.split("\n").filter((l) => l.includes(requestId)).map((l) => JSON.parse(l))
    .filter((l) => l.requestId === requestId);
}

/** Adds a number to the Twilio emulator's account (the seeded ones are all in area code 415). */
export async function addTwilioNumber(e164: string) {
  const res = await fetch(`${stack.twilio!.url}/emulator/numbers`, {
    method: "POST",
    body: JSON.stringify({ phoneNumber: e164 }),
  });
  const text = await res.text();
  if (res.status !== 201 && res.status !== 409) {
    throw new Error(`adding ${e164} to the Twilio emulator answered ${res.status}: ${text}`);
  }
}

/** Assigns a number (a free seeded one unless given) to the user's assistant, provisioned and settled. */
export async function readyNumber(user: TestUser, assistantId: string, e164?: string) {
  const n = await fixtures.assignNumber(
    fixture,
    user.token,
    assistantId,
    e164 ?? await freeNumber(),
  );
  return { e164: n.e164, numberId: n.id };
}

/** Number health's thresholds (internal.number_health_settings); returns the previous ones. */
export async function setNumberHealth(
  settings: Record<string, number>,
): Promise<Record<string, number>> {
  const [before] = await sql`select * from internal.number_health_settings`;
  delete before.id;
  await sql`update internal.number_health_settings set ${sql(settings)}`;
  return Object.fromEntries(Object.entries(before).map(([k, v]) => [k, Number(v)]));
}
