/**
 * LiveKit server emulator: LiveKit's Twirp API (SIP, RoomService, AgentDispatchService) with
 * its auth and validation rules, simulated outbound calls and signed webhooks, so the real
 * livekit-server-sdk can be its client. Knobs add latency, failures and carrier limits;
 * /emulator/* endpoints expose what happened.
 */
import { z } from "zod";
import { authenticate } from "./auth.ts";
import { type CallRecord, type CarrierCheck, Calls } from "./calls.ts";
import { Rooms } from "./rooms.ts";
import { agentDispatchService, roomService } from "./room_service.ts";
import { sipService, SipStore } from "./sip_service.ts";
import { Scheduler } from "./timers.ts";
import {
  badRoute,
  type CallContext,
  encodeJson,
  errorResponse,
  HTTP_STATUS,
  type JsonValue,
  type ProtoMessage,
  type Service,
  TwirpError,
} from "./twirp.ts";
import { type WebhookDelivery, WebhookSender } from "./webhooks.ts";

export type { CarrierCheck } from "./calls.ts";

export interface LiveKitKnobs {
  /** Multiplies every simulated duration (ringing, talk time, timeouts); 1 = real time. */
  timeScale: number;
  /** Added before every Twirp response. */
  latencyMs: number;
  /** 0..1 chance a Twirp call answers 503 unavailable without doing anything. */
  failureRate: number;
  /** 0..1 chance a Twirp call hangs for `hangMs`, then drops the connection, without doing anything. */
  timeoutRate: number;
  hangMs: number;
  /** 0 = unlimited; at the cap CreateSIPParticipant fails with resource_exhausted. */
  maxConcurrentCalls: number;
  /** 0 = unlimited; INVITEs per real second per outbound trunk address before the carrier answers 503. */
  trunkCps: number;
  /** Where webhooks are POSTed; null sends none. */
  webhookUrl: string | null;
}

export interface LiveKitEmulatorOptions extends Partial<LiveKitKnobs> {
  apiKey: string;
  apiSecret: string;
  port?: number;
  hostname?: string;
  carrier?: CarrierCheck;
}

export interface LiveKitEmulator {
  /** http://127.0.0.1:PORT */
  url: string;
  configure(k: Partial<LiveKitKnobs>): void;
  /** Clears all state and the request log and restores the knobs given at start. */
  reset(): void;
  close(): Promise<void>;
}

export interface RequestLogEntry {
  at: string;
  ms: number;
  service: string;
  method: string;
  body: unknown;
  /** HTTP status sent; 0 while pending or when the connection was dropped. */
  status: number;
  code?: string;
}

export const DEFAULT_KNOBS: LiveKitKnobs = {
  timeScale: 1,
  latencyMs: 0,
  failureRate: 0,
  timeoutRate: 0,
  hangMs: 15_000,
  maxConcurrentCalls: 0,
  trunkCps: 0,
  webhookUrl: null,
};

const knobsPatch = z.object({
  timeScale: z.number().min(0).optional(),
  latencyMs: z.number().min(0).optional(),
  failureRate: z.number().min(0).max(1).optional(),
  timeoutRate: z.number().min(0).max(1).optional(),
  hangMs: z.number().min(0).optional(),
  maxConcurrentCalls: z.number().int().min(0).optional(),
  trunkCps: z.number().min(0).optional(),
  webhookUrl: z.url().nullable().optional(),
}).strict();

/** Validates a partial set of knobs; throws with every problem named. */
export function parseKnobs(input: unknown): Partial<LiveKitKnobs> {
  const result = knobsPatch.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid LiveKit emulator knobs: ${problems.join("; ")}`);
  }
  const out: Partial<LiveKitKnobs> = {};
  for (const [k, v] of Object.entries(result.data)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

const REQUEST_LOG_LIMIT = 100_000;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** A response whose body fails at once: the client sees the connection drop. */
function droppedConnection(): Response {
  return new Response(
    new ReadableStream({
      pull(controller) {
        controller.error(new Error("connection dropped"));
      },
    }),
  );
}

export async function startLiveKit(opts: LiveKitEmulatorOptions): Promise<LiveKitEmulator> {
  const { apiKey, apiSecret } = opts;
  if (!apiKey || !apiSecret) throw new Error("startLiveKit needs apiKey and apiSecret");
  const { port: _port, hostname: _hostname, carrier, apiKey: _k, apiSecret: _s, ...knobInput } = opts;
  const initialKnobs: LiveKitKnobs = { ...DEFAULT_KNOBS, ...parseKnobs(knobInput) };
  let knobs: LiveKitKnobs = { ...initialKnobs };
  let requests: RequestLogEntry[] = [];
  let closing = false;

  const scheduler = new Scheduler();
  const scaledMs = (seconds: number) => seconds * 1000 * knobs.timeScale;
  const webhooks = new WebhookSender({ apiKey, apiSecret, url: () => knobs.webhookUrl, scheduler });
  const rooms = new Rooms({ scheduler, scaledMs, emit: (e) => webhooks.emit(e) });
  const calls = new Calls({ rooms, scheduler, scaledMs, trunkCps: () => knobs.trunkCps, carrier });
  const store = new SipStore();
  const services: Record<string, Service> = {
    "livekit.SIP": sipService({ store, rooms, calls, maxConcurrentCalls: () => knobs.maxConcurrentCalls }),
    "livekit.RoomService": roomService(rooms),
    "livekit.AgentDispatchService": agentDispatchService(rooms),
  };

  function state(): {
    inboundTrunks: JsonValue[];
    outboundTrunks: JsonValue[];
    dispatchRules: JsonValue[];
    rooms: JsonValue[];
    participants: JsonValue[];
    dispatches: JsonValue[];
    calls: CallRecord[];
    webhooksSent: number;
    webhooksFailed: number;
    webhookDeliveries: WebhookDelivery[];
    knobs: LiveKitKnobs;
  } {
    return {
      ...store.snapshot(),
      ...rooms.snapshot(),
      calls: calls.records(),
      webhooksSent: webhooks.sent,
      webhooksFailed: webhooks.failed,
      webhookDeliveries: webhooks.deliveries(),
      knobs: { ...knobs },
    };
  }

  function reset(): void {
    calls.clear("emulator reset");
    scheduler.cancelAll();
    rooms.clear();
    store.clear();
    webhooks.reset();
    requests = [];
    knobs = { ...initialKnobs };
  }

  async function handleTwirp(req: Request, url: URL): Promise<Response> {
    const path = url.pathname;
    const segments = path.split("/");
    const pkgService = segments[2] ?? "";
    const methodName = segments[3] ?? "";
    const bytes = new Uint8Array(await req.arrayBuffer());
    const contentType = req.headers.get("Content-Type") ?? "";
    const mediaType = contentType.split(";")[0].trim().toLowerCase();
    let logged: unknown = null;
    if (mediaType !== "application/protobuf" && bytes.length > 0) {
      const text = new TextDecoder().decode(bytes);
      try {
        logged = JSON.parse(text);
      } catch {
        logged = text;
      }
    }
    const entry: RequestLogEntry = {
      at: new Date().toISOString(),
      ms: Date.now(),
      service: pkgService,
      method: methodName,
      body: logged,
      status: 0,
    };
    requests.push(entry);
    if (requests.length > REQUEST_LOG_LIMIT) requests.shift();

    const fail = (err: TwirpError): Response => {
      entry.status = HTTP_STATUS[err.code];
      entry.code = err.code;
      return errorResponse(err);
    };

    // Knobs act before anything else, so a failed request changed nothing and can be retried.
    if (knobs.latencyMs > 0 && !(await scheduler.sleep(knobs.latencyMs))) {
      return fail(new TwirpError("unavailable", "service shutting down"));
    }
    if (Math.random() < knobs.failureRate) return fail(new TwirpError("unavailable", "service unavailable"));
    if (Math.random() < knobs.timeoutRate) {
      entry.code = "dropped";
      await scheduler.sleep(knobs.hangMs);
      return droppedConnection();
    }

    const auth = await authenticate(req, url, apiKey, apiSecret);
    if (!auth.ok) {
      entry.status = 401;
      return new Response(auth.message, { status: 401, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }

    if (req.method !== "POST") {
      return fail(badRoute(`unsupported method ${JSON.stringify(req.method)} (only POST is allowed)`, req.method, path));
    }
    const service = segments.length === 4 ? services[pkgService] : undefined;
    const handler = service?.methods[methodName];
    if (!service || !handler) {
      if (service?.unimplemented?.includes(methodName)) {
        return fail(new TwirpError("unimplemented", `${methodName} is not implemented by the LiveKit emulator`));
      }
      return fail(badRoute(`no handler for path ${JSON.stringify(path)}`, req.method, path));
    }
    if (mediaType !== "application/json" && mediaType !== "application/protobuf") {
      return fail(badRoute(`unexpected Content-Type: ${JSON.stringify(contentType)}`, req.method, path));
    }

    let message: ProtoMessage;
    try {
      if (mediaType === "application/json") {
        message = handler.decodeJson(JSON.parse(new TextDecoder().decode(bytes)));
      } else {
        message = handler.decodeBinary(bytes);
        entry.body = message.toJson();
      }
    } catch {
      return fail(new TwirpError("malformed", "the json request could not be decoded"));
    }

    const ctx: CallContext = { grants: auth.grants, requestId: req.headers.get("X-Livekit-Request-Id") };
    let result: ProtoMessage;
    try {
      result = await handler.handle(message, ctx);
    } catch (err) {
      if (err instanceof TwirpError) return fail(err);
      return fail(new TwirpError("internal", err instanceof Error ? err.message : String(err)));
    }
    entry.status = 200;
    if (mediaType === "application/protobuf") {
      return new Response(new Uint8Array(result.toBinary()), { headers: { "Content-Type": "application/protobuf" } });
    }
    return new Response(encodeJson(result), { headers: { "Content-Type": "application/json" } });
  }

  async function handleEmulator(req: Request, url: URL): Promise<Response> {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case "GET /emulator/requests":
        return json({ requests });
      case "GET /emulator/state":
        return json(state());
      case "POST /emulator/config": {
        let patch: Partial<LiveKitKnobs>;
        try {
          patch = parseKnobs(await req.json());
        } catch (err) {
          return json({ error: err instanceof Error ? err.message : String(err) }, 400);
        }
        knobs = { ...knobs, ...patch };
        return json({ knobs });
      }
      case "POST /emulator/reset":
        reset();
        return json({ ok: true });
      default:
        return json({ error: `no emulator endpoint ${route}` }, 404);
    }
  }

  let listening!: () => void;
  const listened = new Promise<void>((resolve) => (listening = resolve));
  const server = Deno.serve(
    {
      hostname: opts.hostname ?? "127.0.0.1",
      port: opts.port ?? 0,
      onListen: () => listening(),
      // Also reached by the deliberately failing body of a dropped connection: stay quiet.
      onError: () => new Response("internal error", { status: 500 }),
    },
    async (req) => {
      const url = new URL(req.url);
      try {
        if (url.pathname.startsWith("/twirp/")) return await handleTwirp(req, url);
        if (url.pathname.startsWith("/emulator/")) return await handleEmulator(req, url);
        if (url.pathname === "/" && req.method === "GET") return new Response("OK");
        await req.body?.cancel();
        return new Response("404 page not found\n", { status: 404 });
      } catch (err) {
        return new Response(`internal error: ${err instanceof Error ? err.message : String(err)}`, { status: 500 });
      }
    },
  );

  await listened;
  return {
    url: `http://${server.addr.hostname}:${server.addr.port}`,
    configure(k: Partial<LiveKitKnobs>) {
      knobs = { ...knobs, ...parseKnobs(k) };
    },
    reset,
    async close() {
      if (closing) return;
      closing = true;
      calls.clear("service shutting down");
      scheduler.cancelAll();
      await webhooks.stop();
      await server.shutdown();
    },
  };
}
