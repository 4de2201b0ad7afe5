/**
 * LiveKit server emulator: LiveKit's Twirp API (SIP, RoomService, AgentDispatchService) with
 * its auth and validation rules, simulated outbound calls and signed webhooks, so the real
 * livekit-server-sdk can be its client. Knobs add latency, failures and carrier limits;
 * /emulator/* endpoints expose what happened.
 */
import { authenticate } from "./auth.ts";
import { Calls, type CarrierCheck } from "./calls.ts";
import { type EmulatorState, handleInspection, RequestLog } from "./inspect.ts";
import { DEFAULT_KNOBS, type LiveKitKnobs, parseKnobs } from "./knobs.ts";
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
  type ProtoMessage,
  type Service,
  TwirpError,
} from "./twirp.ts";
import { WebhookSender } from "./webhooks.ts";

export type { CallRecord, CarrierCheck } from "./calls.ts";
export type { EmulatorState, RequestLogEntry } from "./inspect.ts";
export { DEFAULT_KNOBS, type LiveKitKnobs } from "./knobs.ts";

export interface LiveKitEmulatorOptions extends Partial<LiveKitKnobs> {
  apiKey: string;
  apiSecret: string;
  port?: number;
  hostname?: string;
  /** Called before each call is dialed; a SIP failure returned here fails the call like the carrier would. */
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
  const { apiKey, apiSecret, carrier } = opts;
  if (!apiKey || !apiSecret) throw new Error("startLiveKit needs apiKey and apiSecret");
  const { port: _p, hostname: _h, carrier: _c, apiKey: _k, apiSecret: _s, ...knobInput } = opts;
  const initialKnobs: LiveKitKnobs = { ...DEFAULT_KNOBS, ...parseKnobs(knobInput) };
  let knobs: LiveKitKnobs = { ...initialKnobs };
  let closing = false;

  const scheduler = new Scheduler();
  const scaledMs = (seconds: number) => seconds * 1000 * knobs.timeScale;
  const requests = new RequestLog();
  const webhooks = new WebhookSender({ apiKey, apiSecret, url: () => knobs.webhookUrl, scheduler });
  const rooms = new Rooms({ scheduler, scaledMs, emit: (e) => webhooks.emit(e) });
  const calls = new Calls({ rooms, scheduler, scaledMs, trunkCps: () => knobs.trunkCps, carrier });
  const store = new SipStore();
  const services: Record<string, Service> = {
    "livekit.SIP": sipService({
      store,
      rooms,
      calls,
      maxConcurrentCalls: () => knobs.maxConcurrentCalls,
    }),
    "livekit.RoomService": roomService(rooms),
    "livekit.AgentDispatchService": agentDispatchService(rooms),
  };

  const state = (): EmulatorState => ({
    ...store.snapshot(),
    ...rooms.snapshot(),
    calls: calls.records(),
    webhooksSent: webhooks.sent,
    webhooksFailed: webhooks.failed,
    webhookDeliveries: webhooks.deliveries(),
    knobs: { ...knobs },
  });

  const configure = (patch: Partial<LiveKitKnobs>): LiveKitKnobs => {
    const before = knobs.timeScale;
    knobs = { ...knobs, ...parseKnobs(patch) };
    if (knobs.timeScale !== before) calls.rescale();
    return { ...knobs };
  };

  const reset = (): void => {
    calls.clear("emulator reset");
    scheduler.cancelAll();
    rooms.clear();
    store.clear();
    webhooks.reset();
    requests.clear();
    knobs = { ...initialKnobs };
  };

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
    const entry = requests.add(pkgService, methodName, logged);
    const fail = (err: TwirpError): Response => {
      entry.status = HTTP_STATUS[err.code];
      entry.code = err.code;
      return errorResponse(err);
    };

    // Knobs act before anything else, so a failed request changed nothing and can be retried.
    if (knobs.latencyMs > 0 && !(await scheduler.sleep(knobs.latencyMs))) {
      return fail(new TwirpError("unavailable", "service shutting down"));
    }
    if (Math.random() < knobs.failureRate) {
      return fail(new TwirpError("unavailable", "service unavailable"));
    }
    if (Math.random() < knobs.timeoutRate) {
      entry.code = "dropped";
      await scheduler.sleep(knobs.hangMs);
      return droppedConnection();
    }

    // As in livekit-server, auth runs before Twirp routing.
    const auth = await authenticate(req, url, apiKey, apiSecret);
    if (!auth.ok) {
      entry.status = 401;
      return new Response(auth.message, {
        status: 401,
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      });
    }

    if (req.method !== "POST") {
      const msg = `unsupported method ${JSON.stringify(req.method)} (only POST is allowed)`;
      return fail(badRoute(msg, req.method, path));
    }
    const service = segments.length === 4 ? services[pkgService] : undefined;
    const handler = service?.methods[methodName];
    if (!service || !handler) {
      if (service?.unimplemented?.includes(methodName)) {
        return fail(
          new TwirpError(
            "unimplemented",
            `${methodName} is not implemented by the LiveKit emulator`,
          ),
        );
      }
      return fail(badRoute(`no handler for path ${JSON.stringify(path)}`, req.method, path));
    }
    if (mediaType !== "application/json" && mediaType !== "application/protobuf") {
      return fail(
        badRoute(`unexpected Content-Type: ${JSON.stringify(contentType)}`, req.method, path),
      );
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

    const ctx: CallContext = {
      grants: auth.grants,
      requestId: req.headers.get("X-Livekit-Request-Id"),
    };
    let result: ProtoMessage;
    try {
      result = await handler.handle(message, ctx);
    } catch (err) {
      if (err instanceof TwirpError) return fail(err);
      return fail(new TwirpError("internal", err instanceof Error ? err.message : String(err)));
    }
    entry.status = 200;
    if (mediaType === "application/protobuf") {
      return new Response(new Uint8Array(result.toBinary()), {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    return new Response(encodeJson(result), { headers: { "Content-Type": "application/json" } });
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
        if (url.pathname.startsWith("/emulator/")) {
          return await handleInspection(req, url, { requests, state, configure, reset });
        }
        await req.body?.cancel();
        if (url.pathname === "/" && req.method === "GET") return new Response("OK");
        return new Response("404 page not found\n", { status: 404 });
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        return new Response(`internal error: ${msg}`, { status: 500 });
      }
    },
  );
  await listened;

  return {
    url: `http://${server.addr.hostname}:${server.addr.port}`,
    configure: (k) => void configure(k),
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
