// Environment parsed once with zod. One error names every missing or malformed variable.
import { z } from "zod";
import { NotConfiguredError } from "./errors.ts";
import { CALL_DURATION_SEC, DEFAULT_ALLOWED_COUNTRIES, RINGING_TIMEOUT_SEC } from "./schemas.ts";

const optional = z.string().trim().min(1).optional().catch(undefined);
const countryList = z.string().trim().regex(
  /^[A-Za-z]{2}(\s*,\s*[A-Za-z]{2})*$/,
  "comma-separated ISO country codes",
);
/** Supabase's Edge Functions stop a request after 2 s of CPU time: a tick keeps well within. */
export const DEFAULT_TICK_CPU_BUDGET_MS = 1_200;

const intFrom = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  SUPABASE_URL: z.url({ message: "the project URL, e.g. https://<ref>.supabase.co" }),
  // The service's keys: the legacy service_role JWT and/or the new `sb_secret_` keys (a JSON
  // object of name -> key, as the platform sets it). pg_cron, triggers and webhook delivery call
  // the functions with one of them; at least one is required (checked below).
  SUPABASE_SERVICE_ROLE_KEY: optional,
  SUPABASE_SECRET_KEYS: optional,
  SUPABASE_DB_URL: z.string().min(1, "the Postgres connection string"),
  SUPABASE_JWKS: z.string().optional(),
  JWT_SECRET: optional,
  LIVEKIT_HOST: optional,
  LIVEKIT_URL: optional,
  LIVEKIT_API_KEY: optional,
  LIVEKIT_API_SECRET: optional,
  LIVEKIT_SIP_HOST: optional,
  TWILIO_ACCOUNT_SID: z.string().regex(/^AC[0-9a-fA-F]{32}$/, "an account SID (AC + 32 hex)")
    .optional(),
  TWILIO_AUTH_TOKEN: optional,
  TWILIO_BASE_URL: optional,
  TWILIO_TRUNK_NAME: z.string().regex(/^[a-z0-9-]{1,40}$/, "lowercase letters, digits and dashes")
    .default("voice-ai"),
  SIP_PROVIDER_ADDRESS: optional,
  SIP_USERNAME: optional,
  SIP_PASSWORD: optional,
  SIP_PROVIDER_NUMBERS: optional,
  SIP_TRANSPORT: z.enum(["auto", "udp", "tcp", "tls"]).default("tcp"),
  SIP_DESTINATION_COUNTRY: z.string().regex(/^[A-Za-z]{2}$/, "a 2-letter country code").optional(),
  ALLOWED_DESTINATION_COUNTRIES: countryList.default(DEFAULT_ALLOWED_COUNTRIES.join(",")),
  TRANSFER_SIP_HOSTS: z.string().trim().regex(
    /^([A-Za-z0-9.-]+(\s*,\s*[A-Za-z0-9.-]+)*)?$/,
    "comma-separated host names, e.g. pbx.example.com",
  ).default(""),
  CALL_RINGING_TIMEOUT_SEC: intFrom(
    RINGING_TIMEOUT_SEC.min,
    RINGING_TIMEOUT_SEC.max,
    RINGING_TIMEOUT_SEC.fallback,
  ),
  CALL_MAX_DURATION_SEC: intFrom(
    CALL_DURATION_SEC.min,
    CALL_DURATION_SEC.max,
    CALL_DURATION_SEC.fallback,
  ),
  CALLS_PER_MINUTE_PER_USER: intFrom(1, 10_000, 30),
  PROVISIONING_PER_MINUTE_PER_USER: intFrom(1, 10_000, 20),
  LIVEKIT_REQUESTS_PER_MINUTE_PER_USER: intFrom(1, 10_000, 60),
  CARRIER_CPS: z.coerce.number().min(0.1).max(1_000).default(1),
  CALL_RECONCILE_SEC: intFrom(1, 3_600, 30),
  TICK_CPU_BUDGET_MS: intFrom(50, 600_000, DEFAULT_TICK_CPU_BUDGET_MS),
  AGENT_JOIN_TIMEOUT_SEC: z.coerce.number().min(0.1).max(60).default(5),
  WEBHOOKS_ALLOW_LOCALHOST: z.enum(["true", "false"], { message: "true or false" }).optional(),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  supabaseUrl: string;
  /** Every key that makes its bearer the service (legacy service_role JWT, `sb_secret_` keys). */
  serviceKeys: string[];
  dbUrl: string;
  jwks: { keys: unknown[] } | null;
  jwtSecret: string | null;
  livekit: {
    host: string;
    apiKey: string;
    apiSecret: string;
    /** LIVEKIT_SIP_HOST as host[:port] (a pasted `sip:` URI is reduced to it); null if unset or refused. */
    sipHost: string | null;
    /** Why LIVEKIT_SIP_HOST was refused; only functions that provision Twilio fail on it. */
    sipHostProblem: string | null;
  } | null;
  twilio: {
    accountSid: string;
    authToken: string;
    baseUrl: string | null;
    trunkName: string;
  } | null;
  /** Static SIP mode: the operator's own provider, no Twilio trunk provisioning. */
  staticSip: { address: string; username: string | null; password: string | null } | null;
  /** The provider's numbers the operator declared: the only caller IDs in static SIP mode. */
  staticSipNumbers: string[];
  sipTransport: "auto" | "udp" | "tcp" | "tls";
  destinationCountry: string | null;
  allowedCountries: string[];
  /** Hosts a call may be transferred to at a SIP address that is not a phone number (a PBX). */
  transferSipHosts: string[];
  ringingTimeoutSec: number;
  maxCallDurationSec: number;
  callsPerMinutePerUser: number;
  /** map-number and a user's create-trunks: each reaches Twilio and LiveKit several times. */
  provisioningPerMinutePerUser: number;
  /** list-trunks and transfer-call: LiveKit requests on a user's behalf. */
  liveKitRequestsPerMinutePerUser: number;
  /** Calls per second of each carrier trunk unless its pacing row says otherwise. */
  carrierCps: number;
  /** How often a live call is checked against LiveKit's rooms and participants. */
  reconcileEverySec: number;
  /** CPU time (ms) a campaign tick may use; it stops taking calls so that it ends within it. */
  tickCpuBudgetMs: number;
  /** How long a dial waits for the assistant's agent to join its room before giving up. */
  agentJoinTimeoutSec: number;
  /** Webhook endpoints may be http(s)://localhost or 127.0.0.1 (the local stack only). */
  webhooksAllowLocalhost: boolean;
  /** Variables a feature needs but did not get, by feature. */
  missing: { livekit: string[]; twilio: string[] };
}

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; problem: string }[]) {
    super(
      "Invalid configuration: " + issues.map((i) => `${i.variable} (${i.problem})`).join("; "),
    );
  }
}

const HOST_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST_PORT = new RegExp(
  `^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9a-f:.]+\\])(?::(\\d{1,5}))?$`,
);

/**
 * LiveKit's SIP host as Twilio's origination needs it: host[:port]. A SIP URI pasted from a
 * console (`sip:<id>.sip.livekit.cloud;transport=tcp`) is reduced to its host; anything else
 * that is not a host[:port] is refused with the reason.
 */
export function parseSipHost(raw: string): { host: string } | { problem: string } {
  const value = raw.trim();
  const host = value.replace(/^sips?:/i, "").replace(/;.*$/, "").toLowerCase();
  const expected =
    "expected LiveKit's SIP host as host[:port], e.g. <project id>.sip.livekit.cloud";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return { problem: `${JSON.stringify(value)} is a URL; ${expected}` };
  }
  if (host.includes("@")) {
    return { problem: `${JSON.stringify(value)} has a user part; ${expected}` };
  }
  const m = HOST_PORT.exec(host);
  const port = m?.[1] === undefined ? null : Number(m[1]);
  if (!m || (port !== null && (port < 1 || port > 65_535))) {
    return { problem: `${JSON.stringify(value)} is not a host[:port]; ${expected}` };
  }
  return { host };
}

function sipHostSetting(raw: string | undefined) {
  if (raw === undefined) return { sipHost: null, sipHostProblem: null };
  const parsed = parseSipHost(raw);
  return "host" in parsed
    ? { sipHost: parsed.host, sipHostProblem: null }
    : { sipHost: null, sipHostProblem: parsed.problem };
}

/** Twilio's origination URL (inbound calls to LiveKit) for a host from parseSipHost. */
export function originationUrl(sipHost: string): string {
  return `sip:${sipHost};transport=tcp`;
}

/** SIP_PROVIDER_NUMBERS: E.164 numbers, comma-separated (spaces, dashes, dots, parentheses ignored). */
function declaredNumbers(raw: string | undefined): string[] {
  if (!raw) return [];
  const out: string[] = [];
  for (const part of raw.split(",").map((p) => p.trim()).filter(Boolean)) {
    const n = part.replace(/[\s().-]/g, "");
    if (!/^\+[1-9][0-9]{6,14}$/.test(n)) {
      throw new ConfigError([{
        variable: "SIP_PROVIDER_NUMBERS",
        problem: `${part} is not an E.164 number (comma-separated, e.g. +14155550100,+14155550101)`,
      }]);
    }
    out.push(n);
  }
  return out;
}

/** The `sb_secret_` keys of SUPABASE_SECRET_KEYS (a JSON object of name -> key, or one key). */
function secretKeys(raw: string | undefined): string[] {
  if (!raw) return [];
  if (raw.startsWith("sb_secret_")) return [raw];
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError([{ variable: "SUPABASE_SECRET_KEYS", problem: "not valid JSON" }]);
  }
  const keys = value && typeof value === "object" && !Array.isArray(value)
    ? Object.values(value)
    : [];
  if (
    keys.length === 0 || !keys.every((k) => typeof k === "string" && k.startsWith("sb_secret_"))
  ) {
    throw new ConfigError([{
      variable: "SUPABASE_SECRET_KEYS",
      problem: 'not a JSON object of sb_secret_ keys, e.g. {"default": "sb_secret_..."}',
    }]);
  }
  return keys as string[];
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const parsed = schema.safeParse(env);
  const noServiceKey = !env.SUPABASE_SERVICE_ROLE_KEY?.trim() && !env.SUPABASE_SECRET_KEYS?.trim();
  const keyIssue = {
    variable: "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
    problem: "missing: the service's key (pg_cron, triggers and webhook delivery call with it)",
  };
  if (!parsed.success) {
    throw new ConfigError([
      ...parsed.error.issues.map((i) => ({
        variable: String(i.path[0]),
        problem: env[String(i.path[0])] === undefined ? `missing: ${i.message}` : i.message,
      })),
      ...(noServiceKey ? [keyIssue] : []),
    ]);
  }
  const e = parsed.data;
  const host = e.LIVEKIT_HOST ?? e.LIVEKIT_URL;
  const missingLiveKit = [
    ...(host ? [] : ["LIVEKIT_HOST (or LIVEKIT_URL)"]),
    ...(e.LIVEKIT_API_KEY ? [] : ["LIVEKIT_API_KEY"]),
    ...(e.LIVEKIT_API_SECRET ? [] : ["LIVEKIT_API_SECRET"]),
  ];
  const missingTwilio = [
    ...(e.TWILIO_ACCOUNT_SID ? [] : ["TWILIO_ACCOUNT_SID"]),
    ...(e.TWILIO_AUTH_TOKEN ? [] : ["TWILIO_AUTH_TOKEN"]),
  ];
  const serviceKeys = [
    ...(e.SUPABASE_SERVICE_ROLE_KEY ? [e.SUPABASE_SERVICE_ROLE_KEY] : []),
    ...secretKeys(e.SUPABASE_SECRET_KEYS),
  ];
  if (serviceKeys.length === 0) throw new ConfigError([keyIssue]);
  let jwks: Config["jwks"] = null;
  if (e.SUPABASE_JWKS) {
    try {
      const value = JSON.parse(e.SUPABASE_JWKS);
      jwks = Array.isArray(value) ? { keys: value } : value;
    } catch {
      throw new ConfigError([{ variable: "SUPABASE_JWKS", problem: "not valid JSON" }]);
    }
  }
  return {
    supabaseUrl: e.SUPABASE_URL.replace(/\/+$/, ""),
    serviceKeys,
    dbUrl: e.SUPABASE_DB_URL,
    jwks,
    jwtSecret: e.JWT_SECRET ?? null,
    livekit: missingLiveKit.length === 0
      ? {
        host: host!,
        apiKey: e.LIVEKIT_API_KEY!,
        apiSecret: e.LIVEKIT_API_SECRET!,
        ...sipHostSetting(e.LIVEKIT_SIP_HOST),
      }
      : null,
    twilio: missingTwilio.length === 0
      ? {
        accountSid: e.TWILIO_ACCOUNT_SID!,
        authToken: e.TWILIO_AUTH_TOKEN!,
        baseUrl: e.TWILIO_BASE_URL ?? null,
        trunkName: e.TWILIO_TRUNK_NAME,
      }
      : null,
    staticSip: e.SIP_PROVIDER_ADDRESS
      ? {
        address: e.SIP_PROVIDER_ADDRESS,
        username: e.SIP_USERNAME ?? null,
        password: e.SIP_PASSWORD ?? null,
      }
      : null,
    staticSipNumbers: declaredNumbers(e.SIP_PROVIDER_NUMBERS),
    sipTransport: e.SIP_TRANSPORT,
    destinationCountry: e.SIP_DESTINATION_COUNTRY?.toUpperCase() ?? null,
    allowedCountries: e.ALLOWED_DESTINATION_COUNTRIES.split(",").map((c) => c.trim().toUpperCase()),
    transferSipHosts: e.TRANSFER_SIP_HOSTS.split(",").map((h) => h.trim().toLowerCase()).filter(
      Boolean,
    ),
    ringingTimeoutSec: e.CALL_RINGING_TIMEOUT_SEC,
    maxCallDurationSec: e.CALL_MAX_DURATION_SEC,
    callsPerMinutePerUser: e.CALLS_PER_MINUTE_PER_USER,
    provisioningPerMinutePerUser: e.PROVISIONING_PER_MINUTE_PER_USER,
    liveKitRequestsPerMinutePerUser: e.LIVEKIT_REQUESTS_PER_MINUTE_PER_USER,
    carrierCps: e.CARRIER_CPS,
    reconcileEverySec: e.CALL_RECONCILE_SEC,
    tickCpuBudgetMs: e.TICK_CPU_BUDGET_MS,
    webhooksAllowLocalhost: e.WEBHOOKS_ALLOW_LOCALHOST === "true",
    agentJoinTimeoutSec: e.AGENT_JOIN_TIMEOUT_SEC,
    missing: { livekit: missingLiveKit, twilio: missingTwilio },
  };
}

export function requireLiveKit(config: Config): NonNullable<Config["livekit"]> {
  if (!config.livekit) throw new NotConfiguredError(config.missing.livekit, "LiveKit");
  return config.livekit;
}
