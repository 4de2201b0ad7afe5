// A Twilio REST emulator for the real `twilio` library: the api.twilio.com paths
// (/2010-04-01/...) and the trunking.twilio.com paths (/v1/...) on one local server, with
// Twilio's authentication, validation rules, error bodies and list page formats.

import * as render from "./render.ts";
import {
  defaultFriendlyName,
  ErrorCode,
  isE164,
  newSid,
  notFound,
  phoneNumberMatches,
  sidPattern,
  TwilioApiError,
} from "./rules.ts";
import {
  type CallerIdPolicy,
  type CredentialListRecord,
  type SeedNumber,
  type TerminationCall,
  type TerminationRecord,
  type TerminationRefusal,
  type TrunkRecord,
  TwilioStore,
} from "./store.ts";

export type { CallerIdPolicy, TerminationCall, TerminationRefusal } from "./store.ts";

export interface TwilioEmulatorOptions {
  accountSid: string;
  authToken: string;
  port?: number;
  hostname?: string;
  numbers?: { phoneNumber: string; friendlyName?: string }[];
  /** Share of authenticated API calls answered with 429 / 20429, from 0 to 1. */
  failureRate?: number;
  /** Delay added before answering each authenticated API call. */
  latencyMs?: number;
  /**
   * Which numbers may be a terminated call's caller id: any number of the account (Twilio's
   * rule, the default) or only numbers attached to the trunk used.
   */
  callerIdPolicy?: CallerIdPolicy;
  /** Calls per second accepted per trunk by `terminate()`; Twilio's default is 1; 0 = no limit. */
  cps?: number;
  /** Keep a deleted trunk's domain reserved, as Twilio does; default true. */
  domainRetention?: boolean;
  /** Clock for dates and the CPS limit (ms since the epoch). */
  now?: () => number;
  /** Random source in [0, 1) for failure injection. */
  random?: () => number;
}

export interface EmulatorConfig {
  failureRate: number;
  latencyMs: number;
  callerIdPolicy: CallerIdPolicy;
  cps: number;
}

export interface RequestRecord {
  time: string;
  method: string;
  path: string;
  query: Record<string, string>;
  params: Record<string, string>;
  status: number;
}

export interface EmulatorState {
  accountSid: string;
  config: EmulatorConfig;
  numbers: {
    sid: string;
    phoneNumber: string;
    friendlyName: string;
    trunkSid: string | null;
    voiceUrl: string;
  }[];
  trunks: {
    sid: string;
    friendlyName: string | null;
    domainName: string | null;
    originationUrls: {
      sid: string;
      sipUrl: string;
      priority: number;
      weight: number;
      enabled: boolean;
      friendlyName: string;
    }[];
    credentialLists: string[];
    phoneNumbers: string[];
  }[];
  credentialLists: {
    sid: string;
    friendlyName: string;
    credentials: { sid: string; username: string }[];
  }[];
  terminations: TerminationRecord[];
}

export interface TwilioEmulator {
  /** http://127.0.0.1:PORT, serving both the api.twilio.com and trunking.twilio.com paths. */
  url: string;
  configure(k: Partial<EmulatorConfig>): void;
  /** Back to the seeded numbers, no trunks or credential lists, empty logs. */
  reset(): void;
  /**
   * The check a termination INVITE to `address` would pass through: trunk domain, credential
   * lists attached to the trunk, caller id, destination and CPS. null = accepted.
   */
  terminate(call: TerminationCall): Promise<TerminationRefusal | null>;
  state(): EmulatorState;
  requests(): RequestRecord[];
  close(): Promise<void>;
}

const MAX_REQUEST_LOG = 1000;
const MAX_LATENCY_MS = 60_000;
const ACCOUNT_SID = sidPattern("AC");

interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  form: URLSearchParams;
  groups: string[];
  ctx: render.RenderContext;
}

interface Reply {
  status: number;
  body: unknown;
}

type Handler = (call: Call) => Reply | Promise<Reply>;

interface Route {
  pattern: RegExp;
  methods: Partial<Record<"GET" | "POST" | "DELETE", Handler>>;
}

const ok = (body: unknown): Reply => ({ status: 200, body });
const created = (body: unknown): Reply => ({ status: 201, body });
const noContent: Reply = { status: 204, body: null };

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  if (status === 204) return new Response(null, { status });
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function firstValues(params: URLSearchParams, mask: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) {
    if (k in out) continue;
    out[k] = mask && k.toLowerCase() === "password" ? "********" : v;
  }
  return out;
}

/** Names every invalid setting in one error. */
function validateConfig(c: EmulatorConfig): void {
  const problems: string[] = [];
  if (typeof c.failureRate !== "number" || !(c.failureRate >= 0 && c.failureRate <= 1)) {
    problems.push(`failureRate must be a number from 0 to 1, got ${JSON.stringify(c.failureRate)}`);
  }
  if (typeof c.latencyMs !== "number" || !(c.latencyMs >= 0 && c.latencyMs <= MAX_LATENCY_MS)) {
    problems.push(
      `latencyMs must be a number from 0 to ${MAX_LATENCY_MS}, got ${JSON.stringify(c.latencyMs)}`,
    );
  }
  if (c.callerIdPolicy !== "account" && c.callerIdPolicy !== "trunk") {
    problems.push(
      `callerIdPolicy must be account or trunk, got ${JSON.stringify(c.callerIdPolicy)}`,
    );
  }
  if (!(Number.isInteger(c.cps) && c.cps >= 0)) {
    problems.push(`cps must be a non-negative integer, got ${JSON.stringify(c.cps)}`);
  }
  if (problems.length > 0) {
    throw new Error(`Invalid Twilio emulator config: ${problems.join("; ")}`);
  }
}

function seedNumbers(numbers: TwilioEmulatorOptions["numbers"]): SeedNumber[] {
  const seen = new Set<string>();
  return (numbers ?? []).map((n) => {
    if (!isE164(n.phoneNumber)) {
      throw new Error(
        `Cannot seed the Twilio emulator with ${
          JSON.stringify(n.phoneNumber)
        }: numbers must be E.164, like +15551234567`,
      );
    }
    if (seen.has(n.phoneNumber)) {
      throw new Error(`Cannot seed the Twilio emulator: ${n.phoneNumber} is listed twice`);
    }
    seen.add(n.phoneNumber);
    return {
      sid: newSid("PN"),
      phoneNumber: n.phoneNumber,
      friendlyName: n.friendlyName ?? defaultFriendlyName(n.phoneNumber),
    };
  });
}

export function startTwilio(opts: TwilioEmulatorOptions): Promise<TwilioEmulator> {
  return new Promise((resolve) => resolve(createEmulator(opts)));
}

function createEmulator(opts: TwilioEmulatorOptions): TwilioEmulator {
  if (!ACCOUNT_SID.test(opts.accountSid)) {
    throw new Error(
      `Cannot start the Twilio emulator: accountSid must be AC followed by 32 hex digits, got ${
        JSON.stringify(opts.accountSid)
      }`,
    );
  }
  if (opts.authToken === "") {
    throw new Error("Cannot start the Twilio emulator: authToken is empty");
  }
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const config: EmulatorConfig = {
    failureRate: opts.failureRate ?? 0,
    latencyMs: opts.latencyMs ?? 0,
    callerIdPolicy: opts.callerIdPolicy ?? "account",
    cps: opts.cps ?? 1,
  };
  validateConfig(config);
  const store = new TwilioStore({
    seed: seedNumbers(opts.numbers),
    now,
    callerIdPolicy: config.callerIdPolicy,
    cps: config.cps,
    domainRetention: opts.domainRetention ?? true,
  });
  let requestLog: RequestRecord[] = [];

  function configure(k: Partial<EmulatorConfig>): void {
    const next: EmulatorConfig = {
      failureRate: k.failureRate ?? config.failureRate,
      latencyMs: k.latencyMs ?? config.latencyMs,
      callerIdPolicy: k.callerIdPolicy ?? config.callerIdPolicy,
      cps: k.cps ?? config.cps,
    };
    validateConfig(next);
    Object.assign(config, next);
    store.callerIdPolicy = config.callerIdPolicy;
    store.cps = config.cps;
  }

  function state(): EmulatorState {
    return {
      accountSid: opts.accountSid,
      config: { ...config },
      numbers: [...store.numbers.values()].map((n) => ({
        sid: n.sid,
        phoneNumber: n.phoneNumber,
        friendlyName: n.friendlyName,
        trunkSid: n.trunkSid,
        voiceUrl: n.voiceUrl,
      })),
      trunks: [...store.trunks.values()].map((t) => ({
        sid: t.sid,
        friendlyName: t.friendlyName,
        domainName: t.domainName,
        originationUrls: store.trunkOriginationUrls(t.sid).map((u) => ({
          sid: u.sid,
          sipUrl: u.sipUrl,
          priority: u.priority,
          weight: u.weight,
          enabled: u.enabled,
          friendlyName: u.friendlyName,
        })),
        credentialLists: [...t.credentialLists.keys()],
        phoneNumbers: store.trunkNumbers(t.sid).map((n) => n.phoneNumber),
      })),
      credentialLists: [...store.credentialLists.values()].map((l) => ({
        sid: l.sid,
        friendlyName: l.friendlyName,
        credentials: [...l.credentials.values()].map((c) => ({
          sid: c.sid,
          username: c.username,
        })),
      })),
      terminations: [...store.terminations],
    };
  }

  // ---- Lookups that answer 404 with the requested path ---------------------------------

  function trunkOf(call: Call): TrunkRecord {
    const trunk = store.trunks.get(call.groups[0]);
    if (!trunk) throw notFound(call.path);
    return trunk;
  }

  function credentialListOf(call: Call): CredentialListRecord {
    const list = store.credentialLists.get(call.groups[0]);
    if (!list) throw notFound(call.path);
    return list;
  }

  function v1List<T extends { sid: string }>(
    call: Call,
    url: string,
    key: string,
    items: T[],
    show: (item: T) => Record<string, unknown>,
  ): Reply {
    const page = render.paginate(items, call.query);
    return ok(
      render.pageV1(url, key, page, page.records.map(show), call.query.get("PageToken")),
    );
  }

  function list2010<T extends { sid: string }>(
    call: Call,
    key: string,
    items: T[],
    show: (item: T) => Record<string, unknown>,
    filterNames: string[] = [],
  ): Reply {
    const page = render.paginate(items, call.query);
    const filters = new URLSearchParams();
    for (const name of filterNames) {
      const v = call.query.get(name);
      if (v !== null) filters.set(name, v);
    }
    return ok(
      render.page2010(
        call.path,
        key,
        filters,
        page,
        page.records.map(show),
        call.query.get("PageToken"),
      ),
    );
  }

  const A = "^/2010-04-01/Accounts/[^/]+";
  const SID = "([A-Za-z0-9]+)";
  const routes: Route[] = [
    {
      pattern: new RegExp(`${A}/IncomingPhoneNumbers\\.json$`),
      methods: {
        GET: (call) => {
          const phoneNumber = call.query.get("PhoneNumber");
          const friendlyName = call.query.get("FriendlyName");
          const items = [...store.numbers.values()].filter((n) =>
            (phoneNumber === null || phoneNumberMatches(phoneNumber, n.phoneNumber)) &&
            (friendlyName === null || n.friendlyName === friendlyName)
          );
          return list2010(
            call,
            "incoming_phone_numbers",
            items,
            (n) => render.incomingPhoneNumber(call.ctx, n),
            ["PhoneNumber", "FriendlyName", "Beta", "Origin"],
          );
        },
        POST: (call) => {
          // Buying numbers is out of scope: every number the account has is seeded.
          const wanted = call.form.get("PhoneNumber") ?? call.form.get("AreaCode") ?? "";
          throw new TwilioApiError(
            400,
            ErrorCode.phoneNumberNotAvailable,
            `PhoneNumber ${wanted} is not available`,
          );
        },
      },
    },
    {
      pattern: new RegExp(`${A}/IncomingPhoneNumbers/${SID}\\.json$`),
      methods: {
        GET: (call) => {
          const n = store.numbers.get(call.groups[0]);
          if (!n) throw notFound(call.path);
          return ok(render.incomingPhoneNumber(call.ctx, n));
        },
        POST: (call) => {
          const n = store.numbers.get(call.groups[0]);
          if (!n) throw notFound(call.path);
          return ok(render.incomingPhoneNumber(call.ctx, store.updateNumber(n, call.form)));
        },
        DELETE: (call) => {
          if (!store.numbers.has(call.groups[0])) throw notFound(call.path);
          store.deleteNumber(call.groups[0]);
          return noContent;
        },
      },
    },
    {
      pattern: new RegExp(`${A}/SIP/CredentialLists\\.json$`),
      methods: {
        GET: (call) =>
          list2010(
            call,
            "credential_lists",
            [...store.credentialLists.values()],
            (l) => render.credentialList(call.ctx, l),
          ),
        POST: (call) =>
          created(render.credentialList(call.ctx, store.createCredentialList(call.form))),
      },
    },
    {
      pattern: new RegExp(`${A}/SIP/CredentialLists/${SID}\\.json$`),
      methods: {
        GET: (call) => ok(render.credentialList(call.ctx, credentialListOf(call))),
        POST: (call) =>
          ok(
            render.credentialList(
              call.ctx,
              store.updateCredentialList(credentialListOf(call), call.form),
            ),
          ),
        DELETE: (call) => {
          store.deleteCredentialList(credentialListOf(call));
          return noContent;
        },
      },
    },
    {
      pattern: new RegExp(`${A}/SIP/CredentialLists/${SID}/Credentials\\.json$`),
      methods: {
        GET: (call) =>
          list2010(
            call,
            "credentials",
            [...credentialListOf(call).credentials.values()],
            (c) => render.credential(call.ctx, c),
          ),
        POST: async (call) =>
          created(
            render.credential(
              call.ctx,
              await store.createCredential(credentialListOf(call), call.form),
            ),
          ),
      },
    },
    {
      pattern: new RegExp(`${A}/SIP/CredentialLists/${SID}/Credentials/${SID}\\.json$`),
      methods: {
        GET: (call) => {
          const c = credentialListOf(call).credentials.get(call.groups[1]);
          if (!c) throw notFound(call.path);
          return ok(render.credential(call.ctx, c));
        },
        POST: async (call) => {
          const c = credentialListOf(call).credentials.get(call.groups[1]);
          if (!c) throw notFound(call.path);
          return ok(render.credential(call.ctx, await store.updateCredential(c, call.form)));
        },
        DELETE: (call) => {
          const list = credentialListOf(call);
          if (!list.credentials.delete(call.groups[1])) throw notFound(call.path);
          return noContent;
        },
      },
    },
    {
      pattern: /^\/v1\/Trunks$/,
      methods: {
        GET: (call) =>
          v1List(
            call,
            `${call.ctx.origin}/v1/Trunks`,
            "trunks",
            [...store.trunks.values()],
            (t) => render.trunk(call.ctx, t),
          ),
        POST: (call) => created(render.trunk(call.ctx, store.createTrunk(call.form))),
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}$`),
      methods: {
        GET: (call) => ok(render.trunk(call.ctx, trunkOf(call))),
        POST: (call) => ok(render.trunk(call.ctx, store.updateTrunk(trunkOf(call), call.form))),
        DELETE: (call) => {
          store.deleteTrunk(trunkOf(call));
          return noContent;
        },
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/OriginationUrls$`),
      methods: {
        GET: (call) => {
          const t = trunkOf(call);
          return v1List(
            call,
            `${render.trunkUrl(call.ctx, t.sid)}/OriginationUrls`,
            "origination_urls",
            store.trunkOriginationUrls(t.sid),
            (u) => render.originationUrl(call.ctx, u),
          );
        },
        POST: (call) =>
          created(
            render.originationUrl(call.ctx, store.createOriginationUrl(trunkOf(call), call.form)),
          ),
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/OriginationUrls/${SID}$`),
      methods: {
        GET: (call) => {
          const u = store.originationUrls.get(call.groups[1]);
          if (!u || u.trunkSid !== trunkOf(call).sid) throw notFound(call.path);
          return ok(render.originationUrl(call.ctx, u));
        },
        POST: (call) => {
          const u = store.originationUrls.get(call.groups[1]);
          if (!u || u.trunkSid !== trunkOf(call).sid) throw notFound(call.path);
          return ok(render.originationUrl(call.ctx, store.updateOriginationUrl(u, call.form)));
        },
        DELETE: (call) => {
          const u = store.originationUrls.get(call.groups[1]);
          if (!u || u.trunkSid !== trunkOf(call).sid) throw notFound(call.path);
          store.originationUrls.delete(u.sid);
          return noContent;
        },
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/CredentialLists$`),
      methods: {
        GET: (call) => {
          const t = trunkOf(call);
          const attached = [...t.credentialLists].flatMap(([sid, at]) => {
            const list = store.credentialLists.get(sid);
            return list ? [{ sid, list, at }] : [];
          });
          return v1List(
            call,
            `${render.trunkUrl(call.ctx, t.sid)}/CredentialLists`,
            "credential_lists",
            attached,
            (a) => render.trunkCredentialList(call.ctx, t.sid, a.list, a.at),
          );
        },
        POST: (call) => {
          const t = trunkOf(call);
          const list = store.attachCredentialList(t, call.form);
          return created(
            render.trunkCredentialList(call.ctx, t.sid, list, t.credentialLists.get(list.sid)!),
          );
        },
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/CredentialLists/${SID}$`),
      methods: {
        GET: (call) => {
          const t = trunkOf(call);
          const at = t.credentialLists.get(call.groups[1]);
          const list = store.credentialLists.get(call.groups[1]);
          if (at === undefined || !list) throw notFound(call.path);
          return ok(render.trunkCredentialList(call.ctx, t.sid, list, at));
        },
        DELETE: (call) => {
          if (!trunkOf(call).credentialLists.delete(call.groups[1])) throw notFound(call.path);
          return noContent;
        },
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/PhoneNumbers$`),
      methods: {
        GET: (call) => {
          const t = trunkOf(call);
          return v1List(
            call,
            `${render.trunkUrl(call.ctx, t.sid)}/PhoneNumbers`,
            "phone_numbers",
            store.trunkNumbers(t.sid),
            (n) => render.trunkPhoneNumber(call.ctx, n),
          );
        },
        POST: (call) =>
          created(
            render.trunkPhoneNumber(call.ctx, store.attachNumber(trunkOf(call), call.form)),
          ),
      },
    },
    {
      pattern: new RegExp(`^/v1/Trunks/${SID}/PhoneNumbers/${SID}$`),
      methods: {
        GET: (call) => {
          const n = store.numbers.get(call.groups[1]);
          if (!n || n.trunkSid !== trunkOf(call).sid) throw notFound(call.path);
          return ok(render.trunkPhoneNumber(call.ctx, n));
        },
        DELETE: (call) => {
          const n = store.numbers.get(call.groups[1]);
          if (!n || n.trunkSid !== trunkOf(call).sid) throw notFound(call.path);
          store.detachNumber(n);
          return noContent;
        },
      },
    },
  ];

  function authorized(req: Request): boolean {
    const header = req.headers.get("authorization") ?? "";
    const match = /^Basic\s+(.+)$/i.exec(header);
    if (!match) return false;
    let decoded: string;
    try {
      decoded = atob(match[1].trim());
    } catch {
      return false;
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) return false;
    return decoded.slice(0, colon) === opts.accountSid &&
      decoded.slice(colon + 1) === opts.authToken;
  }

  const unauthenticated = new TwilioApiError(401, ErrorCode.authenticate, "Authenticate");

  async function api(req: Request, url: URL, form: URLSearchParams): Promise<Response> {
    const path = url.pathname;
    const accountInPath = /^\/2010-04-01\/Accounts\/([^/]+)/.exec(path)?.[1];
    if (!authorized(req) || (accountInPath !== undefined && accountInPath !== opts.accountSid)) {
      return json(401, unauthenticated.toBody(), {
        "www-authenticate": 'Basic realm="Twilio API"',
      });
    }
    if (config.latencyMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, config.latencyMs));
    }
    if (config.failureRate > 0 && random() < config.failureRate) {
      return json(
        429,
        new TwilioApiError(429, ErrorCode.tooManyRequests, "Too Many Requests").toBody(),
      );
    }
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      const handler = route.methods[req.method as keyof Route["methods"]];
      if (!handler) {
        return json(
          405,
          new TwilioApiError(405, ErrorCode.methodNotAllowed, "Method not allowed").toBody(),
        );
      }
      const reply = await handler({
        method: req.method,
        path,
        query: url.searchParams,
        form,
        groups: match.slice(1),
        ctx: { accountSid: opts.accountSid, origin: url.origin },
      });
      return json(reply.status, reply.body);
    }
    throw notFound(path);
  }

  async function emulatorEndpoint(req: Request, path: string): Promise<Response> {
    if (req.method === "GET" && path === "/emulator/state") return json(200, state());
    if (req.method === "GET" && path === "/emulator/requests") {
      return json(200, { requests: requestLog });
    }
    if (req.method === "POST" && path === "/emulator/reset") {
      reset();
      return json(200, { ok: true });
    }
    if (req.method === "POST" && path === "/emulator/config") {
      let body: unknown;
      try {
        body = JSON.parse((await req.text()) || "{}");
      } catch {
        return json(400, { error: "Body must be a JSON object" });
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return json(400, { error: "Body must be a JSON object" });
      }
      try {
        configure(body as Partial<EmulatorConfig>);
      } catch (e) {
        return json(400, { error: (e as Error).message });
      }
      return json(200, { config });
    }
    if (req.method === "POST" && path === "/emulator/numbers") {
      // More numbers for the account (the seeded ones are all in one area code).
      let body: { phoneNumber?: unknown; friendlyName?: unknown };
      try {
        body = JSON.parse((await req.text()) || "{}");
      } catch {
        return json(400, { error: "Body must be a JSON object" });
      }
      const phoneNumber = body?.phoneNumber;
      if (typeof phoneNumber !== "string" || !isE164(phoneNumber)) {
        return json(400, { error: "phoneNumber must be E.164, like +15551234567" });
      }
      const friendlyName = typeof body.friendlyName === "string"
        ? body.friendlyName
        : defaultFriendlyName(phoneNumber);
      const added = store.addNumber({ sid: newSid("PN"), phoneNumber, friendlyName });
      if (!added) return json(409, { error: `${phoneNumber} is already a number of the account` });
      return json(201, { sid: added.sid, phoneNumber: added.phoneNumber });
    }
    return json(404, { error: `No emulator endpoint ${req.method} ${path}` });
  }

  function reset(): void {
    store.reset();
    requestLog = [];
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/emulator/")) return emulatorEndpoint(req, url.pathname);
    const form = req.method === "POST" || req.method === "PUT"
      ? new URLSearchParams(await req.text())
      : new URLSearchParams();
    let response: Response;
    try {
      response = await api(req, url, form);
    } catch (e) {
      const error = e instanceof TwilioApiError
        ? e
        : new TwilioApiError(500, 20500, `Internal Server Error: ${(e as Error).message}`);
      response = json(error.status, error.toBody());
    }
    requestLog.push({
      time: new Date(now()).toISOString(),
      method: req.method,
      path: url.pathname,
      query: firstValues(url.searchParams, true),
      params: firstValues(form, true),
      status: response.status,
    });
    if (requestLog.length > MAX_REQUEST_LOG) requestLog.shift();
    return response;
  }

  const server = Deno.serve(
    { hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0, onListen: () => {} },
    handle,
  );
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;

  return {
    url: `http://${host}:${addr.port}`,
    configure,
    reset,
    terminate: (call) => store.terminate(call),
    state,
    requests: () => [...requestLog],
    close: () => server.shutdown(),
  };
}
