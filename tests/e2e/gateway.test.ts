import assert from "node:assert/strict";
import * as jose from "jose";
import { call, createUser, sql, stack } from "../helpers/stack.ts";
import { mintUserToken } from "../../stack/keys.ts";

Deno.test("an unknown function gets a 404 JSON error", async () => {
  const res = await call("no-such-function", { token: stack.anonKey, body: {} });
  assert.equal(res.status, 404);
  assert.equal(res.body.error.code, "not_found");
});

Deno.test("the gateway serves the JWKS that user tokens verify against", async () => {
  const res = await fetch(`${stack.supabaseUrl}/auth/v1/.well-known/jwks.json`);
  const jwks = await res.json();
  assert.equal(res.status, 200);
  assert.equal(jwks.keys[0].kty, "EC");
  assert.equal(jwks.keys[0].d, undefined, "the private part is never published");
});

Deno.test("a CORS preflight is answered without a token", async () => {
  const res = await fetch(`${stack.supabaseUrl}/functions/v1/map-number`, {
    method: "OPTIONS",
    headers: { Origin: "https://app.example.com", "Access-Control-Request-Method": "POST" },
  });
  await res.body?.cancel();
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.match(res.headers.get("access-control-allow-headers") ?? "", /authorization/);
});

Deno.test("a token signed with another key gets 401 JSON", async () => {
  const user = await createUser("forged");
  const { privateKey } = await jose.generateKeyPair("ES256");
  const forged = await new jose.SignJWT({ role: "authenticated", aud: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: stack.privateJwk.kid })
    .setSubject(user.id).setIssuer(stack.issuer).setExpirationTime("1h").sign(privateKey);
  const res = await call("list-trunks", { token: forged, method: "GET" });
  assert.equal(res.status, 401);
  assert.equal(res.body.error.code, "unauthenticated");
});

Deno.test("an expired token gets 401 JSON", async () => {
  const user = await createUser("expired");
  const token = await mintUserToken(stack, user, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
  const res = await call("list-trunks", { token, method: "GET" });
  assert.equal(res.status, 401);
  assert.equal(res.body.error.code, "unauthenticated");
});

Deno.test("a token from another issuer gets 401 JSON from the function", async () => {
  const user = await createUser("issuer");
  const token = await mintUserToken(stack, user, { issuer: "https://evil.example.com/auth/v1" });
  const res = await call("list-trunks", { token, method: "GET" });
  assert.equal(res.status, 401);
  assert.match(res.body.error.message, /iss/);
});

Deno.test("an unsigned alg:none token gets 401 JSON", async () => {
  const user = await createUser("none");
  const header = btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "");
  const payload = btoa(
    JSON.stringify({
      sub: user.id,
      role: "authenticated",
      exp: Math.floor(Date.now() / 1000) + 600,
    }),
  )
    .replace(/=+$/, "");
  const res = await call("list-trunks", { token: `${header}.${payload}.`, method: "GET" });
  assert.equal(res.status, 401);
});

Deno.test("the anon key is not a user session", async () => {
  const res = await call("list-trunks", { token: stack.anonKey, method: "GET" });
  assert.equal(res.status, 401);
  assert.equal(res.body.error.code, "unauthenticated");
});

Deno.test("malformed JSON gets 400 JSON", async () => {
  const user = await createUser("badjson");
  const res = await call("map-number", { token: user.token, body: "{not json" });
  assert.equal(res.status, 400);
  assert.equal(res.body.error.code, "invalid_request");
});

Deno.test("a body failing the schema gets 400 naming every failing field", async () => {
  const user = await createUser("schema");
  const res = await call("map-number", {
    token: user.token,
    body: { phoneNumber: "555-1234", assistantId: "not-a-uuid", label: 7, extra: true },
  });
  assert.equal(res.status, 400);
  const fields = res.body.error.details.fields;
  assert.ok(fields.phoneNumber, "phoneNumber named");
  assert.ok(fields.assistantId, "assistantId named");
  assert.ok(fields.label, "label named");
  assert.equal(fields.extra, "unknown field");
});

Deno.test("a wrong method gets 405 JSON", async () => {
  const user = await createUser("method");
  const res = await call("map-number", { token: user.token, method: "GET" });
  assert.equal(res.status, 405);
  assert.equal(res.body.error.code, "method_not_allowed");
});

Deno.test("a service-only function refuses a user's token", async () => {
  const user = await createUser("tick");
  const res = await call("campaign-tick", { token: user.token, body: {} });
  assert.equal(res.status, 403);
  assert.equal(res.body.error.code, "forbidden");
});

Deno.test("a service-only function without a token gets 401", async () => {
  const res = await call("campaign-tick", { body: {} });
  assert.equal(res.status, 401);
});

Deno.test("a deleted user's still-valid token gets a 4xx, never a 500", async () => {
  const user = await createUser("deleted");
  await sql`delete from auth.users where id = ${user.id}`;
  const res = await call("map-number", {
    token: user.token,
    body: { phoneNumber: "+14156661399", assistantId: null },
  });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assert.ok(res.body.error.code);
});
