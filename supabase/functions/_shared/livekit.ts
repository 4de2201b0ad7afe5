// The LiveKit clients (the real livekit-server-sdk) and the mapping of their errors.
import {
  AccessToken,
  AgentDispatchClient,
  RoomServiceClient,
  ServerError,
  SipClient,
} from "livekit-server-sdk";
import { type Config, requireLiveKit } from "./config.ts";
import { UpstreamError } from "./errors.ts";
import { redactSecrets } from "./log.ts";

export interface LiveKit {
  sip: SipClient;
  dispatch: AgentDispatchClient;
  rooms: RoomServiceClient;
}

const cache = new Map<string, LiveKit>();

/** Longer than livekit-server's 30 s wait for a SIP participant to join. */
export const REQUEST_TIMEOUT_SEC = 35;
/** Longer than livekit-server's 80 s wait on a dial with wait_until_answered. */
export const DIAL_TIMEOUT_SEC = 85;

/** Clients for the configured LiveKit project; key and secret always passed explicitly. */
/**
 * A LiveKit token for one room that can join it but neither publish nor subscribe: what the
 * product hands an agent for call-report and transfer-call on that call (agent_auth.ts).
 */
export async function roomToken(
  config: Config,
  room: string,
  identity: string,
  ttlSec: number,
): Promise<string> {
  const { apiKey, apiSecret } = requireLiveKit(config);
  const token = new AccessToken(apiKey, apiSecret, { identity, ttl: Math.ceil(ttlSec) });
  token.addGrant({ room, roomJoin: true, canPublish: false, canSubscribe: false });
  return await token.toJwt();
}

export function liveKit(config: Config): LiveKit {
  const { host, apiKey, apiSecret } = requireLiveKit(config);
  const key = `${host}|${apiKey}`;
  let clients = cache.get(key);
  if (!clients) {
    // livekit-server-sdk replays a request to another region on a transport error (its own
    // timeout included) or any 5xx when the host is on LiveKit Cloud, and LiveKit does not
    // de-duplicate CreateSIPParticipant: a replayed dial rings the callee again. So no
    // client ever fails over, and the timeout outlasts the server's own waits (30 s for the
    // SIP participant to join; dials pass DIAL_TIMEOUT_SEC for the wait until answered).
    const options = { requestTimeout: REQUEST_TIMEOUT_SEC, failover: false };
    clients = {
      sip: new SipClient(host, apiKey, apiSecret, options),
      dispatch: new AgentDispatchClient(host, apiKey, apiSecret, options),
      rooms: new RoomServiceClient(host, apiKey, apiSecret, options),
    };
    for (const client of [clients.sip, clients.dispatch, clients.rooms]) sendOnce(client, host);
    cache.set(key, clients);
  }
  return clients;
}

type Rpc = {
  request(
    service: string,
    method: string,
    data: unknown,
    headers: Record<string, string>,
    timeoutSec?: number,
  ): Promise<unknown>;
};

/**
 * Deno's fetch sends a request again by itself when a reused keep-alive connection closes
 * before an answer; for a dial that LiveKit already placed, that rings the callee twice.
 * Each request that creates something (a dispatch, a dial, a trunk) therefore goes over a
 * connection of its own (never reused, so never resent); every request goes once, with no
 * failover, and fails exactly as the SDK's Twirp client would.
 */
const CREATES = /^(Create|Transfer)/;

/**
 * The client for what creates: it keeps no idle connection, so each request opens one of its own
 * and no request ever goes over a connection an earlier one used. One for the isolate: making a
 * client per request costs more than the connection. Where the runtime has no
 * `Deno.createHttpClient`, the platform's fetch is used as it is.
 */
let noReuse: Deno.HttpClient | undefined | null = null;
function noReuseClient() {
  if (noReuse === null) {
    const create = (Deno as {
      createHttpClient?: (o: { poolMaxIdlePerHost: number }) => Deno.HttpClient;
    }).createHttpClient;
    noReuse = create?.({ poolMaxIdlePerHost: 0 });
  }
  return noReuse;
}

/** A dial whose gate found no carrier slot in time: nothing was sent. */
export class SlotMissedError extends Error {
  constructor() {
    super("no carrier slot opened in time; nothing was sent");
  }
}

/** What a dial waits for just before its request is written, by the dial's room (gatedDial). */
const dialGates = new Map<string, () => Promise<boolean>>();

/**
 * Runs `dial` (a CreateSIPParticipant for `room`) so that, once its request is built and
 * signed, it waits for `gate` just before being written: false fails the dial with
 * SlotMissedError before anything is sent.
 */
export async function gatedDial(
  room: string,
  gate: () => Promise<boolean>,
  dial: () => Promise<void>,
) {
  dialGates.set(room, gate);
  try {
    await dial();
  } finally {
    dialGates.delete(room);
  }
}

function sendOnce(client: unknown, host: string) {
  const rpc = (client as { rpc: Rpc }).rpc;
  const base = host.replace(/^ws/, "http");
  rpc.request = async (service, method, data, headers, timeoutSec = REQUEST_TIMEOUT_SEC) => {
    // Reads, updates and deletes are safe to resend; what creates or dials is not.
    const http = CREATES.test(method) ? noReuseClient() : undefined;
    if (method === "CreateSIPParticipant") {
      const gate = dialGates.get(String((data as { roomName?: string }).roomName));
      if (gate && !(await gate())) throw new SlotMissedError();
    }
    const res = await fetch(new URL(`/twirp/livekit.${service}/${method}`, base), {
      method: "POST",
      headers: {
        "Content-Type": "application/json;charset=UTF-8",
        ...headers,
        "X-Livekit-Request-Id": crypto.randomUUID(),
      },
      body: JSON.stringify(data),
      signal: AbortSignal.timeout(timeoutSec * 1000),
      ...(http ? { client: http } : {}),
    });
    if (res.ok) return await res.json();
    let msg = "Unknown internal error";
    let code: string | undefined;
    let meta: Record<string, string> | undefined;
    if (res.headers.get("content-type") === "application/json") {
      const body = await res.json().catch(() => ({}));
      msg = body.msg ?? msg;
      code = body.code;
      meta = body.meta;
    } else {
      msg = await res.text();
    }
    throw new ServerError(res.statusText, msg, res.status, code, meta);
  };
}

/** What LiveKit said, in a form we can store and map. */
export interface LiveKitFailure {
  code: string;
  status: number | null;
  message: string;
  sipStatusCode: number | null;
  sipStatus: string | null;
}

export function describeLiveKitError(e: unknown): LiveKitFailure {
  if (e instanceof ServerError) {
    const meta = (e.metadata ?? {}) as Record<string, string>;
    const sip = meta.sip_status_code ? Number(meta.sip_status_code) : null;
    return {
      code: e.code ?? "unknown",
      status: e.status ?? null,
      // LiveKit's own messages can quote the request's token ("invalid token: <token>, ...").
      message: redactSecrets(e.message),
      sipStatusCode: Number.isFinite(sip) ? sip : null,
      sipStatus: meta.sip_status ?? null,
    };
  }
  const name = e instanceof Error ? e.name : "Error";
  const timeout = name === "TimeoutError" || name === "AbortError";
  return {
    code: timeout ? "timeout" : "unreachable",
    status: null,
    message: timeout ? "LiveKit did not answer in time" : `LiveKit could not be reached (${name})`,
    sipStatusCode: null,
    sipStatus: null,
  };
}

/** "Cannot <action>: LiveKit rejected ... (code)" as a 502 naming the upstream. */
export function liveKitError(action: string, e: unknown): UpstreamError {
  const f = describeLiveKitError(e);
  return new UpstreamError(
    "livekit",
    `Cannot ${action}: LiveKit ${f.status ? `answered ${f.status} ${f.code}` : f.message} (${
      f.status ? f.message : f.code
    })`,
    f.code,
    f.status,
    f.sipStatusCode ? { sipStatusCode: f.sipStatusCode, sipStatus: f.sipStatus } : {},
  );
}
