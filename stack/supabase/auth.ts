// DEVELOPMENT STAND-IN for Supabase Auth (GoTrue) at <SUPABASE_URL>/auth/v1: email + password
// sign-up (confirmed at once), password sign-in, anonymous sign-in, refresh token rotation,
// get and update the user, sign-out and the JWKS. Users, sessions and refresh tokens live in
// GoTrue's tables (auth.users, auth.sessions, auth.refresh_tokens); passwords are bcrypt
// hashes made by pgcrypto. Everything else answers 404 naming what is not covered.
// Sources for each behaviour: stack/supabase/README.md.
import * as jose from "jose";
import type postgres from "postgres";
import { type Keys, keyVerifier } from "./keys.ts";
import { bearerToken, type Claims, randomToken, TokenError } from "./jwt.ts";

export interface AuthOptions {
  sql: postgres.Sql;
  keys: Keys;
  /** Access token lifetime (GoTrue's JWT_EXP, default 3600 s). */
  expiresInSec?: number;
  /** How long a just-rotated refresh token may still be used (GoTrue's default 10 s). */
  reuseIntervalSec?: number;
}

const API_VERSION = "2024-01-01";
const MIN_PASSWORD = 6;
const MAX_PASSWORD = 72;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

interface UserRow {
  id: string;
  aud: string | null;
  role: string | null;
  email: string | null;
  phone: string | null;
  email_confirmed_at: Date | null;
  phone_confirmed_at: Date | null;
  confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Record<string, unknown> | null;
  raw_user_meta_data: Record<string, unknown> | null;
  is_anonymous: boolean;
  banned_until: Date | null;
  created_at: Date;
  updated_at: Date;
}

const USER_COLUMNS =
  "id, aud, role, email, phone, email_confirmed_at, phone_confirmed_at, confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, is_anonymous, banned_until, created_at, updated_at";

/** A GoTrue error: status, error code and message (and extra body fields). */
class AuthApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const iso = (d: Date | null) => (d ? d.toISOString() : undefined);

/** The user object GoTrue returns (timestamps that are unset are left out). */
function userJson(u: UserRow) {
  const identities = u.email
    ? [{
      identity_id: u.id,
      id: u.id,
      user_id: u.id,
      identity_data: { email: u.email, email_verified: true, phone_verified: false, sub: u.id },
      provider: "email",
      last_sign_in_at: iso(u.last_sign_in_at),
      created_at: iso(u.created_at),
      updated_at: iso(u.updated_at),
      email: u.email,
    }]
    : [];
  return {
    id: u.id,
    aud: u.aud ?? "authenticated",
    role: u.role ?? "authenticated",
    email: u.email ?? "",
    email_confirmed_at: iso(u.email_confirmed_at),
    phone: u.phone ?? "",
    phone_confirmed_at: iso(u.phone_confirmed_at),
    confirmed_at: iso(u.confirmed_at),
    last_sign_in_at: iso(u.last_sign_in_at),
    app_metadata: u.raw_app_meta_data ?? {},
    user_metadata: u.raw_user_meta_data ?? {},
    identities,
    created_at: iso(u.created_at),
    updated_at: iso(u.updated_at),
    is_anonymous: u.is_anonymous,
  };
}

async function readBody(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && !Array.isArray(body)) return body;
  } catch { /* below */ }
  throw new AuthApiError(400, "bad_json", "Could not parse request body as JSON");
}

const str = (v: unknown) => (typeof v === "string" ? v : "");

export function authHandler(opts: AuthOptions) {
  const { sql, keys } = opts;
  const expiresIn = opts.expiresInSec ?? 3600;
  const reuseInterval = opts.reuseIntervalSec ?? 10;
  // Session JWTs; behind the gateway the project's sb_ keys stand for their role (keys.ts).
  const verify = keyVerifier(keys);
  let signingKey: Promise<CryptoKey | Uint8Array> | null = null;

  async function accessToken(u: UserRow, sessionId: string, amr: { method: string; at: Date }[]) {
    signingKey ??= jose.importJWK(keys.privateJwk, "ES256") as Promise<CryptoKey>;
    const now = Math.floor(Date.now() / 1000);
    const exp = now + expiresIn;
    const token = await new jose.SignJWT({
      iss: keys.issuer,
      sub: u.id,
      aud: u.aud ?? "authenticated",
      exp,
      iat: now,
      email: u.email ?? "",
      phone: u.phone ?? "",
      app_metadata: u.raw_app_meta_data ?? {},
      user_metadata: u.raw_user_meta_data ?? {},
      role: u.role ?? "authenticated",
      aal: "aal1",
      amr: amr.map((a) => ({ method: a.method, timestamp: Math.floor(a.at.getTime() / 1000) })),
      session_id: sessionId,
      is_anonymous: u.is_anonymous,
    })
      .setProtectedHeader({ alg: "ES256", kid: keys.privateJwk.kid, typ: "JWT" })
      .sign(await signingKey);
    return { token, exp };
  }

  async function sessionResponse(
    tx: postgres.TransactionSql,
    u: UserRow,
    sessionId: string,
    refreshToken: string,
  ) {
    const amr = await tx<{ method: string; at: Date }[]>`
      select authentication_method as method, created_at as at from auth.mfa_amr_claims
      where session_id = ${sessionId} order by created_at`;
    const { token, exp } = await accessToken(u, sessionId, amr);
    return {
      access_token: token,
      token_type: "bearer",
      expires_in: expiresIn,
      expires_at: exp,
      refresh_token: refreshToken,
      user: userJson(u),
    };
  }

  /** A new session with its first refresh token, as every sign-in makes. */
  async function newSession(tx: postgres.TransactionSql, u: UserRow, method: string, req: Request) {
    const sessionId = crypto.randomUUID();
    const token = randomToken(24);
    await tx`insert into auth.sessions (id, user_id, aal, user_agent, refreshed_at)
      values (${sessionId}, ${u.id}, 'aal1', ${req.headers.get("user-agent")}, now())`;
    await tx`insert into auth.mfa_amr_claims (session_id, authentication_method)
      values (${sessionId}, ${method})`;
    await tx`insert into auth.refresh_tokens (token, user_id, session_id)
      values (${token}, ${u.id}, ${sessionId})`;
    const [signedIn] = await tx.unsafe<UserRow[]>(
      `update auth.users set last_sign_in_at = now(), updated_at = now() where id = $1
       returning ${USER_COLUMNS}`,
      [u.id],
    );
    return await sessionResponse(tx, signedIn, sessionId, token);
  }

  function checkPassword(password: string) {
    if (password.length > MAX_PASSWORD) {
      throw new AuthApiError(
        400,
        "validation_failed",
        `Password cannot be longer than ${MAX_PASSWORD} characters`,
      );
    }
    if (password.length < MIN_PASSWORD) {
      throw new AuthApiError(
        422,
        "weak_password",
        `Password should be at least ${MIN_PASSWORD} characters.`,
        { weak_password: { reasons: ["length"] } },
      );
    }
  }

  function checkEmail(email: string) {
    if (email.length > 255) {
      throw new AuthApiError(400, "validation_failed", "An email address is too long");
    }
    if (!EMAIL.test(email)) {
      throw new AuthApiError(
        400,
        "validation_failed",
        "Unable to validate email address: invalid format",
      );
    }
  }

  async function signup(req: Request) {
    const body = await readBody(req);
    const email = str(body.email).trim().toLowerCase();
    const phone = str(body.phone).trim();
    const password = str(body.password);
    const data = body.data && typeof body.data === "object" && !Array.isArray(body.data)
      ? body.data as Record<string, unknown>
      : {};
    if (email && phone) {
      throw new AuthApiError(
        400,
        "validation_failed",
        "Only an email address or phone number should be provided on signup.",
      );
    }
    if (phone) {
      throw new AuthApiError(
        400,
        "validation_failed",
        "Phone sign-up needs an SMS provider, which the local Auth stand-in does not have; sign up with an email address.",
      );
    }
    if (!email) {
      // GoTrue treats a sign-up without email and phone as an anonymous sign-in.
      return await sql.begin(async (tx) => {
        const [u] = await tx.unsafe<UserRow[]>(
          `insert into auth.users (aud, role, raw_app_meta_data, raw_user_meta_data, is_anonymous)
           values ('authenticated', 'authenticated', '{}'::jsonb, $1::text::jsonb, true)
           returning ${USER_COLUMNS}`,
          [JSON.stringify(data)],
        );
        return await newSession(tx, u, "anonymous", req);
      });
    }
    checkEmail(email);
    if (!password) {
      throw new AuthApiError(400, "validation_failed", "Signup requires a valid password");
    }
    checkPassword(password);
    try {
      return await sql.begin(async (tx) => {
        const [u] = await tx.unsafe<UserRow[]>(
          `insert into auth.users (aud, role, email, encrypted_password, email_confirmed_at,
             raw_app_meta_data, raw_user_meta_data)
           values ('authenticated', 'authenticated', $1,
             extensions.crypt($2, extensions.gen_salt('bf', 10)), now(),
             '{"provider": "email", "providers": ["email"]}'::jsonb, $3::text::jsonb)
           returning ${USER_COLUMNS}`,
          [email, password, JSON.stringify(data)],
        );
        return await newSession(tx, u, "password", req);
      });
    } catch (e) {
      if ((e as { code?: string }).code === "23505") {
        throw new AuthApiError(422, "user_already_exists", "User already registered");
      }
      throw e;
    }
  }

  async function passwordGrant(req: Request) {
    const body = await readBody(req);
    const email = str(body.email).trim().toLowerCase();
    const phone = str(body.phone).trim();
    const password = str(body.password);
    if (email && phone) {
      throw new AuthApiError(
        400,
        "validation_failed",
        "Only an email address or phone number should be provided on login.",
      );
    }
    if (!email && !phone) {
      throw new AuthApiError(
        400,
        "validation_failed",
        "An email address or phone number is required to sign in.",
      );
    }
    return await sql.begin(async (tx) => {
      const [u] = await tx.unsafe<(UserRow & { ok: boolean })[]>(
        `select ${USER_COLUMNS},
           coalesce(encrypted_password <> '' and encrypted_password = extensions.crypt($3, encrypted_password), false) as ok
         from auth.users
         where deleted_at is null and (($1 <> '' and email = $1) or ($2 <> '' and phone = $2))`,
        [email, phone, password],
      );
      if (!u || !u.ok) {
        throw new AuthApiError(400, "invalid_credentials", "Invalid login credentials");
      }
      if (u.banned_until && u.banned_until > new Date()) {
        throw new AuthApiError(400, "user_banned", "User is banned");
      }
      if (email && !u.email_confirmed_at) {
        throw new AuthApiError(400, "email_not_confirmed", "Email not confirmed");
      }
      return await newSession(tx, u, "password", req);
    });
  }

  async function refreshGrant(req: Request) {
    const body = await readBody(req);
    const presented = str(body.refresh_token);
    if (!presented) throw new AuthApiError(400, "validation_failed", "refresh_token required");
    let failure: AuthApiError | null = null;
    const result = await sql.begin(async (tx) => {
      const [rt] = await tx<
        {
          id: string;
          token: string;
          revoked: boolean;
          updated_at: Date;
          session_id: string;
          not_after: Date | null;
          user_id: string;
        }[]
      >`select rt.id, rt.token, rt.revoked, rt.updated_at, rt.session_id, s.not_after, s.user_id
        from auth.refresh_tokens rt join auth.sessions s on s.id = rt.session_id
        where rt.token = ${presented}
        for update of rt, s`;
      if (!rt) {
        throw new AuthApiError(
          400,
          "refresh_token_not_found",
          "Invalid Refresh Token: Refresh Token Not Found",
        );
      }
      const [u] = await tx.unsafe<UserRow[]>(
        `select ${USER_COLUMNS} from auth.users where id = $1 and deleted_at is null`,
        [rt.user_id],
      );
      if (!u) {
        throw new AuthApiError(
          400,
          "refresh_token_not_found",
          "Invalid Refresh Token: Refresh Token Not Found",
        );
      }
      if (u.banned_until && u.banned_until > new Date()) {
        throw new AuthApiError(400, "user_banned", "Invalid Refresh Token: User Banned");
      }
      if (rt.not_after && rt.not_after < new Date()) {
        throw new AuthApiError(400, "session_expired", "Invalid Refresh Token: Session Expired");
      }
      let issued: string | null = null;
      if (rt.revoked) {
        const [active] = await tx<{ token: string; parent: string | null }[]>`
          select token, parent from auth.refresh_tokens
          where session_id = ${rt.session_id} and not revoked order by id desc limit 1`;
        if (active && active.parent === rt.token) {
          // The client lost the answer to its last refresh: hand back the current token.
          issued = active.token;
        } else if (!active || Date.now() > rt.updated_at.getTime() + reuseInterval * 1000) {
          // Reuse of an old token: every token of the session is revoked (and that sticks).
          await tx`update auth.refresh_tokens set revoked = true
            where session_id = ${rt.session_id} and not revoked`;
          failure = new AuthApiError(
            400,
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
          );
          return null;
        }
      }
      if (!issued) {
        issued = randomToken(24);
        await tx`update auth.refresh_tokens set revoked = true, updated_at = now() where id = ${rt.id}`;
        await tx`insert into auth.refresh_tokens (token, user_id, session_id, parent)
          values (${issued}, ${u.id}, ${rt.session_id}, ${rt.token})`;
      }
      await tx`update auth.sessions set refreshed_at = now(), updated_at = now(),
        user_agent = ${req.headers.get("user-agent")} where id = ${rt.session_id}`;
      return await sessionResponse(tx, u, rt.session_id, issued);
    });
    if (failure) throw failure;
    return result;
  }

  /** The caller's verified claims, user and session, as GoTrue's requireAuthentication does. */
  async function authenticated(req: Request) {
    const token = bearerToken(req);
    if (!token) {
      throw new AuthApiError(
        401,
        "no_authorization",
        "This endpoint requires a valid Bearer token",
      );
    }
    let claims: Claims;
    try {
      claims = await verify(token);
    } catch (e) {
      const why = e instanceof TokenError && e.reason === "expired"
        ? "token has invalid claims: token is expired"
        : "unable to parse or verify signature, token is malformed";
      throw new AuthApiError(403, "bad_jwt", `invalid JWT: ${why}`);
    }
    if (typeof claims.sub !== "string" || !claims.sub) {
      throw new AuthApiError(403, "bad_jwt", "invalid claim: missing sub claim");
    }
    const [u] = await sql.unsafe<UserRow[]>(
      `select ${USER_COLUMNS} from auth.users
       where id::text = $1 and deleted_at is null`,
      [claims.sub],
    );
    if (!u) {
      throw new AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist");
    }
    const sessionId = typeof claims.session_id === "string" ? claims.session_id : null;
    if (sessionId) {
      const [s] = await sql`select id from auth.sessions
        where id::text = ${sessionId} and user_id = ${u.id}`;
      if (!s) {
        throw new AuthApiError(
          403,
          "session_not_found",
          "Session from session_id claim in JWT does not exist",
        );
      }
    }
    return { claims, user: u, sessionId };
  }

  async function updateUser(req: Request) {
    const { user } = await authenticated(req);
    const body = await readBody(req);
    const unsupported = ["email", "phone", "nonce", "code_challenge"].filter((k) =>
      body[k] !== undefined && body[k] !== null
    );
    if (unsupported.length > 0) {
      throw new AuthApiError(
        400,
        "validation_failed",
        `Changing ${
          unsupported.join(", ")
        } is not supported by the local Auth stand-in (it sends no email or SMS).`,
      );
    }
    const password = body.password === undefined ? null : str(body.password);
    if (password !== null) checkPassword(password);
    const data = body.data && typeof body.data === "object" && !Array.isArray(body.data)
      ? JSON.stringify(body.data)
      : null;
    const [u] = await sql.unsafe<UserRow[]>(
      `update auth.users set
         raw_user_meta_data = case when $2::text is null then raw_user_meta_data
                              else coalesce(raw_user_meta_data, '{}'::jsonb) || $2::text::jsonb end,
         encrypted_password = case when $3::text is null then encrypted_password
                              else extensions.crypt($3, extensions.gen_salt('bf', 10)) end,
         updated_at = now()
       where id = $1 returning ${USER_COLUMNS}`,
      [user.id, data, password],
    );
    return userJson(u);
  }

  async function logout(req: Request) {
    const { user, sessionId } = await authenticated(req);
    const scope = new URL(req.url).searchParams.get("scope") ?? "global";
    if (scope === "global") {
      await sql`delete from auth.sessions where user_id = ${user.id}`;
    } else if (scope === "local") {
      if (sessionId) await sql`delete from auth.sessions where id = ${sessionId}`;
    } else if (scope === "others") {
      await sql`delete from auth.sessions where user_id = ${user.id}
        and id::text <> ${sessionId ?? ""}`;
    } else {
      throw new AuthApiError(
        400,
        "validation_failed",
        `Unsupported logout scope "${scope}". Use global, local or others.`,
      );
    }
    return null;
  }

  const settings = {
    external: { email: true, phone: false, anonymous_users: true },
    disable_signup: false,
    mailer_autoconfirm: true,
    phone_autoconfirm: false,
    sms_provider: "",
    saml_enabled: false,
  };

  type Route = (req: Request) => Promise<unknown>;
  const routes: Record<string, Route> = {
    "GET /.well-known/jwks.json": () => Promise.resolve(keys.jwks),
    "GET /health": () =>
      Promise.resolve({
        version: "local-stand-in",
        name: "GoTrue",
        description: "Local development stand-in for Supabase Auth",
      }),
    "GET /settings": () => Promise.resolve(settings),
    "POST /signup": signup,
    "POST /token": (req) => {
      const grant = new URL(req.url).searchParams.get("grant_type");
      if (grant === "password") return passwordGrant(req);
      if (grant === "refresh_token") return refreshGrant(req);
      throw new AuthApiError(
        400,
        "invalid_credentials",
        grant
          ? `unsupported_grant_type: ${grant} is not supported by the local Auth stand-in`
          : "unsupported_grant_type",
      );
    },
    "GET /user": async (req) => userJson((await authenticated(req)).user),
    "PUT /user": updateUser,
    "POST /logout": logout,
  };

  /** `path` is the part after /auth/v1. */
  return async function handle(req: Request, path: string): Promise<Response> {
    const versioned = (req.headers.get("x-supabase-api-version") ?? "") >= API_VERSION;
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (versioned) headers["X-Supabase-Api-Version"] = API_VERSION;
    const route = routes[`${req.method} ${path.replace(/\/+$/, "") || "/"}`];
    try {
      if (!route) {
        throw new AuthApiError(
          404,
          "not_found",
          `${req.method} /auth/v1${path} is not covered by the local Auth stand-in (it serves ${
            Object.keys(routes).join(", ")
          }).`,
        );
      }
      const result = await route(req);
      if (result === null) return new Response(null, { status: 204, headers });
      return new Response(JSON.stringify(result), { status: 200, headers });
    } catch (e) {
      let err: AuthApiError;
      if (e instanceof AuthApiError) err = e;
      else if (isConnectionError(e)) {
        err = new AuthApiError(503, "unexpected_failure", "The database is unavailable.");
      } else {
        console.error(`auth stand-in: ${e instanceof Error ? e.stack : e}`);
        err = new AuthApiError(
          500,
          "unexpected_failure",
          "Unexpected failure, please check server logs for more information",
        );
      }
      headers["x-sb-error-code"] = err.code;
      const body = versioned
        ? { code: err.code, message: err.message, ...err.extra }
        : { code: err.status, error_code: err.code, msg: err.message, ...err.extra };
      return new Response(JSON.stringify(body), { status: err.status, headers });
    }
  };
}

/** postgres.js connection failures (as opposed to errors PostgreSQL answered with). */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" &&
    (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|CONNECTION_.*|CONNECT_TIMEOUT)$/.test(code) ||
      /^(08...|57P0[123]|53300)$/.test(code));
}
