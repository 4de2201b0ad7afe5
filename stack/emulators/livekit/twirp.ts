/**
 * Twirp wire format as LiveKit's Go servers speak it: POST /twirp/<pkg.Service>/<Method>,
 * JSON (or protobuf) bodies, and errors as {"code","msg","meta"?} with
 * Content-Type exactly application/json.
 */
import { SIPStatus } from "@livekit/protocol";
import type { ClaimGrants } from "./auth.ts";

export type JsonValue = Parameters<typeof SIPStatus.fromJson>[0];

/** The part of a protobuf-es message the emulator relies on. */
export interface ProtoMessage {
  toJson(options?: { useProtoFieldName?: boolean; emitDefaultValues?: boolean }): JsonValue;
  toBinary(): Uint8Array;
}

export interface ProtoType<T extends ProtoMessage> {
  readonly typeName: string;
  fromJson(json: JsonValue, options?: { ignoreUnknownFields?: boolean }): T;
  fromBinary(bytes: Uint8Array): T;
}

export type TwirpCode =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "malformed"
  | "deadline_exceeded"
  | "not_found"
  | "bad_route"
  | "already_exists"
  | "permission_denied"
  | "unauthenticated"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "dataloss";

export const HTTP_STATUS: Record<TwirpCode, number> = {
  canceled: 408,
  unknown: 500,
  invalid_argument: 400,
  malformed: 400,
  deadline_exceeded: 408,
  not_found: 404,
  bad_route: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  dataloss: 500,
};

/** gRPC numeric codes, used in the google.rpc.Status carried by `meta.error_details`. */
export const GRPC_CODE: Record<TwirpCode, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  malformed: 3,
  deadline_exceeded: 4,
  not_found: 5,
  bad_route: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  dataloss: 15,
  unauthenticated: 16,
};

export class TwirpError extends Error {
  constructor(
    readonly code: TwirpCode,
    message: string,
    readonly meta: Record<string, string> = {},
  ) {
    super(message);
    this.name = "TwirpError";
  }
}

export function errorResponse(err: TwirpError): Response {
  const body: { code: TwirpCode; msg: string; meta?: Record<string, string> } = {
    code: err.code,
    msg: err.message,
  };
  if (Object.keys(err.meta).length > 0) body.meta = err.meta;
  return new Response(JSON.stringify(body), {
    status: HTTP_STATUS[err.code],
    headers: { "Content-Type": "application/json" },
  });
}

/** Go Twirp's bad_route error, with the route in its meta. */
export function badRoute(msg: string, httpMethod: string, path: string): TwirpError {
  return new TwirpError("bad_route", msg, { twirp_invalid_route: `${httpMethod} ${path}` });
}

/** Per-request facts a handler may use. */
export interface CallContext {
  grants: ClaimGrants | null;
  /** X-Livekit-Request-Id: the SDK keeps it stable across its own retries. */
  requestId: string | null;
  /** The emulator listener (region) the request arrived at. */
  region: string;
  /**
   * When the request reached the emulator, plus the latency knob (ms since the epoch). What it
   * sets off is dated from then: this process, which the stack shares with the functions,
   * getting to it late under load is no time LiveKit would take.
   */
  receivedAt: number;
}

export interface Method {
  decodeJson(json: JsonValue): ProtoMessage;
  decodeBinary(bytes: Uint8Array): ProtoMessage;
  handle(req: ProtoMessage, ctx: CallContext): Promise<ProtoMessage>;
}

export function method<Req extends ProtoMessage>(
  type: ProtoType<Req>,
  handle: (req: Req, ctx: CallContext) => ProtoMessage | Promise<ProtoMessage>,
): Method {
  return {
    decodeJson: (json) => type.fromJson(json, { ignoreUnknownFields: true }),
    decodeBinary: (bytes) => type.fromBinary(bytes),
    handle: async (req, ctx) => await handle(req as Req, ctx),
  };
}

export interface Service {
  /** Implemented methods. */
  methods: Record<string, Method>;
  /** Methods the real service has but the emulator does not implement (answer `unimplemented`). */
  unimplemented?: readonly string[];
}

/** Real LiveKit answers protojson with proto field names and every field present. */
export function encodeJson(msg: ProtoMessage): string {
  return JSON.stringify(msg.toJson({ useProtoFieldName: true, emitDefaultValues: true }));
}

// Minimal protobuf encoding for google.rpc.Status{code, message, details: [Any]}, which LiveKit
// puts base64-encoded into meta.error_details so Go clients can recover typed error details.

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  for (let i = 0; i < 5; i++) {
    if (v < 0x80) {
      out.push(v);
      return out;
    }
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  return out;
}

function field(tag: number, bytes: Uint8Array): number[] {
  return [tag, ...varint(bytes.length), ...bytes];
}

export function encodeErrorDetails(
  code: TwirpCode,
  message: string,
  detail: ProtoMessage & { getType(): { typeName: string } },
): string {
  const enc = new TextEncoder();
  const any = new Uint8Array([
    ...field(0x0a, enc.encode(`type.googleapis.com/${detail.getType().typeName}`)),
    ...field(0x12, detail.toBinary()),
  ]);
  const status = new Uint8Array([
    0x08,
    ...varint(GRPC_CODE[code]),
    ...field(0x12, enc.encode(message)),
    ...field(0x1a, any),
  ]);
  let bin = "";
  for (const b of status) bin += String.fromCharCode(b);
  return btoa(bin);
}
