import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { wallClock } from "../../supabase/functions/_shared/clock.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import {
  MalformedAnswerError,
  type PinnedPost,
  postPinned,
} from "../../supabase/functions/webhook-deliver/pinned_http.ts";
import { deliverWebhooks } from "../../supabase/functions/webhook-deliver/delivery.ts";
import {
  checkWebhookUrl,
  classifyAnswer,
  DELIVERY_TIMEOUT_MS,
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
    { ok: true, url: "https://hooks.example.com/voice?x=1", addresses: ["93.184.216.34"] },
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

// Pinned delivery: the request goes to the address that was checked -----------------------------

Deno.test("an accepted URL carries the addresses checked, IPv4 first; a literal or localhost is itself", async () => {
  const both = await checkWebhookUrl(
    "https://rebind.invalid/h",
    production(resolvesTo("2606:4700::1", "93.184.216.34", "93.184.216.34")),
  );
  assert.deepEqual(both.ok && both.addresses, ["93.184.216.34", "2606:4700::1"]);
  const literal = await checkWebhookUrl(
    "https://[2606:4700:4700::1111]:8443/",
    production(resolvesTo()),
  );
  assert.deepEqual(literal.ok && literal.addresses, ["2606:4700:4700::1111"]);
  const local = { allowLocalhost: true, resolve: resolvesTo("10.0.0.5") };
  const named = await checkWebhookUrl("http://localhost:3000/x", local);
  assert.deepEqual(named.ok && named.addresses, ["127.0.0.1", "::1"], "never looked up");
  const v4 = await checkWebhookUrl("http://127.0.0.1:3000/x", local);
  assert.deepEqual(v4.ok && v4.addresses, ["127.0.0.1"]);
});

interface Seen {
  method: string;
  path: string;
  host: string | null;
  headers: Headers;
  body: string;
}

/** A receiver on 127.0.0.1 that records each request and answers with `answer`. */
function receiver(answer: () => Response = () => new Response(null, { status: 204 })) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname + url.search,
      host: req.headers.get("host"),
      headers: req.headers,
      body: await req.text(),
    });
    return answer();
  });
  return { seen, server, port: (server.addr as Deno.NetAddr).port };
}

/** A raw TCP server that answers every connection with `reply`, then closes it (null: never answers). */
function rawServer(reply: string | null) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (reply !== null) {
        await conn.read(new Uint8Array(4096)).catch(() => null);
        const bytes = new TextEncoder().encode(reply);
        for (let off = 0; off < bytes.length;) {
          const n = await conn.write(bytes.subarray(off)).catch(() => -1);
          if (n < 0) break;
          off += n;
        }
        try {
          conn.close(); // the answer ends with the connection
        } catch { /* closed by the client */ }
      }
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the client */ }
      }
    },
  };
}

const timeout = () => AbortSignal.timeout(DELIVERY_TIMEOUT_MS);

Deno.test("the pinned sender posts headers and body to the given address, with the URL's Host, and reads status and Retry-After", async () => {
  const r = receiver(() =>
    new Response("slow down", { status: 429, headers: { "Retry-After": "7" } })
  );
  try {
    const secret = newSecret();
    const body = deliveryBody("call.ended", "2026-12-01T09:59:59.1+00:00", { callId: "c1" });
    const signed = signedHeaders(secret, "msg_1", new Date(), body);
    // rebind.invalid resolves nowhere (RFC 6761): the request can only go to the address given.
    const answer = await postPinned({
      url: `http://rebind.invalid:${r.port}/hooks/voice?token=abc`,
      addresses: ["127.0.0.1"],
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "voice-lines-webhooks/1",
        ...signed,
      },
      body,
      signal: timeout(),
    });
    assert.equal(answer.status, 429);
    assert.equal(answer.headers.get("retry-after"), "7");
    assert.equal(
      classifyAnswer(answer.status, answer.headers.get("retry-after"), 0).retryAfterSec,
      7,
    );
    assert.equal(r.seen.length, 1);
    const [got] = r.seen;
    assert.equal(got.method, "POST");
    assert.equal(got.path, "/hooks/voice?token=abc");
    assert.equal(got.host, `rebind.invalid:${r.port}`);
    assert.equal(got.body, body);
    assert.equal(got.headers.get("content-type"), "application/json");
    assert.equal(got.headers.get("content-length"), String(new TextEncoder().encode(body).length));
    assert.equal(got.headers.get("user-agent"), "voice-lines-webhooks/1");
    assert.deepEqual(
      new Webhook(secret).verify(got.body, Object.fromEntries(got.headers)),
      JSON.parse(body),
    );
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("the pinned sender tries the addresses in order and does not follow a redirect", async () => {
  const r = receiver(() =>
    new Response(null, { status: 302, headers: { Location: "http://169.254.169.254/" } })
  );
  const closed = rawServer(null);
  const closedPort = closed.port;
  closed.close(); // nothing listens there any more: a refused connection
  try {
    const tried: string[] = [];
    const answer = await postPinned(
      {
        url: `http://rebind.invalid:${r.port}/`,
        addresses: ["127.0.0.2", "127.0.0.1"],
        headers: {},
        body: "{}",
        signal: timeout(),
      },
      {
        connect: (o) => {
          tried.push(o.hostname);
          return Deno.connect(o.hostname === "127.0.0.2" ? { ...o, port: closedPort } : o);
        },
      },
    );
    assert.deepEqual(tried, ["127.0.0.2", "127.0.0.1"]);
    assert.equal(answer.status, 302);
    assert.equal(classifyAnswer(answer.status, null, 0).ok, false);
    assert.equal(r.seen.length, 1, "the Location is not visited");
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("a malformed, oversized or missing answer is a failed attempt; a hanging one times out", async () => {
  const cases: [string | null, RegExp][] = [
    ["SSH-2.0-OpenSSH_9.6\r\n\r\n", /not HTTP/],
    [`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, /exceed 16384 bytes/],
    ["HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", /malformed header/],
    ["", /closed before an answer/],
  ];
  for (const [reply, why] of cases) {
    const s = rawServer(reply);
    try {
      const post = postPinned({
        url: `http://rebind.invalid:${s.port}/`,
        addresses: ["127.0.0.1"],
        headers: {},
        body: "{}",
        signal: timeout(),
      });
      const e = await post.then(() => null, (e) => e);
      assert.ok(e instanceof MalformedAnswerError, String(e));
      assert.match(describeSendError(e), why);
    } finally {
      s.close();
    }
  }
  const interim = rawServer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
  try {
    const answer = await postPinned({
      url: `http://rebind.invalid:${interim.port}/`,
      addresses: ["127.0.0.1"],
      headers: {},
      body: "{}",
      signal: timeout(),
    });
    assert.equal(answer.status, 204, "an interim 1xx is skipped");
  } finally {
    interim.close();
  }
  const hanging = rawServer(null);
  try {
    const e = await postPinned({
      url: `http://rebind.invalid:${hanging.port}/`,
      addresses: ["127.0.0.1"],
      headers: {},
      body: "{}",
      signal: AbortSignal.timeout(200),
    }).then(() => null, (e) => e);
    assert.equal(describeSendError(e), "no answer within 10 s");
  } finally {
    hanging.close();
  }
});

/** A stand-in for the database's lane functions: one lane, then nothing; attempts recorded. */
function fakeDeps(lane: Record<string, unknown>, allowLocalhost: boolean) {
  const attempts: unknown[][] = [];
  let claimed = false;
  const sql = (strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    if (text.includes("claim_webhook_lanes")) {
      if (claimed) return Promise.resolve([]);
      claimed = true;
      return Promise.resolve([lane]);
    }
    if (text.includes("record_webhook_attempt")) {
      attempts.push(values);
      return Promise.resolve([{ go_on: true }]);
    }
    return Promise.resolve([]);
  };
  const quiet = { info() {}, warn() {}, error() {}, child: () => quiet };
  const deps = {
    config: { webhooksAllowLocalhost: allowLocalhost },
    sql,
    clock: wallClock,
    log: quiet,
  } as unknown as Deps;
  return { deps, attempts };
}

const pending = (secret: string) => ({
  endpoint_id: "00000000-0000-4000-8000-000000000001",
  secret,
  deliveries: [{
    id: 1,
    eventId: "msg_1",
    type: "call.started",
    timestamp: "2026-12-01T10:00:00+00:00",
    data: { callId: "c1", sequence: 1 },
    attemptCount: 0,
  }],
});

Deno.test("DNS rebinding: the delivery connects to the address the check saw, never to a second answer", async () => {
  const loopback = receiver();
  try {
    // The name answers a public address to the check, then the loopback receiver's address.
    // rebind.invalid resolves nowhere in the system, so only this resolver can map it.
    const answers = [["93.184.216.34"], ["127.0.0.1"]];
    let lookups = 0;
    const resolve: Resolver = (host) => {
      assert.equal(host, "rebind.invalid");
      return Promise.resolve(answers[Math.min(lookups++, answers.length - 1)]);
    };
    const connects: string[] = [];
    const net = {
      resolve,
      post: (p: PinnedPost) =>
        postPinned(p, {
          connect: (o) => {
            connects.push(`${o.hostname}:${o.port}`);
            // The public address is not reached from a unit test; the loopback one would be.
            return o.hostname === "127.0.0.1"
              ? Deno.connect(o)
              : Promise.reject(new Deno.errors.ConnectionRefused("Connection refused (test)"));
          },
        }),
    };
    const { deps, attempts } = fakeDeps(
      { ...pending(newSecret()), url: `https://rebind.invalid:${loopback.port}/hooks` },
      false,
    );
    const counts = await deliverWebhooks(deps, { budgetMs: 5_000 }, net);
    assert.deepEqual(counts, { lanes: 1, sent: 1, delivered: 0, failed: 1 });
    assert.equal(lookups, 1, "the name is resolved once, by the check");
    assert.deepEqual(connects, [`93.184.216.34:${loopback.port}`], "only the checked address");
    assert.equal(loopback.seen.length, 0, "nothing reached the loopback receiver");
    const [, , ok, status, error] = attempts[0];
    assert.deepEqual([ok, status], [false, null]);
    assert.match(String(error), /^could not deliver: Connection refused/);
  } finally {
    await loopback.server.shutdown();
  }
});

Deno.test("a lane delivers through the pinned sender: signed, in order, to the checked loopback address", async () => {
  const r = receiver();
  try {
    const secret = newSecret();
    const { deps, attempts } = fakeDeps(
      { ...pending(secret), url: `http://localhost:${r.port}/hooks?x=1` },
      true,
    );
    const resolve: Resolver = () => Promise.reject(new Error("localhost is not looked up"));
    const counts = await deliverWebhooks(deps, { budgetMs: 5_000 }, {
      resolve,
      post: (p) => postPinned(p),
    });
    assert.deepEqual(counts, { lanes: 1, sent: 1, delivered: 1, failed: 0 });
    assert.equal(r.seen.length, 1);
    assert.equal(r.seen[0].host, `localhost:${r.port}`);
    assert.equal(r.seen[0].path, "/hooks?x=1");
    const event = new Webhook(secret).verify(r.seen[0].body, Object.fromEntries(r.seen[0].headers));
    assert.deepEqual(event, {
      type: "call.started",
      timestamp: "2026-12-01T10:00:00+00:00",
      data: { callId: "c1", sequence: 1 },
    });
    const [, , ok, status, error] = attempts[0];
    assert.deepEqual([ok, status, error], [true, 204, null]);
  } finally {
    await r.server.shutdown();
  }
});

/** A throwaway certificate authority and a certificate for `name`, made with openssl. */
async function testCertificate(name: string) {
  const dir = await Deno.makeTempDir();
  const run = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  try {
    await run(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    );
    await run("req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", `/CN=${name}`);
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
    );
    await run(
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.pem",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return { ca: await read("ca.pem"), cert: await read("leaf.pem"), key: await read("leaf.key") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const hasOpenssl = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test(
  "over https the certificate is verified against the URL's name while the connection goes to the checked address",
  {
    ignore: !hasOpenssl,
  },
  async () => {
    const { ca, cert, key } = await testCertificate("hooks.invalid");
    let requests = 0;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
      async (req) => {
        requests++;
        await req.text();
        return new Response(null, { status: 204 });
      },
    );
    const port = (server.addr as Deno.NetAddr).port;
    const post = (name: string, caCerts?: string[]) =>
      postPinned({
        url: `https://${name}:${port}/hooks`,
        addresses: ["127.0.0.1"],
        headers: { "Content-Type": "application/json" },
        body: "{}",
        signal: timeout(),
      }, { caCerts });
    try {
      assert.equal((await post("hooks.invalid", [ca])).status, 204);
      assert.equal(requests, 1);
      const wrongName = await post("other.invalid", [ca]).then(() => null, (e) => e);
      assert.match(
        describeSendError(wrongName),
        /could not deliver: .*(certificate|NotValidForName)/i,
      );
      const untrusted = await post("hooks.invalid").then(() => null, (e) => e);
      assert.match(
        describeSendError(untrusted),
        /could not deliver: .*(certificate|UnknownIssuer)/i,
      );
      assert.equal(requests, 1, "nothing sent without a valid certificate for the name");
    } finally {
      await server.shutdown();
    }
  },
);
