/**
 * LiveKit API auth: `Authorization: Bearer <JWT>` (HS256, iss = API key, exp required,
 * one minute of leeway), plus signing of webhook tokens.
 */

export interface VideoGrant {
  roomCreate?: boolean;
  roomList?: boolean;
  roomAdmin?: boolean;
  roomRecord?: boolean;
  room?: string;
  destinationRoom?: string;
}

export interface SIPGrant {
  admin?: boolean;
  call?: boolean;
}

export interface ClaimGrants {
  video?: VideoGrant;
  sip?: SIPGrant;
}

export type AuthResult =
  | { ok: true; grants: ClaimGrants | null }
  | { ok: false; message: string };

const LEEWAY_SECONDS = 60;
const enc = new TextEncoder();

function b64urlEncode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlDecode(s: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  const padded = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  try {
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function decodeJsonPart(part: string): Record<string, unknown> | null {
  const bytes = b64urlDecode(part);
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      usage,
    ],
  );
}

export async function signJwt(payload: Record<string, unknown>, secret: string): Promise<string> {
  const head = b64urlEncode(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = b64urlEncode(enc.encode(JSON.stringify(payload)));
  const sig = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret, "sign"),
    enc.encode(`${head}.${body}`),
  );
  return `${head}.${body}.${b64urlEncode(new Uint8Array(sig))}`;
}

/**
 * Verifies an API token the way LiveKit's auth middleware does (livekit-server
 * pkg/service/auth.go): a token that does not parse is `invalid authorization token`; an unknown
 * key `invalid API key: <key>`; a failed verification (golang-jwt's error) repeats the whole
 * token: `invalid token: <token>, error: <error>`.
 */
export async function verifyToken(
  token: string,
  apiKey: string,
  apiSecret: string,
): Promise<AuthResult> {
  const unparsable = { ok: false, message: "invalid authorization token" } as const;
  const invalid = (error: string): AuthResult => ({
    ok: false,
    message: `invalid token: ${token}, error: ${error}`,
  });
  const parts = token.split(".");
  if (parts.length !== 3) return unparsable;
  const header = decodeJsonPart(parts[0]);
  const claims = decodeJsonPart(parts[1]);
  const sig = b64urlDecode(parts[2]);
  if (!header || !claims || !sig) return unparsable;
  if (claims.iss !== apiKey) {
    // livekit-server: errors.New("invalid API key: " + v.APIKey()).
    return {
      ok: false,
      message: `invalid API key: ${typeof claims.iss === "string" ? claims.iss : ""}`,
    };
  }
  if (header.alg !== "HS256") {
    return invalid(`token signature is invalid: signing method ${String(header.alg)} is invalid`);
  }
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(apiSecret, "verify"),
    sig,
    enc.encode(`${parts[0]}.${parts[1]}`),
  );
  if (!valid) return invalid("token signature is invalid: signature is invalid");
  const now = Date.now() / 1000;
  if (typeof claims.exp !== "number") {
    return invalid(
      "token has invalid claims: token is missing required claim: exp claim is required",
    );
  }
  if (now > claims.exp + LEEWAY_SECONDS) {
    return invalid("token has invalid claims: token is expired");
  }
  if (typeof claims.nbf === "number" && now < claims.nbf - LEEWAY_SECONDS) {
    return invalid("token has invalid claims: token is not valid yet");
  }
  return {
    ok: true,
    grants: { video: objectOrUndefined(claims.video), sip: objectOrUndefined(claims.sip) },
  };
}

function objectOrUndefined<T>(v: unknown): T | undefined {
  return v && typeof v === "object" && !Array.isArray(v) ? v as T : undefined;
}

/**
 * The middleware step: no header means no grants (handlers then answer
 * "permissions denied"); a malformed or unverifiable token is a plain-text 401.
 */
export function authenticate(
  req: Request,
  url: URL,
  apiKey: string,
  apiSecret: string,
): Promise<AuthResult> {
  const header = req.headers.get("Authorization");
  let token: string | null;
  if (header) {
    if (!header.startsWith("Bearer ")) {
      return Promise.resolve({
        ok: false,
        message: "invalid authorization header. Must start with Bearer ",
      });
    }
    token = header.slice("Bearer ".length);
  } else {
    token = url.searchParams.get("access_token");
  }
  if (!token) return Promise.resolve({ ok: true, grants: null });
  return verifyToken(token, apiKey, apiSecret);
}

export function canAdminSip(g: ClaimGrants | null): boolean {
  return g?.sip?.admin === true;
}

export function canCallSip(g: ClaimGrants | null): boolean {
  return g?.sip?.call === true;
}

export function canAdminRoom(g: ClaimGrants | null, room: string): boolean {
  return g?.video?.roomAdmin === true && (g.video.room ?? "") === room;
}

export function canCreateRoom(g: ClaimGrants | null): boolean {
  return g?.video?.roomCreate === true;
}

export function canListRooms(g: ClaimGrants | null): boolean {
  return g?.video?.roomList === true;
}

/** Webhook token: iss = API key, five minutes of validity, sha256 = base64(SHA-256(body)). */
export async function webhookToken(
  body: string,
  apiKey: string,
  apiSecret: string,
): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(body)));
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: apiKey, nbf: now, exp: now + 300, sha256: btoa(bin) }, apiSecret);
}
