// Local signing keys: an ES256 key for user session JWTs (published as JWKS, as Supabase
// Auth does for asymmetric keys) and a legacy HS256 secret for the anon and service keys.
import * as jose from "jose";

export interface Keys {
  issuer: string;
  jwks: { keys: jose.JWK[] };
  privateJwk: jose.JWK;
  jwtSecret: string;
  anonKey: string;
  serviceKey: string;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

export async function createKeys(supabaseUrl: string): Promise<Keys> {
  const issuer = `${supabaseUrl}/auth/v1`;
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = randomHex(8);
  const publicJwk = { ...await jose.exportJWK(publicKey), kid, alg: "ES256", use: "sig" };
  const privateJwk = { ...await jose.exportJWK(privateKey), kid, alg: "ES256" };
  const jwtSecret = randomHex(32);
  const secret = new TextEncoder().encode(jwtSecret);
  const legacy = (role: string) =>
    new jose.SignJWT({ role, iss: "supabase", ref: "local" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt()
      .setExpirationTime("10y")
      .sign(secret);
  return {
    issuer,
    jwks: { keys: [publicJwk] },
    privateJwk,
    jwtSecret,
    anonKey: await legacy("anon"),
    serviceKey: await legacy("service_role"),
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
