// Local signing keys: an ES256 key for user session JWTs (published as JWKS, as Supabase
// Auth does for asymmetric keys), and the project's API keys: in "legacy" mode a HS256 secret
// signing the anon and service_role JWTs; in "new" mode (a project with only the new API keys)
// an `sb_publishable_` and an `sb_secret_` key, which are not JWTs, and no HS256 secret at all.
import * as jose from "jose";
import { type Claims, TokenError, tokenVerifier } from "./jwt.ts";

export type KeyMode = "legacy" | "new";

export interface Keys {
  mode: KeyMode;
  issuer: string;
  jwks: { keys: jose.JWK[] };
  privateJwk: jose.JWK;
  /** The legacy HS256 secret; "" in "new" mode: there is none, and HS256 tokens are refused. */
  jwtSecret: string;
  /** The anon key: the legacy anon JWT, or the `sb_publishable_` key. */
  anonKey: string;
  /** The service key: the legacy service_role JWT, or the `sb_secret_` key. */
  serviceKey: string;
}

/** An API key of the new kind (`sb_publishable_...`, `sb_secret_...`), known or not. */
export const NEW_API_KEY = /^sb_(publishable|secret)_/;

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function randomKeyBody(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function createKeys(supabaseUrl: string, mode: KeyMode = "legacy"): Promise<Keys> {
  const issuer = `${supabaseUrl}/auth/v1`;
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = randomHex(8);
  const publicJwk = { ...await jose.exportJWK(publicKey), kid, alg: "ES256", use: "sig" };
  const privateJwk = { ...await jose.exportJWK(privateKey), kid, alg: "ES256" };
  if (mode === "new") {
    return {
      mode,
      issuer,
      jwks: { keys: [publicJwk] },
      privateJwk,
      jwtSecret: "",
      anonKey: `sb_publishable_${randomKeyBody()}`,
      serviceKey: `sb_secret_${randomKeyBody()}`,
    };
  }
  const jwtSecret = randomHex(32);
  const secret = new TextEncoder().encode(jwtSecret);
  const legacy = (role: string) =>
    new jose.SignJWT({ role, iss: "supabase", ref: "local" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt()
      .setExpirationTime("10y")
      .sign(secret);
  return {
    mode,
    issuer,
    jwks: { keys: [publicJwk] },
    privateJwk,
    jwtSecret,
    anonKey: await legacy("anon"),
    serviceKey: await legacy("service_role"),
  };
}

/**
 * The claims a bearer token stands for, as the Auth and REST stand-ins see it behind Supabase's
 * gateway: the project's `sb_publishable_` key is the anon role and its `sb_secret_` key the
 * service_role (the gateway swaps them for a JWT of that role); any other `sb_` key, and an HS256
 * token where there is no HS256 secret, is refused; other tokens are verified (jwt.ts).
 */
export function keyVerifier(keys: Keys): (token: string) => Promise<Claims> {
  const verifyJwt = keys.mode === "new" ? null : tokenVerifier(keys);
  // HS256 is refused before this verifier is reached; its secret is never used.
  const es256Only = tokenVerifier({ jwks: keys.jwks, jwtSecret: randomHex(32) });
  return async (token) => {
    if (NEW_API_KEY.test(token)) {
      if (keys.mode === "new" && token === keys.anonKey) return { role: "anon" };
      if (keys.mode === "new" && token === keys.serviceKey) return { role: "service_role" };
      throw new TokenError("invalid", "unknown API key");
    }
    if (verifyJwt) return await verifyJwt(token);
    let alg: string | undefined;
    try {
      alg = jose.decodeProtectedHeader(token).alg;
    } catch {
      throw new TokenError("malformed", "token is malformed");
    }
    if (alg === "HS256") throw new TokenError("invalid", "HS256 tokens are not accepted");
    return await es256Only(token);
  };
}

/** Mints a session access token for a user, shaped like Supabase Auth's. */
export async function mintUserToken(
  keys: Pick<Keys, "issuer" | "privateJwk">,
  user: { id: string; email?: string },
  opts: { expiresIn?: string | number; issuer?: string } = {},
): Promise<string> {
  const key = await jose.importJWK(keys.privateJwk, "ES256");
  return await new jose.SignJWT({
    role: "authenticated",
    aud: "authenticated",
    email: user.email ?? "",
    session_id: crypto.randomUUID(),
    aal: "aal1",
  })
    .setProtectedHeader({ alg: "ES256", kid: keys.privateJwk.kid, typ: "JWT" })
    .setSubject(user.id)
    .setIssuer(opts.issuer ?? keys.issuer)
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? "1h")
    .sign(key);
}
