/**
 * LiveKit server emulator: LiveKit's Twirp API (SIP, RoomService, AgentDispatchService) with
 * its auth and validation rules, simulated outbound calls and signed webhooks, so the real
 * livekit-server-sdk can be its client. Knobs add latency, failures and carrier limits;
 * /emulator/* endpoints expose what happened.
 */
import { authenticate } from "./auth.ts";
import { Calls, type CarrierCheck } from "./calls.ts";
import { type EmulatorState, handleInspection, RequestLog } from "./inspect.ts";
import { createFronts } from "./listener.ts";
import { DEFAULT_KNOBS, type LiveKitKnobs, parseKnobs } from "./knobs.ts";
import { Agents } from "./agents.ts";
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

export type { CallRecord, CarrierCheck, InviteRecord } from "./calls.ts";
export type { EmulatorState, RequestLogEntry } from "./inspect.ts";
export { DEFAULT_KNOBS, type LiveKitKnobs } from "./knobs.ts";

export interface LiveKitEmulatorOptions extends Partial<LiveKitKnobs> {
  apiKey: string;
  apiSecret: string;
  port?: number;
  hostname?: string;
  /** Called before each call is dialed; a SIP failure returned here fails the call like the carrier would. */
  carrier?: CarrierCheck;
  /**
   * Extra listeners on other ports, sharing all state, that `GET /settings/regions` lists as
   * LiveKit Cloud lists its regions; 0 (the default) answers that path 404 like a self-hosted
   * server. The SDK's failover replays requests to them.
   */
  regions?: number;
}

export interface LiveKitEmulator {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The extra listeners (option `regions`), as /settings/regions lists them. */
  regionUrls: string[];
  /** What GET /emulator/state answers. */
  state(): EmulatorState;
  configure(k: Partial<LiveKitKnobs>): void;
  /** Clears all state and the request log and restores the knobs given at start. */
  reset(): void;
  close(): Promise<void>;
}

/** The listener at the URL clients are given. */
const PRIMARY_REGION = "primary";
/** Cache-Control max-age of /settings/regions (LiveKit Cloud's own value is not documented). */
const REGIONS_MAX_AGE_S = 60;

export async function startLiveKit(opts: LiveKitEmulatorOptions): Promise<LiveKitEmulator> {
  const { apiKey, apiSecret, carrier } = opts;
  if (!apiKey || !apiSecret) throw new Error("startLiveKit needs apiKey and apiSecret");
  const {
    port: _p,
    hostname: _h,
    carrier: _c,
    apiKey: _k,
    apiSecret: _s,
    regions: regionCount = 0,
    ...knobInput
  } = opts;
  if (!Number.isInteger(regionCount) || regionCount < 0) {
    throw new Error(`startLiveKit: regions must be a whole number >= 0, got ${regionCount}`);
  }
  const initialKnobs: LiveKitKnobs = { ...DEFAULT_KNOBS, ...parseKnobs(knobInput) };
  let knobs: LiveKitKnobs = { ...initialKnobs };
  let closing = false;

  const scheduler = new Scheduler();
  const scaledMs = (seconds: number) => seconds * 1000 * knobs.timeScale;
  const requests = new RequestLog();
  const webhooks = new WebhookSender({
    apiKey,
    apiSecret,
    url: () => knobs.webhookUrl,
    scheduler,
    dropRate: () => knobs.webhookDropRate,
  });
  const rooms: Rooms = new Rooms({
    scheduler,
    scaledMs,
    emit: (e) => {
      webhooks.emit(e);
      agents.observe(e);
    },
    dispatched: (d) => agents.dispatched(d),
  });
  const agents: Agents = new Agents({ rooms, scheduler, scaledMs, knobs: () => knobs });
  const calls = new Calls({
    rooms,
    scheduler,
    scaledMs,
    trunkCps: () => knobs.trunkCps,
    joinDelayMs: () => knobs.joinDelayMs,
    carrier,
    transferRefusal: () => knobs.transferRefusal,
  });
  const store = new SipStore();
  const services: Record<string, Service> = {
    "livekit.SIP": sipService({
      store,
      rooms,
      calls,
      maxConcurrentCalls: () => knobs.maxConcurrentCalls,
    }),
    "livekit.RoomService": roomService(rooms),
    "livekit.AgentDispatchService": agentDispatchService(rooms, agents),
  };

  /** Every listener: the primary first, then the extra regions. Filled in once listening. */
  const listeners: { region: string; url: string }[] = [];

  const state = (): EmulatorState => {
    const invites = calls.invites();
    const invitesByRoom: Record<string, number> = {};
    const invitesByRequestId: Record<string, number> = {};
    for (const invite of invites) {
      invitesByRoom[invite.room] = (invitesByRoom[invite.room] ?? 0) + 1;
      const id = invite.requestId ?? "";
      invitesByRequestId[id] = (invitesByRequestId[id] ?? 0) + 1;
    }
    return {
      ...store.snapshot(),
      ...rooms.snapshot(),
      calls: calls.records(),
      agentJobs: agents.records(),
      invites,
      invitesByRoom,
      invitesByRequestId,
      webhooksSent: webhooks.sent,
      webhooksFailed: webhooks.failed,
      webhooksDropped: { ...webhooks.droppedByEvent },
      webhookDeliveries: webhooks.deliveries(),
      regions: listeners.map((l) => ({ ...l })),
      knobs: { ...knobs },
    };
  };

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
    agents.clear();
    store.clear();
    webhooks.reset();
    requests.clear();
    knobs = { ...initialKnobs };
  };

  /** Where a request came from, and how to drop its connection before any answer. */
  interface Origin {
    region: string;
    drop(): Response;
    /** When the request's bytes reached the emulator's listener. */
    receivedAt(): number;
  }

  async function handleTwirp(req: Request, url: URL, origin: Origin): Promise<Response> {
    const { region } = origin;
    const path = url.pathname;
    const segments = path.split("/");
    const pkgService = segments[2] ?? "";
    const methodName = segments[3] ?? "";
    const bytes = new Uint8Array(await req.arrayBuffer());
    const receivedAt = origin.receivedAt();
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
    const requestId = req.headers.get("X-Livekit-Request-Id");
    const entry = requests.add(pkgService, methodName, logged, region, requestId);
    const fail = (err: TwirpError): Response => {
      entry.status = HTTP_STATUS[err.code];
      entry.code = err.code;
      return errorResponse(err);
    };

    // Knobs act before anything else, so a failed request changed nothing and can be retried.
    const latencyMs = knobs.latencyMs;
    if (latencyMs > 0 && !(await scheduler.sleep(latencyMs))) {
      return fail(new TwirpError("unavailable", "service shutting down"));
    }
    if (Math.random() < knobs.failureRate) {
      return fail(new TwirpError("unavailable", "service unavailable"));
    }
    if (Math.random() < knobs.timeoutRate) {
      entry.code = "dropped";
      await scheduler.sleep(knobs.hangMs);
      return origin.drop();
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
      requestId,
      region,
      receivedAt: receivedAt + Math.max(0, latencyMs),
    };
    let result: ProtoMessage | null = null;
    let error: TwirpError | null = null;
    try {
      result = await handler.handle(message, ctx);
    } catch (err) {
      error = err instanceof TwirpError
        ? err
        : new TwirpError("internal", err instanceof Error ? err.message : String(err));
    }
    // The call was placed (or failed) for real; only its answer is lost on the way back.
    if (pkgService === "livekit.SIP" && methodName === "CreateSIPParticipant") {
      if (Math.random() < knobs.answerFailureRate) {
        return fail(new TwirpError("unavailable", "service unavailable"));
      }
      if (Math.random() < knobs.answerTimeoutRate) {
        entry.code = "dropped";
        await scheduler.sleep(knobs.hangMs);
        return origin.drop();
      }
    }
    if (error || !result) return fail(error ?? new TwirpError("internal", "no response"));
    entry.status = 200;
    if (mediaType === "application/protobuf") {
      return new Response(new Uint8Array(result.toBinary()), {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    return new Response(encodeJson(result), { headers: { "Content-Type": "application/json" } });
  }

  /**
   * LiveKit Cloud's region list (livekit/protocol RegionSettings as protojson: region, url,
   * distance as an int64 string), which clients fetch with their API token. The listed URLs
   * are the regional ones, not the project URL the client started from.
   */
  async function handleRegions(req: Request, url: URL): Promise<Response> {
    await req.body?.cancel();
    if (regionCount === 0 || req.method !== "GET") {
      return new Response("404 page not found\n", { status: 404 });
    }
    const auth = await authenticate(req, url, apiKey, apiSecret);
    if (!auth.ok || !auth.grants) {
      return new Response(auth.ok ? "permissions denied" : auth.message, {
        status: 401,
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      });
    }
    const regions = listeners.slice(1).map((l, i) => ({
      region: l.region,
      url: l.url.replace(/^http/, "ws"),
      distance: String((i + 1) * 1000),
    }));
    return new Response(JSON.stringify({ regions }), {
      headers: {
        "Content-Type": "application/json",
        "Cache-Control": `public, max-age=${REGIONS_MAX_AGE_S}`,
      },
    });
  }

  // One internal server; the listeners clients see are TCP fronts that can drop a connection.
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => (listening = resolve));
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => listening(),
      // Also reached when a dropped connection's answer cannot be written: stay quiet.
      onError: () => new Response("internal error", { status: 500 }),
    },
    async (req, info) => {
      const url = new URL(req.url);
      const peer = info.remoteAddr.port;
      const origin: Origin = {
        region: fronts.regionOf(peer) ?? PRIMARY_REGION,
        drop: () => {
          fronts.drop(peer);
          return new Response(null, { status: 502 });
        },
        receivedAt: () => fronts.receivedAt(peer) ?? Date.now(),
      };
      try {
        if (url.pathname.startsWith("/twirp/")) return await handleTwirp(req, url, origin);
        if (url.pathname.startsWith("/emulator/")) {
          return await handleInspection(req, url, { requests, state, configure, reset });
        }
        if (url.pathname === "/settings/regions") return await handleRegions(req, url);
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
  const fronts = createFronts(server.addr.port);
  const hostname = opts.hostname ?? "127.0.0.1";
  try {
    listeners.push({
      region: PRIMARY_REGION,
      url: fronts.open(PRIMARY_REGION, hostname, opts.port ?? 0),
    });
    for (let i = 1; i <= regionCount; i++) {
      const region = `region-${i}`;
      listeners.push({ region, url: fronts.open(region, hostname, 0) });
    }
  } catch (err) {
    await fronts.close();
    await server.shutdown();
    throw err;
  }

  return {
    url: listeners[0].url,
    regionUrls: listeners.slice(1).map((l) => l.url),
    state,
    configure: (k) => void configure(k),
    reset,
    async close() {
      if (closing) return;
      closing = true;
      calls.clear("service shutting down");
      scheduler.cancelAll();
      await webhooks.stop();
      await fronts.close();
      await server.shutdown();
    },
  };
}
