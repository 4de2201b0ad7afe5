import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  checkWebhookUrl,
  classifyAnswer,
  deliveryBody,
  describeSendError,
  newSecret,
  nonPublicReason,
  type Resolver,
  signedHeaders,
} from "../../supabase/functions/_shared/webhooks.ts";

const resolvesTo = (...addresses: string[]): Resolver => () => Promise.resolve(addresses);
const production = (resolve: Resolver) => ({ allowLocalhost: false, resolve });

Deno.test("addresses inside private, loopback, link-local and reserved ranges are not public", () => {
  const inside: [string, RegExp][] = [
    ["127.0.0.1", /loopback/],
    ["10.20.30.40", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["169.254.169.254", /link-local/],
    ["100.100.0.1", /shared/],
    ["0.0.0.0", /this network/],
    ["224.0.0.1", /multicast/],
    ["255.255.255.255", /reserved/],
    ["::1", /loopback/],
    ["::", /unspecified/],
    ["::ffff:10.0.0.1", /private/],
    ["::ffff:7f00:1", /loopback/],
    ["64:ff9b::a9fe:a9fe", /link-local/],
    ["64:ff9b:1::a9fe:a9fe", /local-use NAT64/],
    ["::ffff:0:a9fe:a9fe", /link-local/],
    ["::ffff:0:10.1.2.3", /private/],
    ["2002:c0a8:0101::1", /private/],
    ["fd12:3456::1", /unique local/],
    ["fe80::1%eth0", /link-local/],
    ["ff02::1", /multicast/],
    ["2001:db8::1", /documentation/],
  ];
  for (const [address, why] of inside) {
    assert.match(nonPublicReason(address) ?? "public", why, address);
  }
  for (const address of ["93.184.216.34", "172.32.0.1", "8.8.8.8", "2606:4700:4700::1111"]) {
    assert.equal(nonPublicReason(address), null, address);
  }
});

Deno.test("in production a webhook URL must be https and every address its host resolves to public", async () => {
  assert.deepEqual(
    await checkWebhookUrl(
      "https://hooks.example.com/voice?x=1#frag",
      production(resolvesTo("93.184.216.34")),
    ),
    { ok: true, url: "https://hooks.example.com/voice?x=1" },
  );
  const refused: [string, Resolver, RegExp][] = [
    ["http://hooks.example.com/voice", resolvesTo("93.184.216.34"), /https/],
    ["https://hooks.example.com/", resolvesTo("93.184.216.34", "10.0.0.5"), /private address/],
    ["https://hooks.example.com/", resolvesTo("2606:4700::1", "::1"), /loopback/],
    ["https://127.0.0.1/", resolvesTo(), /loopback/],
    ["https://0x7f.1/", resolvesTo(), /loopback/],
    ["https://2130706433/", resolvesTo(), /loopback/],
    ["https://[::ffff:127.0.0.1]/", resolvesTo(), /loopback/],
    ["http://localhost:3000/", resolvesTo(), /https/],
    ["https://localhost:3000/", resolvesTo(), /local host/],
    ["https://printer.local/", resolvesTo("93.184.216.34"), /local host/],
    ["https://intranet/", resolvesTo("93.184.216.34"), /local host/],
    ["https://a:b@hooks.example.com/", resolvesTo("93.184.216.34"), /password/],
    ["javascript:alert(1)", resolvesTo(), /https/],
    ["hooks.example.com", resolvesTo(), /not a URL/],
  ];
  for (const [url, resolve, why] of refused) {
    const r = await checkWebhookUrl(url, production(resolve));
    assert.equal(r.ok, false, url);
    if (!r.ok) assert.match(r.reason, why, url);
  }
  const unresolved = await checkWebhookUrl("https://nowhere.example/", production(resolvesTo()));
  assert.deepEqual(unresolved.ok ? null : unresolved.retryable, true, "a DNS failure may pass");
});

Deno.test("the local stack's flag lets only loopback URLs through, over http too", async () => {
  const local = { allowLocalhost: true, resolve: resolvesTo("10.0.0.5") };
  for (const url of ["http://127.0.0.1:8080/hooks", "http://localhost:3000/x", "http://[::1]:9/"]) {
    assert.equal((await checkWebhookUrl(url, local)).ok, true, url);
  }
  for (const url of ["http://10.0.0.5/", "https://10.0.0.5/", "https://hooks.example.com/"]) {
    assert.equal((await checkWebhookUrl(url, local)).ok, false, url);
  }
});

Deno.test("a delivery's signature is the spec's HMAC-SHA256 over id.timestamp.body with the decoded secret", async () => {
  const secret = newSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const key = Uint8Array.from(atob(secret.slice(6)), (c) => c.charCodeAt(0));
  assert.equal(key.length, 32);
  const at = new Date("2026-12-01T10:00:00.500Z");
  const body = deliveryBody("call.ended", "2026-12-01T09:59:59.1+00:00", {
    callId: "c1",
    sequence: 3,
  });
  assert.equal(
    body,
    '{"type":"call.ended","timestamp":"2026-12-01T09:59:59.1+00:00","data":{"callId":"c1","sequence":3}}',
  );
  const headers = signedHeaders(secret, "msg_1", at, body);
  assert.equal(headers["webhook-id"], "msg_1");
  const ts = String(Math.floor(at.getTime() / 1000));
  assert.equal(headers["webhook-timestamp"], ts, "Unix seconds");
  const hmac = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign(
    "HMAC",
    hmac,
    new TextEncoder().encode(`msg_1.${ts}.${body}`),
  );
  assert.equal(
    headers["webhook-signature"],
    `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`,
  );
  // The reference library accepts it (with a timestamp inside its tolerance).
  const now = signedHeaders(secret, "msg_1", new Date(), body);
  assert.deepEqual(new Webhook(secret).verify(body, now), JSON.parse(body));
  assert.throws(() => new Webhook(newSecret()).verify(body, now));
});

Deno.test("2xx is delivered; 3xx, 4xx and 5xx are failures; 410 asks to stop; Retry-After is read", () => {
  const now = Date.parse("2026-12-01T10:00:00Z");
  assert.deepEqual(classifyAnswer(204, null, now), { ok: true, gone: false, retryAfterSec: null });
  assert.equal(classifyAnswer(301, null, now).ok, false);
  assert.equal(classifyAnswer(500, null, now).ok, false);
  assert.deepEqual(classifyAnswer(410, null, now), { ok: false, gone: true, retryAfterSec: null });
  assert.equal(classifyAnswer(429, "120", now).retryAfterSec, 120);
  assert.equal(classifyAnswer(503, "Tue, 01 Dec 2026 10:01:00 GMT", now).retryAfterSec, 60);
  assert.equal(classifyAnswer(503, "soon", now).retryAfterSec, null);
});

Deno.test("a failed send is described without its URL", () => {
  assert.equal(
    describeSendError(new DOMException("Signal timed out.", "TimeoutError")),
    "no answer within 10 s",
  );
  const refused = new TypeError(
    "error sending request for url (https://hooks.example.com/x?token=abc): client error (Connect): tcp connect error: Connection refused (os error 111)",
  );
  const text = describeSendError(refused);
  assert.match(text, /Connection refused/);
  assert.ok(!text.includes("token=abc"));
});
