/**
 * Inspection endpoints for tests and benchmarks (no auth, outside LiveKit's paths):
 * GET /emulator/requests, GET /emulator/state, POST /emulator/config, POST /emulator/reset.
 */
import type { AgentJobRecord } from "./agents.ts";
import type { CallRecord, InviteRecord } from "./calls.ts";
import { type LiveKitKnobs, parseKnobs } from "./knobs.ts";
import type { JsonValue } from "./twirp.ts";
import type { WebhookDelivery } from "./webhooks.ts";

export interface RequestLogEntry {
  at: string;
  ms: number;
  /** e.g. "livekit.SIP" */
  service: string;
  method: string;
  /** The request body as received (JSON), or decoded from protobuf. */
  body: unknown;
  /** HTTP status sent; 0 while pending or when the connection was dropped. */
  status: number;
  /** Twirp error code, or "dropped" for an injected hang. */
  code?: string;
  /** The listener (region) the request arrived at: "primary" or "region-N". */
  region: string;
  /** X-Livekit-Request-Id, which the SDK keeps when it replays a request to another region. */
  requestId: string | null;
}

const REQUEST_LOG_LIMIT = 100_000;

/** Every Twirp request received, in order (the oldest are dropped past 100k). */
export class RequestLog {
  #entries: RequestLogEntry[] = [];

  add(
    service: string,
    method: string,
    body: unknown,
    region: string,
    requestId: string | null,
  ): RequestLogEntry {
    const entry: RequestLogEntry = {
      at: new Date().toISOString(),
      ms: Date.now(),
      service,
      method,
      body,
      status: 0,
      region,
      requestId,
    };
    this.#entries.push(entry);
    if (this.#entries.length > REQUEST_LOG_LIMIT) this.#entries.shift();
    return entry;
  }

  list(): RequestLogEntry[] {
    return [...this.#entries];
  }

  clear(): void {
    this.#entries = [];
  }
}

/** JSON-safe snapshot of everything the emulator holds. */
export interface EmulatorState {
  inboundTrunks: JsonValue[];
  outboundTrunks: JsonValue[];
  dispatchRules: JsonValue[];
  rooms: JsonValue[];
  participants: JsonValue[];
  dispatches: JsonValue[];
  calls: CallRecord[];
  /** Agent jobs: dispatched, joined, spoke (published audio), left. */
  agentJobs: AgentJobRecord[];
  /** Every INVITE sent, in order; a replayed CreateSIPParticipant sends one more. */
  invites: InviteRecord[];
  /** INVITEs per room. */
  invitesByRoom: Record<string, number>;
  /** INVITEs per X-Livekit-Request-Id ("" for requests without one). */
  invitesByRequestId: Record<string, number>;
  webhooksSent: number;
  webhooksFailed: number;
  /** Events dropped without any delivery attempt, by event type (knob `webhookDropRate`). */
  webhooksDropped: Record<string, number>;
  webhookDeliveries: WebhookDelivery[];
  /** The listeners: the primary URL and the extra regions `/settings/regions` lists. */
  regions: { region: string; url: string }[];
  knobs: LiveKitKnobs;
}

export interface Inspectable {
  requests: RequestLog;
  state(): EmulatorState;
  configure(k: Partial<LiveKitKnobs>): LiveKitKnobs;
  reset(): void;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

export async function handleInspection(
  req: Request,
  url: URL,
  target: Inspectable,
): Promise<Response> {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case "GET /emulator/requests":
      return json({ requests: target.requests.list() });
    case "GET /emulator/state":
      return json(target.state());
    case "POST /emulator/config": {
      let patch: Partial<LiveKitKnobs>;
      try {
        patch = parseKnobs(await req.json());
      } catch (err) {
        return json({ error: err instanceof Error ? err.message : String(err) }, 400);
      }
      return json({ knobs: target.configure(patch) });
    }
    case "POST /emulator/reset":
      target.reset();
      return json({ ok: true });
    default:
      await req.body?.cancel();
      return json({ error: `no emulator endpoint ${route}` }, 404);
  }
}
