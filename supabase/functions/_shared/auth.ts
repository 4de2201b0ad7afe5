// Who is calling: a user (session JWT verified against the JWKS, or the legacy HS256
// secret where configured, whose user still exists) or the service (the service key,
// compared in constant time).
import * as jose from "jose";
import type { Config } from "./config.ts";
import { AuthError, ForbiddenError } from "./errors.ts";
import type { UserClaims } from "./db.ts";
import type { Deps } from "./deps.ts";

export type Requester =
  | { kind: "user"; userId: string; claims: UserClaims }
  | { kind: "service" };

const remoteSets = new Map<string, ReturnType<typeof jose.createRemoteJWKSet>>();

function keySet(config: Config) {
  if (config.jwks) return jose.createLocalJWKSet(config.jwks as jose.JSONWebKeySet);
  const url = `${config.supabaseUrl}/auth/v1/.well-known/jwks.json`;
  let set = remoteSets.get(url);
  if (!set) {
    set = jose.createRemoteJWKSet(new URL(url), {
      cooldownDuration: 30_000,
      timeoutDuration: 5_000,
    });
    remoteSets.set(url, set);
  }
  return set;
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

export function bearer(req: Request): string | null {
  const header = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** Supabase Auth's sessions are for this audience; a token minted for another is not ours. */
const USER_AUDIENCE = "authenticated";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Verifies the requester. Throws AuthError (401) for anything not proven. */
export async function authenticate(
  req: Request,
  { config, sql }: Pick<Deps, "config" | "sql">,
): Promise<Requester> {
  const token = bearer(req);
  if (!token) throw new AuthError("Missing Authorization: Bearer <token>.");
  // Every key is compared, so the time taken does not tell which one came close.
  if (config.serviceKeys.map((k) => constantTimeEqual(token, k)).some(Boolean)) {
    return { kind: "service" };
  }
  if (/^sb_(secret|publishable)_/.test(token)) {
    throw new AuthError(
      "This API key is not accepted here: call with a user's session token, or the project's secret key.",
    );
  }
  let header: jose.ProtectedHeaderParameters;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch {
    throw new AuthError("The token is not a JWT.");
  }
  let payload: jose.JWTPayload;
  try {
    if (header.alg === "HS256") {
      if (!config.jwtSecret) {
        throw new AuthError("HS256 user tokens are not accepted by this project.");
      }
      ({ payload } = await jose.jwtVerify(token, new TextEncoder().encode(config.jwtSecret), {
        algorithms: ["HS256"],
        audience: USER_AUDIENCE,
      }));
    } else {
      ({ payload } = await jose.jwtVerify(token, keySet(config), {
        algorithms: ["ES256", "RS256", "EdDSA"],
        issuer: `${config.supabaseUrl}/auth/v1`,
        audience: USER_AUDIENCE,
      }));
    }
  } catch (e) {
    if (e instanceof AuthError) throw e;
    const reason = e instanceof jose.errors.JWTExpired
      ? "The token has expired."
      : e instanceof jose.errors.JWTClaimValidationFailed
      ? `The token's ${e.claim} claim is not accepted.`
      : "The token could not be verified.";
    throw new AuthError(reason);
  }
  if (
    payload.role !== "authenticated" || typeof payload.sub !== "string" || !UUID.test(payload.sub)
  ) {
    throw new AuthError("The token is not a user session.");
  }
  // A signed token outlives its user: a deleted user is no longer anyone.
  const [user] = await sql<{ refused: boolean }[]>`
    select ${payload.is_anonymous === true}
      and not coalesce((select allow_anonymous from internal.platform_settings), false) as refused
    from auth.users where id = ${payload.sub} and deleted_at is null`;
  if (!user) throw new AuthError("The token's user no longer exists.");
  // As in every table's policy (internal.account_uid): an anonymous session acts for nobody.
  if (user.refused) {
    throw new ForbiddenError(
      "Anonymous sessions cannot use this project: sign up or sign in with an account.",
    );
  }
  return { kind: "user", userId: payload.sub, claims: payload as UserClaims };
}

/** A requester with a user session. */
export type User = Extract<Requester, { kind: "user" }>;

export function requireUser(requester: Requester): User {
  if (requester.kind !== "user") {
    throw new ForbiddenError("This call needs a user session, not the service key.");
  }
  return requester;
}

export function requireService(requester: Requester): void {
  if (requester.kind !== "service") {
    throw new ForbiddenError("Only the service may call this function.");
  }
}
