// Token checks shared by the Auth and REST stand-ins: the stack's ES256 session tokens
// (verified against its JWKS) and the legacy HS256 anon and service keys.
import * as jose from "jose";
import type { Keys } from "./keys.ts";

export type Claims = jose.JWTPayload & {
  role?: string;
  email?: string;
  session_id?: string;
  is_anonymous?: boolean;
  [key: string]: unknown;
};

export class TokenError extends Error {
  constructor(readonly reason: "expired" | "invalid" | "malformed", message: string) {
    super(message);
  }
}

export function bearerToken(req: Request): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  return m ? m[1] : null;
}

export function tokenVerifier(keys: Pick<Keys, "jwks" | "jwtSecret">) {
  const jwks = jose.createLocalJWKSet(keys.jwks as jose.JSONWebKeySet);
  const secret = new TextEncoder().encode(keys.jwtSecret);
  return async function verify(token: string): Promise<Claims> {
    let alg: string | undefined;
    try {
      alg = jose.decodeProtectedHeader(token).alg;
    } catch {
      throw new TokenError("malformed", "token is malformed");
    }
    try {
      const { payload } = alg === "HS256"
        ? await jose.jwtVerify(token, secret, { algorithms: ["HS256"] })
        : await jose.jwtVerify(token, jwks, { algorithms: ["ES256"] });
      return payload as Claims;
    } catch (e) {
      if (e instanceof jose.errors.JWTExpired) throw new TokenError("expired", "token is expired");
      throw new TokenError("invalid", "unable to parse or verify signature");
    }
  };
}

export function randomToken(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...raw)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}
