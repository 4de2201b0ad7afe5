// deno-lint-ignore-file no-explicit-any
// Event webhooks end to end: test receivers (Deno.serve on 127.0.0.1) verify every request
// with the `standardwebhooks` package. Retries are sped up only through the documented
// setting internal.webhook_settings.time_scale (and disable_after_sec where a test needs an
// endpoint disabled); the functions run exactly as deployed. `drive` calls webhook-deliver
// with the service key as pg_cron's sweep does, but every few hundred milliseconds (the local
// pg_cron runs it once a minute); first attempts come from the pokes that commits send.
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  asUser,
  call,
  createAssistant,
  createUser,
  eventually,
  freeNumber,
  frontendClient,
  outboxDrained,
  sql,
  stack,
  type TestUser,
} from "../helpers/stack.ts";
import { stackControl } from "../reliability/helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every secret this file is given, for the final scan of responses and logs. */
const secretsSeen: string[] = [];
/** Every answer of webhook-endpoints after creation, for the same scan. */
const laterResponses: string[] = [];

interface Receipt {
  id: string;
  type: string;
  data: any;
  at: number;
  attempt: number;
}

interface ReceiverOptions {
  /** Answer this status instead of 2xx to the first `failFirst` requests. */
  failFirst?: number;
  failStatus?: number;
  /** Called after each failed answer (the test may close the receiver there). */
  afterFailure?: (n: number) => void;
  /** Wait this long before answering the n-th request (1-based). */
  delayMs?: (n: number) => number;
  /** Always answer this (a dead endpoint). */
  always?: number;
}

/** A webhook receiver that verifies each request's signature before answering anything. */
class Receiver {
  secret: string | null = null;
  requests = 0;
  badSignatures = 0;
  received: Receipt[] = [];
  port = 0;
  starts: number[] = [];
  private server: Deno.HttpServer | null = null;

  constructor(private opts: ReceiverOptions = {}) {}

  get url() {
    return `http://127.0.0.1:${this.port}/hooks/voice`;
  }

  start() {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: this.port, onListen: () => {} },
      (req) => this.handle(req),
    );
    this.port = (this.server.addr as Deno.NetAddr).port;
  }

  async close() {
    const s = this.server;
    this.server = null;
    await s?.shutdown();
  }

  get open() {
    return this.server !== null;
  }

  private async handle(req: Request): Promise<Response> {
    const n = ++this.requests;
    this.starts.push(Date.now());
    const body = await req.text();
    let payload: any;
    try {
      if (!this.secret) throw new Error("no secret yet");
      payload = new Webhook(this.secret).verify(body, Object.fromEntries(req.headers));
    } catch {
      this.badSignatures++;
      return new Response("bad signature", { status: 401 });
    }
    const delay = this.opts.delayMs?.(n) ?? 0;
    if (delay > 0) await sleep(delay);
    if (this.opts.always) return new Response("down", { status: this.opts.always });
    if (n <= (this.opts.failFirst ?? 0)) {
      queueMicrotask(() => this.opts.afterFailure?.(n));
      return new Response("try later", { status: this.opts.failStatus ?? 500 });
    }
    this.received.push({
      id: req.headers.get("webhook-id")!,
      type: payload.type,
      data: payload.data,
      at: Date.now(),
      attempt: n,
    });
    return new Response(null, { status: 204 });
  }

  ids(): string[] {
    return this.received.map((r) => r.id);
  }
}

async function createEndpoint(user: TestUser, url: string, events?: string[]) {
  const res = await call("webhook-endpoints", {
    token: user.token,
    body: events ? { url, events } : { url },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  secretsSeen.push(res.body.endpoint.secret);
  return res.body.endpoint as { id: string; secret: string; url: string; events: string[] };
}

async function endpointsCall(user: TestUser, opts: Parameters<typeof call>[1]) {
  const res = await call("webhook-endpoints", { token: user.token, ...opts });
  laterResponses.push(JSON.stringify(res.body));
  return res;
}

/** What pg_cron's sweep does, run often: webhook-deliver with the service key. */
function drive() {
  let stopped = false;
  let runs = 0;
  const done = (async () => {
    while (!stopped) {
      await call("webhook-deliver", { token: stack.serviceKey, body: { budgetSec: 2 } })
        .catch(() => null);
      runs++;
      await sleep(100);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      return runs;
    },
  };
}

async function withSettings<T>(patch: Record<string, number>, fn: () => Promise<T>): Promise<T> {
  const [before] = await sql`select time_scale, disable_after_sec from internal.webhook_settings`;
  await sql`update internal.webhook_settings set ${sql(patch)}`;
  try {
    return await fn();
  } finally {
    await sql`update internal.webhook_settings set time_scale = ${before.time_scale},
      disable_after_sec = ${before.disable_after_sec}`;
  }
}

/** Polls that survive a database restart (a failed query is a "not yet"). */
function until<T>(
  check: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  what: string,
  sec = 90,
) {
  return eventually(
    async () => {
      try {
        return await check();
      } catch {
        return null;
      }
    },
    what,
    sec * 1000,
  );
}

async function ownerEvents(ownerId: string) {
  return await sql<{ event_id: string; type: string; subject: string; sequence: number }[]>`
    select event_id, type, subject, sequence from internal.events where owner_id = ${ownerId} order by id`;
}

/** A call's whole life written as the dial path writes it: started, answered, ended. */
async function fakeCall(user: TestUser, assistantId: string) {
  const [c] = await sql`
    insert into public.outbound_calls (owner_id, assistant_id, from_number, to_number, room_name,
      participant_identity, outbound_trunk_id)
    values (${user.id}, ${assistantId}, '+14155550100', '+12125550199', ${`ev-${crypto.randomUUID()}`},
      'sip-ev', 'ST_events') returning id`;
  await sql`update public.outbound_calls set status = 'in_progress', answered_at = now() where id = ${c.id}`;
  await sql`update public.outbound_calls set status = 'completed', outcome = 'answered', ended_at = now(),
    duration_sec = 1 where id = ${c.id}`;
  return c.id as string;
}

/**
 * Each call's first receipts arrive in sequence order: 1, 2, 3 ... when the endpoint takes every
 * type (`gapless`), increasing when it subscribed to some.
 */
function assertCallOrder(received: Receipt[], gapless = true) {
  const firstSeen = new Map<string, Receipt>();
  for (const r of received) if (!firstSeen.has(r.id)) firstSeen.set(r.id, r);
  const byCall = new Map<string, number[]>();
  for (const r of firstSeen.values()) {
    if (!r.type.startsWith("call.")) continue;
    byCall.set(r.data.callId, [...(byCall.get(r.data.callId) ?? []), r.data.sequence]);
  }
  for (const [callId, seqs] of byCall) {
    const expected = gapless ? seqs.map((_, i) => i + 1) : [...seqs].sort((a, b) => a - b);
    assert.deepEqual(seqs, expected, `call ${callId} events arrived in order`);
    assert.equal(new Set(seqs).size, seqs.length);
  }
  return byCall.size;
}

let campaignRun: {
  user: TestUser;
  endpointId: string;
  campaignId: string;
  receiver: Receiver;
  ids: string[];
} | null = null;

Deno.test("a receiver that answers 500 five times, then is unreachable, then recovers gets every event exactly once, each call's in sequence order, every signature verified", async () => {
  await withSettings({ time_scale: 0.0001 }, async () => {
    const user = await createUser("events");
    const assistantId = await createAssistant(user, "Events assistant", "events-agent");
    let failedAttempts = 0;
    const receiver: Receiver = new Receiver({
      failFirst: 5,
      // After its fifth 500 the receiver goes away: connections are refused until it is back.
      afterFailure: (n) => {
        failedAttempts = n;
        if (n === 5) receiver.close();
      },
    });
    receiver.start();
    const endpoint = await createEndpoint(user, receiver.url);
    receiver.secret = endpoint.secret;
    assert.deepEqual(endpoint.events.length, 9, "every event type by default");

    const driver = drive();
    try {
      const e164 = await freeNumber();
      const mapped = await call("map-number", {
        token: user.token,
        body: { phoneNumber: e164, assistantId },
      });
      assert.equal(mapped.status, 200, JSON.stringify(mapped.body));
      await outboxDrained(e164);
      const [c] = await sql`insert into public.campaigns ${
        sql({
          owner_id: user.id,
          name: "Events campaign",
          assistant_id: assistantId,
          phone_number_id: mapped.body.phoneNumber.id,
          window_start: "00:00",
          window_end: "23:59:59",
          weekdays: [1, 2, 3, 4, 5, 6, 7],
          max_attempts: 1,
        })
      } returning id`;
      await asUser(user, (tx) =>
        tx`select public.add_campaign_calls(${c.id}, ${
          tx.json([
            { phoneNumber: "+12125550905" },
            { phoneNumber: "+13125550486" },
            { phoneNumber: "+12125551910" },
          ])
        })`);
      await asUser(
        user,
        (tx) => tx`update public.campaigns set status = 'running' where id = ${c.id}`,
      );
      await call("campaign-tick", { token: stack.serviceKey, body: { campaignId: c.id } });
      await until(async () => {
        const [row] = await sql`select status from public.campaigns where id = ${c.id}`;
        return row.status === "completed";
      }, "the campaign to complete");

      // Unreachable: reopen only once an attempt found nobody listening.
      await until(async () => {
        const [r] = await sql`
          select count(*)::int as n from public.webhook_deliveries d, jsonb_array_elements(d.attempts) a
          where d.endpoint_id = ${endpoint.id} and a ->> 'statusCode' is null`;
        return r.n > 0;
      }, "an attempt while the receiver is unreachable");
      assert.equal(receiver.open, false);
      receiver.start();

      const events = await ownerEvents(user.id);
      await until(async () => {
        const [r] =
          await sql`select count(*) filter (where status = 'succeeded')::int as ok, count(*)::int as n
          from public.webhook_deliveries where endpoint_id = ${endpoint.id}`;
        return r.n === events.length && r.ok === r.n;
      }, "every delivery to succeed");

      const types = events.map((e) => e.type).sort();
      assert.deepEqual(
        types,
        [
          "call.answered",
          "call.answered",
          "call.ended",
          "call.ended",
          "call.ended",
          "call.started",
          "call.started",
          "call.started",
          "campaign.completed",
          "campaign.started",
          "number.ready",
        ],
        "a number made ready, a campaign started and completed, three calls (one busy)",
      );
      const counts = new Map<string, number>();
      for (const id of receiver.ids()) counts.set(id, (counts.get(id) ?? 0) + 1);
      assert.deepEqual(
        [...counts.keys()].sort(),
        events.map((e) => e.event_id).sort(),
        "every event arrived",
      );
      assert.ok([...counts.values()].every((n) => n === 1), "each exactly once by webhook-id");
      assert.equal(receiver.badSignatures, 0, "every request carried a valid signature");
      assert.equal(failedAttempts, 5);
      assert.equal(assertCallOrder(receiver.received), 3);
      const completed = receiver.received.find((r) => r.type === "campaign.completed")!;
      assert.equal(completed.data.calls.total, 3);
      assert.equal(completed.data.calls.busy, 1);

      const [head] = await sql`select attempts from public.webhook_deliveries
        where endpoint_id = ${endpoint.id} order by id limit 1`;
      const answers = head.attempts.map((a: any) => a.statusCode ?? "unreachable");
      assert.deepEqual(answers.slice(0, 5), [500, 500, 500, 500, 500]);
      assert.ok(answers.slice(5, -1).every((a: unknown) => a === "unreachable"));
      assert.equal(answers.at(-1), 204);
      const [ep] = await sql`select enabled, failing_since from public.webhook_endpoints
        where id = ${endpoint.id}`;
      assert.equal(ep.enabled, true);
      assert.equal(ep.failing_since, null, "a success clears the failure clock");
      campaignRun = {
        user,
        endpointId: endpoint.id,
        campaignId: c.id,
        receiver,
        ids: events.map((e) => e.event_id),
      };
    } finally {
      await driver.stop();
    }
  });
});

Deno.test("replaying a campaign re-delivers its events and its calls' with their original ids", async () => {
  assert.ok(campaignRun, "needs the campaign of the test before");
  const { user, endpointId, campaignId, receiver } = campaignRun;
  const before = receiver.received.length;
  const res = await endpointsCall(user, {
    body: { id: endpointId, replay: { campaignId } },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const original = await sql<{ event_id: string }[]>`
    select event_id from internal.events where campaign_id = ${campaignId} order by id`;
  assert.equal(res.body.queued, original.length);
  assert.equal(
    res.body.queued,
    10,
    "campaign.started and .completed, and three calls' eight events",
  );
  const driver = drive();
  try {
    await until(() => receiver.received.length >= before + original.length, "the replay");
  } finally {
    await driver.stop();
  }
  const replayed = receiver.received.slice(before);
  assert.deepEqual(
    replayed.map((r) => r.id),
    original.map((e) => e.event_id),
    "the same webhook-ids, in their original order",
  );
  const [r] = await sql`select count(*)::int as n from public.webhook_deliveries
    where endpoint_id = ${endpointId} and replay and status = 'succeeded'`;
  assert.equal(r.n, original.length);
  await receiver.close();
});

Deno.test("a PostgreSQL restart during delivery loses no event", async () => {
  await withSettings({ time_scale: 0.0001 }, async () => {
    const user = await createUser("events-restart");
    const assistantId = await createAssistant(user, "Restart assistant", "restart-agent");
    // A receiver slow enough that the restart lands while deliveries are under way.
    const receiver = new Receiver({ delayMs: () => 60 });
    receiver.start();
    const endpoint = await createEndpoint(user, receiver.url, ["call.started", "call.ended"]);
    receiver.secret = endpoint.secret;
    for (let i = 0; i < 12; i++) await fakeCall(user, assistantId);
    const events = await ownerEvents(user.id);
    assert.equal(events.length, 36, "each call wrote three events");
    const subscribed = events.filter((e) => e.type !== "call.answered");
    const driver = drive();
    let restartedAt = 0;
    try {
      await until(() => receiver.received.length >= 3, "the first deliveries");
      assert.ok(receiver.received.length < subscribed.length, "the restart comes mid-delivery");
      restartedAt = receiver.received.length;
      await stackControl("postgres/restart");
      const got = await until(() => {
        const ids = new Set(receiver.ids());
        return subscribed.every((e) => ids.has(e.event_id)) && ids;
      }, "every subscribed event after the restart");
      assert.equal(got.size, subscribed.length, "nothing it did not subscribe to");
    } finally {
      await driver.stop();
      await receiver.close();
    }
    assert.ok(restartedAt > 0);
    assert.equal(receiver.badSignatures, 0);
    assert.equal(assertCallOrder(receiver.received, false), 12);
    const [r] = await until(
      async () =>
        await sql<{ ok: number; n: number }[]>`
          select count(*) filter (where status = 'succeeded')::int as ok, count(*)::int as n
          from public.webhook_deliveries where endpoint_id = ${endpoint.id}`,
      "the delivery counts",
    );
    assert.equal(r.ok, r.n);
    assert.equal(r.n, subscribed.length);
  });
});

Deno.test("a commit pokes webhook-deliver: an event reaches its endpoint with no sweep running", async () => {
  const user = await createUser("events-poke");
  const assistantId = await createAssistant(user, "Poke assistant", "poke-agent");
  const receiver = new Receiver();
  receiver.start();
  try {
    const endpoint = await createEndpoint(user, receiver.url, ["call.started"]);
    receiver.secret = endpoint.secret;
    const callId = await fakeCall(user, assistantId);
    const got = await until(() => receiver.received[0], "the poked delivery", 15);
    assert.equal(got.type, "call.started");
    assert.equal(got.data.callId, callId);
    assert.equal(got.data.sequence, 1);
  } finally {
    await receiver.close();
  }
});

Deno.test("a dead endpoint is disabled after its failure window with the reason shown, a hanging one times out at 10 s, and neither delays a healthy endpoint", async () => {
  await withSettings({ time_scale: 0.0001, disable_after_sec: 2 }, async () => {
    const user = await createUser("events-isolation");
    const assistantId = await createAssistant(user, "Isolation assistant", "isolation-agent");
    const dead = new Receiver({ always: 503 });
    const hanging = new Receiver({ delayMs: (n) => (n === 1 ? 11_000 : 0) });
    const healthy = new Receiver();
    for (const r of [dead, hanging, healthy]) r.start();
    const driver = drive();
    try {
      const eps = [];
      for (const r of [dead, hanging, healthy]) {
        const ep = await createEndpoint(user, r.url, [
          "call.started",
          "call.answered",
          "call.ended",
        ]);
        r.secret = ep.secret;
        eps.push(ep);
      }
      const [deadEp, hangingEp, healthyEp] = eps;
      await fakeCall(user, assistantId);
      await until(
        () => healthy.received.length === 3 && hanging.starts.length > 0,
        "the healthy endpoint's deliveries and the hanging one's first request",
      );
      assert.equal(hanging.received.length, 0, "while the hanging endpoint still holds its first");
      assert.ok(healthy.received.every((r) => r.at < hanging.starts[0] + 10_000));

      const [d] = await until(async () => {
        const rows = await sql`select enabled, disabled_reason from public.webhook_endpoints
          where id = ${deadEp.id} and not enabled`;
        return rows.length ? rows : null;
      }, "the dead endpoint to be disabled");
      assert.match(d.disabled_reason, /no delivery succeeded since .*HTTP 503/);
      const listed = await endpointsCall(user, { method: "GET" });
      const shown = listed.body.endpoints.find((e: any) => e.id === deadEp.id);
      assert.equal(shown.enabled, false);
      assert.equal(shown.disabledReason, d.disabled_reason);
      assert.equal(shown.pending, 3, "its deliveries stay queued");

      await until(
        () => hanging.received.length === 3,
        "the hanging endpoint to catch up",
        40,
      );
      const [first] = await sql`select attempts from public.webhook_deliveries
        where endpoint_id = ${hangingEp.id} order by id limit 1`;
      assert.equal(first.attempts[0].error, "no answer within 10 s");
      assert.equal(first.attempts.at(-1).statusCode, 204);
      assert.equal(healthyEp.events.length, 3);

      // The owner fixes the receiver and re-enables the endpoint: its queue resumes in order.
      const fixed = new Receiver();
      fixed.port = dead.port;
      await dead.close();
      fixed.secret = deadEp.secret;
      fixed.start();
      const { error } = await user.client.from("webhook_endpoints").update({ enabled: true }).eq(
        "id",
        deadEp.id,
      );
      assert.equal(error, null);
      await until(() => fixed.received.length === 3, "the re-enabled endpoint's queue");
      assert.deepEqual(fixed.received.map((r) => r.data.sequence), [1, 2, 3]);
      await fixed.close();
    } finally {
      await driver.stop();
      for (const r of [dead, hanging, healthy]) if (r.open) await r.close();
    }
  });
});

Deno.test("webhook URLs must be https and public; the local stack also lets 127.0.0.1 through", async () => {
  const user = await createUser("events-urls");
  const refused: [string, RegExp][] = [
    ["http://example.com/hooks", /https/],
    ["https://10.1.2.3/hooks", /private/],
    ["https://169.254.169.254/latest/meta-data", /link-local/],
    ["https://[::ffff:192.168.0.1]/hooks", /private/],
    ["https://[fd00::1]/hooks", /unique local/],
    ["https://metadata.internal/hooks", /local host/],
    ["https://user:pw@example.com/hooks", /user name or password/],
    ["ftp://example.com/hooks", /https/],
    ["not a url", /not a URL/],
  ];
  for (const [url, why] of refused) {
    const res = await endpointsCall(user, { body: { url } });
    assert.equal(res.status, 400, `${url}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, "invalid_request");
    assert.match(res.body.error.details.fields.url, why, url);
  }
  const bad = await endpointsCall(user, {
    body: { url: "http://127.0.0.1:9/x", events: ["call.started", "call.exploded"] },
  });
  assert.equal(bad.status, 400);
  assert.ok(bad.body.error.details.fields["events.1"]);
  const extra = await endpointsCall(user, {
    body: { url: "http://127.0.0.1:9/x", secret: "mine" },
  });
  assert.equal(extra.status, 400);
  assert.equal(extra.body.error.details.fields.secret, "unknown field");

  const local = await createEndpoint(user, "http://127.0.0.1:9/x");
  assert.match(local.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const removed = await endpointsCall(user, { method: "DELETE", body: { id: local.id } });
  assert.equal(removed.status, 200);
  assert.deepEqual(removed.body, { endpoint: { id: local.id, deleted: true } });
  const [v] = await sql`select count(*)::int as n from vault.secrets
    where name = ${`webhook_secret:${local.id}`}`;
  assert.equal(v.n, 0, "the secret left Vault with the endpoint");
});

Deno.test("another user's endpoints and deliveries are invisible and untouchable, through the function and through REST", async () => {
  const owner = await createUser("events-owner");
  const stranger = await createUser("events-stranger");
  const assistantId = await createAssistant(owner, "Owner assistant", "owner-agent");
  const endpoint = await createEndpoint(owner, "http://127.0.0.1:9/owner", ["call.started"]);
  await fakeCall(owner, assistantId);

  const mine = await endpointsCall(owner, { method: "GET" });
  assert.equal(mine.status, 200);
  assert.deepEqual(mine.body.endpoints.map((e: any) => e.id), [endpoint.id]);
  const theirs = await endpointsCall(stranger, { method: "GET" });
  assert.deepEqual(theirs.body.endpoints, []);
  const del = await endpointsCall(stranger, { method: "DELETE", body: { id: endpoint.id } });
  assert.equal(del.status, 404);
  const replay = await endpointsCall(stranger, { body: { id: endpoint.id, replay: {} } });
  assert.equal(replay.status, 404);

  const ownerRows = await owner.client.from("webhook_endpoints").select("*");
  assert.equal(ownerRows.error, null);
  assert.equal(ownerRows.data!.length, 1);
  laterResponses.push(JSON.stringify(ownerRows.data));
  const ownerDeliveries = await owner.client.from("webhook_deliveries").select("*");
  assert.equal(ownerDeliveries.data!.length, 1);
  laterResponses.push(JSON.stringify(ownerDeliveries.data));
  for (const table of ["webhook_endpoints", "webhook_deliveries"]) {
    const seen = await stranger.client.from(table).select("*");
    assert.deepEqual(seen.data, [], `a stranger sees no ${table}`);
    const anon = await frontendClient().from(table).select("*");
    assert.ok(anon.error || anon.data?.length === 0, `anon sees no ${table}`);
  }
  const stolen = await stranger.client.from("webhook_endpoints").update({ enabled: false })
    .eq("id", endpoint.id).select();
  assert.deepEqual(stolen.data ?? [], []);
  const [still] = await sql`select enabled from public.webhook_endpoints where id = ${endpoint.id}`;
  assert.equal(still.enabled, true);
  const retarget = await owner.client.from("webhook_endpoints").update({
    url: "https://evil.example/",
  })
    .eq("id", endpoint.id);
  assert.ok(retarget.error, "the URL changes only through the function's checks");
  const gone = await endpointsCall(owner, { method: "DELETE", query: `?id=${endpoint.id}` });
  assert.equal(gone.status, 200, "the owner deletes it (by query string too)");
});

Deno.test("no webhook secret appears in any answer after creation, any REST row or any function log line", async () => {
  assert.ok(secretsSeen.length >= 5);
  const texts = [...laterResponses];
  const log = await Deno.readTextFile(stack.logFile);
  for (const secret of secretsSeen) {
    const key = secret.slice("whsec_".length);
    for (const t of texts) assert.ok(!t.includes(key), "no secret in an answer");
    assert.ok(!log.includes(key), "no secret in the function log");
  }
  assert.ok(log.includes('"fn":"webhook-deliver"'), "the scan read the delivery log");
});
