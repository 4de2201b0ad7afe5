import assert from "node:assert/strict";
import * as jose from "jose";
import postgres from "postgres";
import {
  call,
  createAssistant,
  createUser,
  functionDeps,
  logLines,
  sql,
  stack,
} from "../helpers/stack.ts";
import { createKeys, mintUserToken } from "../../stack/supabase/keys.ts";
import { startGateway } from "../../stack/supabase/gateway.ts";
import { freePort } from "../../stack/supabase/postgres.ts";
import { RateLimitError, toErrorBody } from "../../supabase/functions/_shared/errors.ts";
import { serve } from "../../supabase/functions/_shared/http.ts";
import { setLogSink } from "../../supabase/functions/_shared/log.ts";
import { handler as mapNumber } from "../../supabase/functions/map-number/handler.ts";
import { handler as campaignTick } from "../../supabase/functions/campaign-tick/handler.ts";

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

Deno.test("a deleted user's still-valid token gets 401, never a 409 or 500", async () => {
  const user = await createUser("deleted");
  await sql`delete from auth.users where id = ${user.id}`;
  for (const [name, method] of [["map-number", "POST"], ["list-trunks", "GET"]]) {
    const res = await call(name, {
      token: user.token,
      method,
      body: method === "POST" ? { phoneNumber: "+14156661399", assistantId: null } : undefined,
    });
    assert.equal(res.status, 401, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, "unauthenticated");
  }
});

Deno.test("an empty body names every missing field at once", async () => {
  const user = await createUser("empty");
  const mapped = await call("map-number", { token: user.token, body: {} });
  assert.equal(mapped.status, 400);
  assert.ok(mapped.body.error.details.fields.phoneNumber, "phoneNumber (or phoneSid) named");
  assert.ok(mapped.body.error.details.fields.assistantId, "assistantId named");
  const dial = await call("create-participant", { token: user.token, body: {} });
  assert.equal(dial.status, 400);
  assert.ok(dial.body.error.details.fields.phoneNumber, "phoneNumber named");
  assert.ok(dial.body.error.details.fields.assistantId, "assistantId (or outboundTrunkId) named");
});

Deno.test("U+0000 in a field is a 400 naming that field, not a database error", async () => {
  const user = await createUser("nul");
  const assistantId = await createAssistant(user);
  const res = await call("map-number", {
    token: user.token,
    body: { phoneNumber: "+14156661398", assistantId, label: "front\u0000desk" },
  });
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "invalid_request");
  assert.match(res.body.error.details.fields.label, /U\+0000/);
});

Deno.test("a database rule refusal names its column and constraint", async () => {
  const e = await sql`insert into public.assistant (owner_id, name, agent_name)
    values (gen_random_uuid(), '', 'x')`.catch((e) => e);
  const { status, body } = toErrorBody(e);
  assert.equal(status, 400);
  assert.equal(body.error.code, "invalid_request");
  assert.equal(body.error.details?.column, "name");
  assert.equal(body.error.details?.constraint, "assistant_name_check");
  assert.deepEqual(Object.keys(body.error.details?.fields as object), ["name"]);
  assert.match(body.error.message, /name/);
});

Deno.test("every response carries x-request-id, the id of its log lines; 4xx lines name fields, never values", async () => {
  const user = await createUser("reqid");
  const secretish = `value-${crypto.randomUUID()}`;
  const res = await fetch(`${stack.supabaseUrl}/functions/v1/map-number`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ phoneNumber: secretish, assistantId: secretish }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 400);
  const id = res.headers.get("x-request-id");
  assert.ok(id, "x-request-id header");
  const lines = await logLines(id!);
  assert.equal(lines.length, 1, "one line for the request");
  const [line] = lines;
  assert.equal(line.level, "warn");
  assert.equal(line.code, "invalid_request");
  assert.equal(line.status, 400);
  assert.ok(line.message);
  assert.deepEqual([...line.fields].sort(), ["assistantId", "phoneNumber"]);
  assert.ok(!JSON.stringify(line).includes(secretish), "no value sent appears in the log");

  // A caller's own request id is kept, a malformed one replaced.
  const given = `trace-${crypto.randomUUID()}`;
  const kept = await fetch(`${stack.supabaseUrl}/functions/v1/list-trunks`, {
    headers: { Authorization: `Bearer ${user.token}`, "x-request-id": given },
  });
  await kept.body?.cancel();
  assert.equal(kept.status, 200);
  assert.equal(kept.headers.get("x-request-id"), given);
  assert.equal((await logLines(given))[0]?.status, 200);
  const odd = await fetch(`${stack.supabaseUrl}/functions/v1/list-trunks`, {
    headers: { Authorization: `Bearer ${user.token}`, "x-request-id": 'a b"c' },
  });
  await odd.body?.cancel();
  assert.notEqual(odd.headers.get("x-request-id"), 'a b"c');
});

Deno.test("a 429 carries Retry-After (given, or 1 s)", async () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    for (
      const [error, expected] of [
        [new RateLimitError("Slow down.", 7), "7"],
        [new RateLimitError("Slow down."), "1"],
      ] as const
    ) {
      const h = serve("rate-test", ["POST"], () => Promise.reject(error))(functionDeps());
      const res = await h(new Request("http://functions.local/", { method: "POST" }));
      assert.equal(res.status, 429);
      assert.equal(res.headers.get("retry-after"), expected);
      assert.equal((await res.json()).error.code, "rate_limited");
    }
  } finally {
    setLogSink(() => {});
  }
});

Deno.test("the database unreachable is a 503 unavailable with Retry-After, never a 500", async () => {
  const user = await createUser("dbdown");
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    const down = functionDeps({
      SUPABASE_DB_URL: `postgres://postgres:x@127.0.0.1:${freePort()}/postgres`,
    });
    const res = await mapNumber(down)(
      new Request("http://functions.local/map-number", {
        method: "POST",
        headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ phoneNumber: "+14156661397", assistantId: null }),
      }),
    );
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, "unavailable");
    assert.ok(Number(res.headers.get("retry-after")) > 0);
    assert.ok(res.headers.get("x-request-id"));
  } finally {
    setLogSink(() => {});
  }
  // postgres.js's own connection errors map the same way.
  const down = postgres(`postgres://postgres:x@127.0.0.1:${freePort()}/postgres`, {
    max: 1,
    connect_timeout: 2,
  });
  const e = await down`select 1`.catch((e) => e);
  await down.end();
  const mapped = toErrorBody(e);
  assert.equal(mapped.status, 503);
  assert.ok(mapped.headers["Retry-After"]);
});

Deno.test("the gateway provides EdgeRuntime.waitUntil: background work outlives the response, failures are logged, close() waits", async () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  const port = freePort();
  let finished = false;
  const gateway = startGateway({
    port,
    keys: await createKeys(`http://127.0.0.1:${port}`),
    functions: [{
      name: "bg",
      verifyJwt: false,
      load: () =>
        Promise.resolve((_req: Request) => {
          // deno-lint-ignore no-explicit-any
          const runtime = (globalThis as any).EdgeRuntime;
          runtime.waitUntil(new Promise((r) => setTimeout(r, 300)).then(() => (finished = true)));
          runtime.waitUntil(Promise.reject(new Error("background boom")));
          return Promise.resolve(new Response("accepted", { status: 202 }));
        }),
    }],
  });
  try {
    const res = await fetch(`http://127.0.0.1:${port}/functions/v1/bg`, { method: "POST" });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), "accepted");
    assert.equal(finished, false, "the response did not wait for the background work");
  } finally {
    await gateway.close();
    setLogSink(() => {});
  }
  assert.equal(finished, true, "close() waited for it");
  assert.ok(lines.some((l) => l.includes("background boom")), "the rejection was logged");
});

Deno.test("with only sb_secret_ keys, a secret key is the service; a publishable or unknown key is a 401", async () => {
  const secret = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;
  const deps = functionDeps({
    SUPABASE_SERVICE_ROLE_KEY: undefined,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secret }),
  });
  const tickWith = async (key: string) => {
    const res = await campaignTick(deps)(
      new Request("http://functions.local/campaign-tick", {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ campaignId: crypto.randomUUID(), maxCalls: 1 }),
      }),
    );
    return { status: res.status, body: await res.json() };
  };
  const service = await tickWith(secret);
  assert.equal(service.status, 200, JSON.stringify(service.body));
  for (
    const key of [
      `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`,
      "sb_publishable_0123456789abcdef",
      stack.serviceKey, // the legacy key, no longer configured
    ]
  ) {
    const refused = await tickWith(key);
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "unauthenticated");
    assert.ok(!JSON.stringify(refused.body).includes(secret));
  }
});
