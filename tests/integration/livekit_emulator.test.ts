/**
 * The LiveKit emulator, driven only through livekit-server-sdk (plus raw HTTP where the SDK
 * has no call, such as GetSIPOutboundTrunk and the /emulator endpoints). Simulated time is
 * scaled down so every call finishes in milliseconds.
 */
import { eventually, type Maybe } from "../../stack/poll.ts";
import assert from "node:assert/strict";
import {
  AccessToken,
  AgentDispatchClient,
  RoomServiceClient,
  ServerError,
  SipCallError,
  SipClient,
  WebhookReceiver,
} from "livekit-server-sdk";
import {
  DisconnectReason,
  ListSIPOutboundTrunkRequest,
  ListSIPOutboundTrunkResponse,
  ListUpdate,
  ParticipantInfo_Kind,
  RoomAgentDispatch,
  RoomConfiguration,
  SIPInboundTrunkInfo,
  SIPOutboundTrunkUpdate,
  SIPTransport,
  TrackType,
  type WebhookEvent,
} from "@livekit/protocol";
import {
  type LiveKitEmulator,
  type LiveKitEmulatorOptions,
  type LiveKitKnobs,
  type RequestLogEntry,
  startLiveKit,
} from "../../stack/emulators/livekit/server.ts";
import { signJwt } from "../../stack/emulators/livekit/auth.ts";

type DispatchRuleArg = Parameters<SipClient["createSipDispatchRule"]>[0];

const KEY = "devkey";
const SECRET = "devsecret-that-is-long-enough-for-hs256";
const CALLER = "+15550100100";
const FAST = 0.001;

async function withEmulator(
  knobs: Partial<Omit<LiveKitEmulatorOptions, "apiKey" | "apiSecret">>,
  fn: (lk: LiveKitEmulator) => Promise<void>,
): Promise<void> {
  const lk = await startLiveKit({ apiKey: KEY, apiSecret: SECRET, timeScale: FAST, ...knobs });
  try {
    await fn(lk);
  } finally {
    await lk.close();
  }
}

interface Received {
  body: string;
  auth: string | null;
  contentType: string | null;
}

async function withWebhookSink(
  fn: (url: string, received: Received[]) => Promise<void>,
): Promise<void> {
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push({
      body: await req.text(),
      auth: req.headers.get("Authorization"),
      contentType: req.headers.get("Content-Type"),
    });
    return new Response("ok");
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/hooks`, received);
  } finally {
    await server.shutdown();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` returns something truthy; the bound only guards against a hang. */
function waitFor<T>(what: string, check: () => Maybe<T> | Promise<Maybe<T>>): Promise<T> {
  return eventually(check, what, 5_000, 5);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail("expected the call to fail");
}

async function serverError(p: Promise<unknown>): Promise<ServerError> {
  const err = await rejection(p);
  assert.ok(err instanceof ServerError, `expected a ServerError, got ${err}`);
  return err;
}

async function state(
  lk: LiveKitEmulator,
): Promise<Record<string, unknown> & { calls: Record<string, unknown>[] }> {
  return await (await fetch(`${lk.url}/emulator/state`)).json();
}

async function outboundTrunk(sip: SipClient, address = "demo.pstn.twilio.com", numbers = [CALLER]) {
  return await sip.createSipOutboundTrunk("caller line", address, numbers, {
    transport: SIPTransport.SIP_TRANSPORT_AUTO,
    authUsername: "lk-user",
    authPassword: "lk-password-123",
  });
}

async function adminToken(
  grants: { video?: Record<string, unknown>; sip?: Record<string, boolean> },
) {
  const at = new AccessToken(KEY, SECRET, { ttl: "5m" });
  if (grants.video) at.addGrant(grants.video);
  if (grants.sip) at.addSIPGrant(grants.sip);
  return await at.toJwt();
}

Deno.test("trunks round-trip through create, filtered list, get, both update forms and delete", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);

    const inbound = await sip.createSipInboundTrunk("inbound line", ["+15550001111"], {
      metadata: '{"assistant":"a1"}',
      allowedAddresses: ["54.172.60.0/30"],
      authUsername: "in-user",
      authPassword: "in-password",
      krispEnabled: true,
    });
    assert.match(inbound.sipTrunkId, /^ST_[0-9A-Za-z]{12}$/);
    assert.equal(inbound.name, "inbound line");
    assert.deepEqual(inbound.numbers, ["+15550001111"]);
    assert.deepEqual(inbound.allowedAddresses, ["54.172.60.0/30"]);
    assert.equal(inbound.metadata, '{"assistant":"a1"}');
    assert.equal(inbound.krispEnabled, true);

    const first = await sip.createSipOutboundTrunk("first", "first.pstn.twilio.com", [
      "+15550001111",
    ], {
      transport: SIPTransport.SIP_TRANSPORT_TCP,
      destinationCountry: "US",
      authUsername: "out-user",
      authPassword: "out-password",
      metadata: "m1",
    });
    const second = await outboundTrunk(sip, "second.pstn.twilio.com", ["+15550002222"]);
    assert.equal(first.address, "first.pstn.twilio.com");
    assert.equal(first.transport, SIPTransport.SIP_TRANSPORT_TCP);
    assert.equal(first.destinationCountry, "US");
    assert.equal(first.authUsername, "out-user");

    const byNumber = await sip.listSipOutboundTrunk({ numbers: ["+15550002222"] });
    assert.deepEqual(byNumber.map((t) => t.sipTrunkId), [second.sipTrunkId]);
    const byId = await sip.listSipOutboundTrunk({ trunkIds: [first.sipTrunkId] });
    assert.deepEqual(byId.map((t) => t.sipTrunkId), [first.sipTrunkId]);
    const inboundByFormattedNumber = await sip.listSipInboundTrunk({
      numbers: ["+1 (555) 000-1111"],
    });
    assert.deepEqual(inboundByFormattedNumber.map((t) => t.sipTrunkId), [inbound.sipTrunkId]);

    // The SDK has no Get call: use the wire directly and check the real server's JSON shape.
    const res = await fetch(`${lk.url}/twirp/livekit.SIP/GetSIPOutboundTrunk`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${await adminToken({ sip: { admin: true } })}`,
      },
      body: JSON.stringify({ sipTrunkId: first.sipTrunkId }),
    });
    assert.equal(res.status, 200);
    const got = await res.json();
    assert.equal(got.trunk.sip_trunk_id, first.sipTrunkId);
    assert.equal(got.trunk.transport, "SIP_TRANSPORT_TCP");
    assert.equal(got.trunk.destination_country, "US");
    assert.equal(got.trunk.from_host, "", "every field is present, defaults included");

    const updated = await sip.updateSipOutboundTrunkFields(
      first.sipTrunkId,
      new SIPOutboundTrunkUpdate({
        numbers: new ListUpdate({ add: ["+15550003333"] }),
        metadata: "m2",
      }),
    );
    assert.deepEqual(updated.numbers, ["+15550001111", "+15550003333"]);
    assert.equal(updated.metadata, "m2");
    assert.equal(updated.address, "first.pstn.twilio.com");

    const replaced = await sip.updateSipInboundTrunk(
      inbound.sipTrunkId,
      new SIPInboundTrunkInfo({ name: "renamed", numbers: ["+15550004444"] }),
    );
    assert.equal(replaced.sipTrunkId, inbound.sipTrunkId);
    assert.equal(replaced.name, "renamed");
    assert.deepEqual(replaced.allowedAddresses, [], "replace drops fields it does not carry");

    const removedAll = await serverError(
      sip.updateSipOutboundTrunkFields(
        second.sipTrunkId,
        new SIPOutboundTrunkUpdate({ numbers: new ListUpdate({ clear: true }) }),
      ),
    );
    assert.equal(removedAll.message, "no trunk numbers specified");

    await sip.deleteSipTrunk(first.sipTrunkId);
    await sip.deleteSipTrunk("ST_doesnotexist");
    assert.deepEqual((await sip.listSipOutboundTrunk()).map((t) => t.sipTrunkId), [
      second.sipTrunkId,
    ]);
  });
});

Deno.test("a second inbound trunk claiming the same number is refused with invalid_argument", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const existing = await sip.createSipInboundTrunk("first", ["+15550001111"]);
    const err = await serverError(sip.createSipInboundTrunk("second", ["+1 (555) 000-1111"]));
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_argument");
    assert.equal(
      err.message,
      `Conflicting inbound SIP Trunks: "<new>" and "${existing.sipTrunkId}", using the same number(s) ["+1 (555) 000-1111"] without AllowedNumbers set`,
    );

    await sip.deleteSipTrunk(existing.sipTrunkId);
    await sip.createSipInboundTrunk("second", ["+1 (555) 000-1111"]);
  });
});

Deno.test("an outbound trunk address written as a SIP URI is refused", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const uri = await serverError(outboundTrunk(sip, "sip:demo.pstn.twilio.com"));
    assert.equal(uri.code, "invalid_argument");
    assert.equal(uri.message, "trunk address should be a hostname or IP, not SIP URI");
    const at = await serverError(outboundTrunk(sip, "user@demo.pstn.twilio.com"));
    assert.equal(at.message, "trunk address should be a hostname or IP, not SIP URI");
    const transport = await serverError(outboundTrunk(sip, "demo.pstn.twilio.com;transport=tcp"));
    assert.equal(transport.message, "trunk address should not contain transport parameter");
  });
});

Deno.test("trunks missing numbers, an address, or any inbound restriction are refused", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const noNumbers = await serverError(outboundTrunk(sip, "demo.pstn.twilio.com", []));
    assert.equal(noNumbers.code, "invalid_argument");
    assert.equal(noNumbers.message, "no trunk numbers specified");
    const noAddress = await serverError(outboundTrunk(sip, ""));
    assert.equal(noAddress.message, "no outbound address specified");
    const open = await serverError(sip.createSipInboundTrunk("open", []));
    assert.equal(open.code, "invalid_argument");
    assert.match(open.message, /^for security, one of the fields must be set/);
    assert.deepEqual(await sip.listSipOutboundTrunk(), []);
  });
});

Deno.test("a token signed with the wrong secret gets a plain-text 401 quoting the token", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, "not-the-secret-but-long-enough-anyway");
    const err = await serverError(sip.listSipInboundTrunk());
    assert.equal(err.status, 401);
    assert.equal(err.code, undefined, "a plain-text body carries no Twirp code");
    // livekit-server pkg/service/auth.go: "invalid token: " + token + ", error: " + err.
    assert.match(
      err.message,
      /^invalid token: eyJ[\w-]+\.[\w-]+\.[\w-]+, error: token signature is invalid: signature is invalid$/,
    );
    const expired = await serverError(
      new SipClient(lk.url, undefined, undefined, {
        token: await signJwt({ iss: KEY, exp: Math.floor(Date.now() / 1000) - 3600 }, SECRET),
      }).listSipInboundTrunk(),
    );
    assert.match(
      expired.message,
      /^invalid token: eyJ.*, error: token has invalid claims: token is expired$/,
    );
    const garbled = await serverError(
      new SipClient(lk.url, undefined, undefined, { token: "not-a-token" }).listSipInboundTrunk(),
    );
    assert.equal(garbled.message, "invalid authorization token");
  });
});

Deno.test("a token without the sip.admin grant is refused as unauthenticated", async () => {
  await withEmulator({}, async (lk) => {
    const token = await adminToken({ sip: { call: true } });
    const sip = new SipClient(lk.url, undefined, undefined, { token });
    const err = await serverError(sip.listSipInboundTrunk());
    assert.equal(err.status, 401);
    assert.equal(err.code, "unauthenticated");
    assert.equal(err.message, "permissions denied");
  });
});

Deno.test("a second dispatch rule for the same trunk is refused", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await sip.createSipInboundTrunk("in", ["+15550001111"]);
    const rule = await sip.createSipDispatchRule(
      { type: "individual", roomPrefix: "call-" },
      { trunkIds: [trunk.sipTrunkId], name: "assistant a1" },
    );
    assert.match(rule.sipDispatchRuleId, /^SDR_[0-9A-Za-z]{12}$/);
    const err = await serverError(
      sip.createSipDispatchRule({ type: "individual", roomPrefix: "other-" }, {
        trunkIds: [trunk.sipTrunkId],
      }),
    );
    assert.equal(err.code, "invalid_argument");
    assert.equal(
      err.message,
      "Dispatch rule for the same trunk, inbound number, number, and PIN combination already exists in dispatch rule " +
        `"${rule.sipDispatchRuleId}" "assistant a1"`,
    );
    const unchecked = await sip.createSipDispatchRule(
      { type: "direct", roomName: "lobby" },
      { trunkIds: ["ST_nosuchtrunk"] },
    );
    assert.deepEqual(unchecked.trunkIds, ["ST_nosuchtrunk"], "trunk ids are not checked");
    const deleted = await sip.deleteSipDispatchRule(unchecked.sipDispatchRuleId);
    assert.equal(deleted.sipDispatchRuleId, unchecked.sipDispatchRuleId);
    const noRule = await serverError(
      // A rule type the SDK does not know leaves the request without a rule.
      sip.createSipDispatchRule({ type: "none" } as unknown as DispatchRuleArg, {
        trunkIds: [trunk.sipTrunkId],
      }),
    );
    assert.equal(noRule.code, "invalid_argument");
    assert.equal(noRule.message, "missing rule");
    const unknown = await serverError(sip.deleteSipDispatchRule("SDR_doesnotexist"));
    assert.equal(unknown.code, "not_found");
    assert.equal(unknown.message, "requested sip dispatch rule does not exist");
  });
});

Deno.test("a dispatch rule with roomConfig agents round-trips through list", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await sip.createSipInboundTrunk("in", ["+15550001111"]);
    const other = await sip.createSipInboundTrunk("in 2", ["+15550002222"]);
    const created = await sip.createSipDispatchRule({ type: "individual", roomPrefix: "call-" }, {
      trunkIds: [trunk.sipTrunkId],
      name: "a1",
      metadata: "rule meta",
      roomConfig: new RoomConfiguration({
        agents: [
          new RoomAgentDispatch({ agentName: "phone-agent", metadata: '{"assistant":"a1"}' }),
        ],
      }),
    });
    await sip.createSipDispatchRule({ type: "individual", roomPrefix: "call-" }, {
      trunkIds: [other.sipTrunkId],
    });

    const [listed, ...rest] = await sip.listSipDispatchRule({ trunkIds: [trunk.sipTrunkId] });
    assert.equal(rest.length, 0);
    assert.equal(listed.sipDispatchRuleId, created.sipDispatchRuleId);
    assert.equal(listed.rule?.rule.case, "dispatchRuleIndividual");
    assert.equal(listed.rule?.rule.value?.roomPrefix, "call-");
    assert.deepEqual(listed.trunkIds, [trunk.sipTrunkId]);
    assert.equal(listed.metadata, "rule meta");
    assert.equal(listed.roomConfig?.agents[0].agentName, "phone-agent");
    assert.equal(listed.roomConfig?.agents[0].metadata, '{"assistant":"a1"}');
    const byId = await sip.listSipDispatchRule({ dispatchRuleIds: [created.sipDispatchRuleId] });
    assert.equal(byId.length, 1);
  });
});

Deno.test("createSipParticipant on an unknown trunk answers not_found", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const err = await serverError(
      sip.createSipParticipant("ST_doesnotexist", "+15550000000", "room-1", {
        participantIdentity: "callee",
      }),
    );
    assert.equal(err.status, 404);
    assert.equal(err.code, "not_found");
    assert.equal(err.message, "requested sip trunk does not exist");
    assert.deepEqual((await state(lk)).rooms, [], "nothing joined");
  });
});

Deno.test("a busy callee with waitUntilAnswered fails with SipCallError 486", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const err = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000486", "room-busy", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
      }),
    );
    assert.ok(err instanceof SipCallError);
    assert.equal(err.sipStatusCode, 486);
    assert.equal(err.sipStatus, "Busy Here");
    assert.equal(err.code, "resource_exhausted");
    assert.equal(err.status, 429);
    const [call] = (await state(lk)).calls;
    assert.equal(call.outcome, "busy");
  });
});

Deno.test("a callee who never answers times out as canceled 408 without SIP metadata", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const err = await serverError(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000408", "room-no-answer", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
        ringingTimeout: 30,
      }),
    );
    assert.ok(!(err instanceof SipCallError));
    assert.equal(err.status, 408);
    assert.equal(err.code, "canceled");
    assert.equal(err.message, "sip request timed out");
    assert.equal(err.metadata, undefined);
    assert.equal((await state(lk)).calls[0].outcome, "no_answer");
  });
});

Deno.test("a carrier 503 fails as failed_precondition carrying SIP status 503", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const err = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000503", "room-503", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
      }),
    );
    assert.ok(err instanceof SipCallError);
    assert.equal(err.status, 412);
    assert.equal(err.code, "failed_precondition");
    assert.equal(err.sipStatusCode, 503);
    assert.equal(err.sipStatus, "Service Unavailable");
  });
});

Deno.test("the carrier hook can reject a call the way the carrier would", async () => {
  const seen: {
    address: string;
    username: string;
    fromNumber: string;
    toNumber: string;
    invitedAt: number;
  }[] = [];
  const lk = await startLiveKit({
    apiKey: KEY,
    apiSecret: SECRET,
    timeScale: FAST,
    carrier: (call) => {
      seen.push(call);
      return Promise.resolve(
        call.toNumber.endsWith("1234") ? { sipStatusCode: 403, sipStatus: "Forbidden" } : null,
      );
    },
  });
  try {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const err = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550001234", "room-hook", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
      }),
    );
    assert.ok(err instanceof SipCallError);
    assert.equal(err.code, "permission_denied");
    assert.equal(err.sipStatusCode, 403);
    assert.equal(typeof seen[0]?.invitedAt, "number");
    assert.deepEqual(seen, [{
      address: "demo.pstn.twilio.com",
      username: "lk-user",
      password: "lk-password-123",
      fromNumber: CALLER,
      toNumber: "+15550001234",
      transport: "auto",
      invitedAt: seen[0]?.invitedAt,
    }]);
  } finally {
    await lk.close();
  }
});

Deno.test("the INVITE is dated from when the request reached the emulator, plus its latency and the join", async () => {
  const dated: { invitedAt: number; decidedAt: number }[] = [];
  const lk = await startLiveKit({
    apiKey: KEY,
    apiSecret: SECRET,
    timeScale: FAST,
    latencyMs: 40,
    joinDelayMs: 20_000, // 20 ms at this scale
    carrier: ({ invitedAt }) => {
      dated.push({ invitedAt, decidedAt: Date.now() });
      return Promise.resolve(null);
    },
  });
  try {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const sent = Date.now();
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000902", "room-dated", {
      participantIdentity: "callee",
    });
    assert.equal(dated.length, 1);
    const [{ invitedAt, decidedAt }] = dated;
    assert.ok(invitedAt >= sent + 60, `${invitedAt - sent} ms after the request was sent`);
    assert.ok(invitedAt <= decidedAt);
    assert.equal(lk.state().invites[0].at, invitedAt);
  } finally {
    await lk.close();
  }
});

Deno.test("the carrier's verdict takes no simulated time: a slow hook does not run out the ringing timeout", async () => {
  // 60 ms is 60 simulated seconds at this scale: past the 20 s ringing timeout.
  const lk = await startLiveKit({
    apiKey: KEY,
    apiSecret: SECRET,
    timeScale: FAST,
    carrier: () => new Promise((r) => setTimeout(() => r(null), 60)),
  });
  try {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const p = await sip.createSipParticipant(trunk.sipTrunkId, "+15550000902", "room-slow", {
      participantIdentity: "callee",
      waitUntilAnswered: true,
      ringingTimeout: 20,
    });
    assert.match(p.sipCallId, /^SCL_/);
  } finally {
    await lk.close();
  }
});

Deno.test("an answered call without waiting returns at once; signed webhooks report the join and the track at dial time, nothing at answer", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ webhookUrl: hookUrl }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      const info = await sip.createSipParticipant(
        trunk.sipTrunkId,
        "+15550000777",
        "room-answered",
        {
          participantIdentity: "callee-777",
          participantName: "Callee",
          participantAttributes: { campaignCallId: "cc-1" },
        },
      );
      assert.equal(info.participantIdentity, "callee-777");
      assert.equal(info.roomName, "room-answered");
      assert.match(info.participantId, /^PA_[0-9A-Za-z]{12}$/);
      assert.match(info.sipCallId, /^SCL_[0-9A-Za-z]{12}$/);

      await waitFor(
        "room_finished",
        () => received.some((r) => r.body.includes('"room_finished"')),
      );
      const receiver = new WebhookReceiver(KEY, SECRET);
      const events: WebhookEvent[] = [];
      for (const r of received) {
        assert.equal(r.contentType, "application/webhook+json");
        assert.ok(r.auth && !r.auth.startsWith("Bearer"));
        events.push(await receiver.receive(r.body, r.auth));
      }
      assert.deepEqual(events.map((e) => e.event), [
        "room_started",
        "participant_joined",
        "track_published",
        "track_unpublished",
        "participant_left",
        "room_finished",
      ]);
      // The SIP participant publishes its track when it joins, before the INVITE; the event
      // names the participant by sid and identity only.
      const published = events[2];
      assert.equal(published.track?.type, TrackType.AUDIO);
      assert.equal(published.participant?.sid, info.participantId);
      assert.equal(published.participant?.identity, "callee-777");
      assert.equal(published.participant?.kind, ParticipantInfo_Kind.STANDARD, "no kind");
      assert.deepEqual(published.participant?.attributes, {}, "no attributes");
      const [call] = (await state(lk)).calls;
      assert.ok(
        Number(published.createdAt) * 1000 <= (call.answeredAt as number),
        "published no later than the answer",
      );
      assert.equal(events[3].track?.sid, published.track?.sid);
      for (const e of events) {
        assert.match(e.id, /^EV_/);
        assert.ok(e.createdAt > 0n);
        assert.equal(e.room?.name, "room-answered");
      }
      const joined = events[1].participant!;
      assert.equal(joined.kind, ParticipantInfo_Kind.SIP);
      assert.equal(joined.identity, "callee-777");
      assert.equal(joined.sid, info.participantId);
      assert.deepEqual(joined.attributes, {
        campaignCallId: "cc-1",
        "sip.callStatus": "dialing",
        "sip.callID": info.sipCallId,
        "sip.trunkID": trunk.sipTrunkId,
        "sip.phoneNumber": "+15550000777",
        "sip.hostname": "demo.pstn.twilio.com",
        "sip.trunkPhoneNumber": CALLER,
      });
      const left = events[4].participant!;
      assert.equal(left.disconnectReason, DisconnectReason.CLIENT_INITIATED);
      assert.equal(left.attributes["sip.callStatus"], "hangup");
      assert.equal(call.outcome, "completed");
      assert.equal(call.endedBy, "callee");
      assert.equal((await state(lk)).webhooksSent, 6);
    });
  });
});

Deno.test("a tampered webhook body fails verification", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ webhookUrl: hookUrl }, async (lk) => {
      const rooms = new RoomServiceClient(lk.url.replace("http://", "ws://"), KEY, SECRET);
      await rooms.createRoom({ name: "room-tamper" });
      const [hook] = await waitFor("room_started", () => received.length > 0 && received);
      const receiver = new WebhookReceiver(KEY, SECRET);
      assert.equal(
        (await receiver.receive(hook.body, hook.auth ?? undefined)).event,
        "room_started",
      );
      const tampered = hook.body.replace("room-tamper", "room-other");
      await assert.rejects(
        receiver.receive(tampered, hook.auth ?? undefined),
        /sha256 checksum of body does not match/,
      );
      await assert.rejects(
        new WebhookReceiver(KEY, "another-secret-long-enough-to-sign").receive(
          hook.body,
          hook.auth ?? undefined,
        ),
      );
    });
  });
});

Deno.test("a failed call without waiting leaves the room with the matching disconnect reason", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ webhookUrl: hookUrl }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000486", "room-busy", {
        participantIdentity: "busy",
      });
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000480", "room-away", {
        participantIdentity: "away",
      });
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000603", "room-decline", {
        participantIdentity: "decline",
      });
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000503", "room-carrier", {
        participantIdentity: "carrier",
      });
      await waitFor(
        "every call to end",
        () => received.filter((r) => r.body.includes('"participant_left"')).length === 4,
      );
      const receiver = new WebhookReceiver(KEY, SECRET);
      const left = new Map<string, WebhookEvent>();
      for (const r of received) {
        const e = await receiver.receive(r.body, r.auth ?? undefined);
        if (e.event === "participant_left") left.set(e.participant!.identity, e);
      }
      assert.equal(left.get("busy")?.participant?.disconnectReason, DisconnectReason.USER_REJECTED);
      assert.equal(
        left.get("away")?.participant?.disconnectReason,
        DisconnectReason.USER_UNAVAILABLE,
      );
      assert.equal(
        left.get("busy")?.participant?.attributes["sip.callStatus"],
        "dialing",
        "never rang",
      );
      assert.equal(
        left.get("decline")?.participant?.disconnectReason,
        DisconnectReason.USER_REJECTED,
      );
      assert.equal(
        left.get("decline")?.participant?.attributes["sip.callStatus"],
        "ringing",
        "rang, then declined",
      );
      // LiveKit SIP leaves with no reason after a carrier 5xx, which the server records as CLIENT_INITIATED.
      assert.equal(
        left.get("carrier")?.participant?.disconnectReason,
        DisconnectReason.CLIENT_INITIATED,
      );
      assert.equal(left.get("carrier")?.participant?.attributes["sip.callStatus"], "dialing");
    });
  });
});

Deno.test("waitUntilAnswered returns once the callee answers", async () => {
  await withEmulator({ timeScale: 0.01 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000999", "room-wait", {
      participantIdentity: "callee",
      waitUntilAnswered: true,
    });
    lk.configure({ timeScale: 1000 }); // all but stops the clock while we look
    const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
    const [p] = await rooms.listParticipants("room-wait");
    assert.equal(p.attributes["sip.callStatus"], "active");
  });
});

Deno.test("maxCallDuration hangs up an answered call at the limit", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000999", "room-limit", {
      participantIdentity: "callee",
      maxCallDuration: 5,
    });
    const call = await waitFor("the call to end", async () => {
      const [c] = (await state(lk)).calls;
      return c?.endedAt ? c : undefined;
    });
    assert.equal(call.endedBy, "max_call_duration");
    assert.equal(call.outcome, "completed");
  });
});

Deno.test("trunkCps of one rejects the second call in the same second with SIP 503", async () => {
  await withEmulator({ trunkCps: 1 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-cps-1", {
      participantIdentity: "a",
    });
    const err = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000002", "room-cps-2", {
        participantIdentity: "b",
        waitUntilAnswered: true,
      }),
    );
    assert.ok(err instanceof SipCallError);
    assert.equal(err.code, "failed_precondition");
    assert.equal(err.sipStatusCode, 503);
    assert.equal(err.sipStatus, "Trunk CPS limit exceeded");
    const calls = (await state(lk)).calls;
    assert.equal(calls.find((c) => c.identity === "b")?.outcome, "rate_limited");
    assert.notEqual(calls.find((c) => c.identity === "a")?.outcome, "rate_limited");
  });
});

Deno.test("maxConcurrentCalls refuses calls beyond the cap with resource_exhausted", async () => {
  await withEmulator({ timeScale: 1, maxConcurrentCalls: 1 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-cap-1", {
      participantIdentity: "a",
    });
    const err = await serverError(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000002", "room-cap-2", {
        participantIdentity: "b",
      }),
    );
    assert.equal(err.status, 429);
    assert.equal(err.code, "resource_exhausted");
    assert.equal((await state(lk)).calls.length, 1);
  });
});

Deno.test("failureRate of one fails calls with 503 and creates nothing", async () => {
  await withEmulator({ failureRate: 1 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const err = await serverError(outboundTrunk(sip));
    assert.equal(err.status, 503);
    assert.equal(err.code, "unavailable");
    lk.configure({ failureRate: 0 });
    assert.deepEqual(await sip.listSipOutboundTrunk(), []);
  });
});

Deno.test("timeoutRate of one hangs the request and then drops the connection", async () => {
  await withEmulator({ timeoutRate: 1, hangMs: 10 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const err = await rejection(outboundTrunk(sip));
    assert.ok(!(err instanceof ServerError), `expected a transport error, got ${err}`);
    lk.configure({ timeoutRate: 0 });
    assert.deepEqual(await sip.listSipOutboundTrunk(), []);
  });
});

Deno.test("inspection endpoints report requests and state, and accept config and reset", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    await outboundTrunk(sip);
    await serverError(outboundTrunk(sip, ""));

    const { requests } = await (await fetch(`${lk.url}/emulator/requests`)).json();
    assert.deepEqual(
      requests.map((r: Record<string, unknown>) => [r.service, r.method, r.status, r.code]),
      [
        ["livekit.SIP", "CreateSIPOutboundTrunk", 200, undefined],
        ["livekit.SIP", "CreateSIPOutboundTrunk", 400, "invalid_argument"],
      ],
    );
    assert.equal(requests[0].body.trunk.address, "demo.pstn.twilio.com");
    assert.ok(Number.isFinite(requests[0].ms) && typeof requests[0].at === "string");

    const config = await fetch(`${lk.url}/emulator/config`, {
      method: "POST",
      body: JSON.stringify({ trunkCps: 5 }),
    });
    assert.equal((await config.json()).knobs.trunkCps, 5);
    const bad = await fetch(`${lk.url}/emulator/config`, {
      method: "POST",
      body: JSON.stringify({ failureRate: 2 }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();

    const before = await state(lk);
    assert.equal((before.outboundTrunks as unknown[]).length, 1);
    assert.equal((before.knobs as LiveKitKnobs).trunkCps, 5);

    await (await fetch(`${lk.url}/emulator/reset`, { method: "POST" })).body?.cancel();
    const after = await state(lk);
    assert.deepEqual(after.outboundTrunks, []);
    assert.equal((after.knobs as LiveKitKnobs).trunkCps, 0);
    assert.deepEqual((await (await fetch(`${lk.url}/emulator/requests`)).json()).requests, []);
  });
});

Deno.test("createDispatch creates the room and listParticipants shows the SIP participant", async () => {
  await withEmulator({ timeScale: 1 }, async (lk) => {
    const dispatch = new AgentDispatchClient(lk.url, KEY, SECRET);
    const created = await dispatch.createDispatch("room-agent", "phone-agent", {
      metadata: '{"call":"cc-1"}',
    });
    assert.match(created.id, /^AD_[0-9A-Za-z]{12}$/);
    assert.equal(created.agentName, "phone-agent");
    assert.equal(created.metadata, '{"call":"cc-1"}');
    // The new room also got livekit-server's automatic dispatch for agent name "".
    const listed = await dispatch.listDispatch("room-agent");
    assert.deepEqual(listed.map((d) => d.agentName).sort(), ["", "phone-agent"]);
    assert.equal(listed.find((d) => d.agentName === "phone-agent")?.id, created.id);

    const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
    const [room] = await rooms.listRooms();
    assert.equal(room.name, "room-agent");
    assert.match(room.sid, /^RM_[0-9A-Za-z]{12}$/);
    assert.deepEqual(await rooms.listParticipants("room-agent"), []);

    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-agent", {
      participantIdentity: "callee",
    });
    const [p] = await rooms.listParticipants("room-agent");
    assert.equal(p.identity, "callee");
    assert.equal(p.kind, ParticipantInfo_Kind.SIP);
    assert.equal(p.attributes["sip.trunkID"], trunk.sipTrunkId);

    const denied = await serverError(new RoomServiceClient(lk.url, KEY, SECRET, {
      token: await adminToken({ video: { roomAdmin: true, room: "another-room" } }),
    }).listParticipants("room-agent"));
    assert.equal(denied.code, "unauthenticated");
  });
});

Deno.test("deleting a room ends its calls and finishes it; deleting an unknown room is not_found", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ timeScale: 1, webhookUrl: hookUrl }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-delete", {
        participantIdentity: "callee",
      });
      const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
      await rooms.deleteRoom("room-delete");
      await waitFor(
        "room_finished",
        () => received.some((r) => r.body.includes('"room_finished"')),
      );
      const receiver = new WebhookReceiver(KEY, SECRET);
      const events = await Promise.all(
        received.map((r) => receiver.receive(r.body, r.auth ?? undefined)),
      );
      assert.deepEqual(events.map((e) => e.event), [
        "room_started",
        "participant_joined",
        "track_published",
        "track_unpublished",
        "participant_left",
        "room_finished",
      ]);
      assert.equal(events[4].participant?.disconnectReason, DisconnectReason.ROOM_DELETED);
      assert.equal((await state(lk)).calls[0].outcome, "canceled");

      const err = await serverError(rooms.deleteRoom("room-delete"));
      assert.equal(err.code, "not_found");
      assert.equal(err.message, "twirp error unknown: requested room does not exist");
    });
  });
});

Deno.test("unknown Twirp methods answer bad_route with Content-Type application/json", async () => {
  await withEmulator({}, async (lk) => {
    const res = await fetch(`${lk.url}/twirp/livekit.SIP/CreateSIPTrunkTypo`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${await adminToken({ sip: { admin: true } })}`,
      },
      body: "{}",
    });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("Content-Type"), "application/json");
    const body = await res.json();
    assert.equal(body.code, "bad_route");
    assert.equal(body.msg, 'no handler for path "/twirp/livekit.SIP/CreateSIPTrunkTypo"');
  });
});

Deno.test("transferSipParticipant hands an answered call over and the participant leaves", async () => {
  await withEmulator({ timeScale: 0.01 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000999", "room-transfer", {
      participantIdentity: "callee",
      waitUntilAnswered: true,
    });
    lk.configure({ timeScale: 1000 });
    await sip.transferSipParticipant("room-transfer", "callee", "tel:+15550009999");
    lk.configure({ timeScale: FAST });
    const call = await waitFor("the transfer to finish", async () => {
      const [c] = (await state(lk)).calls;
      return c?.endedAt ? c : undefined;
    });
    assert.equal(call.outcome, "transferred");
    assert.equal(call.transferredTo, "tel:+15550009999");
  });
});

Deno.test("every API call checks its own grant", async () => {
  await withEmulator({}, async (lk) => {
    const adminOnly = await adminToken({ sip: { admin: true } });
    const sipAdmin = new SipClient(lk.url, undefined, undefined, { token: adminOnly });
    const trunk = await outboundTrunk(sipAdmin);
    const noCall = await serverError(
      sipAdmin.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-1", {
        participantIdentity: "a",
      }),
    );
    assert.equal(noCall.code, "unauthenticated");

    const otherRoom = await adminToken({ video: { roomAdmin: true, room: "room-2" } });
    const dispatch = new AgentDispatchClient(lk.url, undefined, undefined, { token: otherRoom });
    assert.equal(
      (await serverError(dispatch.createDispatch("room-1", "agent"))).code,
      "unauthenticated",
    );
    await dispatch.createDispatch("room-2", "agent");

    const listOnly = new RoomServiceClient(lk.url, undefined, undefined, {
      token: await adminToken({ video: { roomList: true } }),
    });
    assert.deepEqual((await listOnly.listRooms()).map((r) => r.name), ["room-2"]);
    assert.equal(
      (await serverError(listOnly.createRoom({ name: "room-3" }))).code,
      "unauthenticated",
    );
    assert.equal((await serverError(listOnly.deleteRoom("room-2"))).code, "unauthenticated");
    const createOnly = new RoomServiceClient(lk.url, undefined, undefined, {
      token: await adminToken({ video: { roomCreate: true } }),
    });
    assert.equal((await serverError(createOnly.listRooms())).code, "unauthenticated");
    await createOnly.createRoom({ name: "room-3" });
    await createOnly.deleteRoom("room-3");
  });
});

Deno.test("SIP failures map to the Twirp codes and HTTP statuses LiveKit uses", async () => {
  // Numbers starting +1666 get the carrier's answer named by their last three digits.
  const lk = await startLiveKit({
    apiKey: KEY,
    apiSecret: SECRET,
    timeScale: FAST,
    carrier: ({ toNumber }) => {
      if (!toNumber.startsWith("+1666")) return Promise.resolve(null);
      const code = Number(toNumber.slice(-3));
      const reasons: Record<number, string> = {
        401: "Unauthorized",
        407: "Proxy Authentication Required",
        408: "Request Timeout",
      };
      return Promise.resolve({ sipStatusCode: code, sipStatus: reasons[code] ?? "Other" });
    },
  });
  try {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const cases: [string, number, string, number][] = [
      ["+15550000486", 486, "resource_exhausted", 429],
      ["+15550000480", 480, "resource_exhausted", 429],
      ["+15550000404", 404, "not_found", 404],
      ["+15550000603", 603, "permission_denied", 403],
      ["+15550000503", 503, "failed_precondition", 412],
      ["+15550000401", 401, "permission_denied", 403],
      ["+15550000403", 403, "permission_denied", 403],
      ["+16660000401", 401, "permission_denied", 403],
      ["+16660000407", 407, "unauthenticated", 401],
      ["+16660000408", 408, "deadline_exceeded", 408],
    ];
    for (const [number, sipCode, code, status] of cases) {
      const err = await rejection(
        sip.createSipParticipant(trunk.sipTrunkId, number, `room-${number}`, {
          participantIdentity: "callee",
          waitUntilAnswered: true,
        }),
      );
      assert.ok(err instanceof SipCallError, `${number}: ${err}`);
      assert.deepEqual([err.sipStatusCode, err.code, err.status], [sipCode, code, status], number);
      if (number.startsWith("+1555000040")) {
        const reason = sipCode === 401 ? "Unauthorized" : sipCode === 403 ? "Forbidden" : "";
        if (reason) assert.equal(err.sipStatus, reason, number);
      }
    }
  } finally {
    await lk.close();
  }
});

Deno.test("requests LiveKit would reject are refused with its messages", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const refused = async (p: Promise<unknown>) => {
      const err = await serverError(p);
      assert.equal(err.code, "invalid_argument");
      return err.message;
    };
    assert.equal(
      await refused(
        sip.createSipParticipant(trunk.sipTrunkId, "alice@example.com", "room-1", {
          participantIdentity: "a",
        }),
      ),
      "SipCallTo should be a phone number or SIP user, not a full SIP URI",
    );
    assert.equal(
      await refused(
        sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "", {
          participantIdentity: "a",
        }),
      ),
      "missing room name",
    );
    assert.equal(
      await refused(
        sip.createSipParticipant(trunk.sipTrunkId, "", "room-1", { participantIdentity: "a" }),
      ),
      "missing sip callee number",
    );
    assert.equal(
      await refused(
        sip.createSipParticipant("", "+15550000001", "room-1", { participantIdentity: "a" }),
      ),
      "missing sip trunk id and sip number",
    );
    assert.equal(
      await refused(outboundTrunk(sip, "sips:demo.pstn.twilio.com")),
      "trunk address should be a hostname or IP, not SIP URI",
    );

    // The SDK never sends an id on create; the wire does not stop a client from trying.
    const res = await fetch(`${lk.url}/twirp/livekit.SIP/CreateSIPInboundTrunk`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${await adminToken({ sip: { admin: true } })}`,
      },
      body: JSON.stringify({ trunk: { sipTrunkId: "ST_mine", numbers: ["+15550001111"] } }),
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      code: "invalid_argument",
      msg: "trunk id must not be set",
    });
    assert.deepEqual((await state(lk)).rooms, []);
  });
});

Deno.test("an agent dispatch retried with the same request id is a new dispatch, as on livekit-server", async () => {
  await withEmulator({}, async (lk) => {
    const token = await adminToken({ video: { roomAdmin: true, room: "room-retry" } });
    const create = async () => {
      const res = await fetch(`${lk.url}/twirp/livekit.AgentDispatchService/CreateDispatch`, {
        method: "POST",
        headers: {
          "Content-Type": "application/json;charset=UTF-8",
          Authorization: `Bearer ${token}`,
          "X-Livekit-Request-Id": "3b6f4ad8-0a39-4c6e-9d0e-5c1f4b3f9a10",
        },
        body: JSON.stringify({ room: "room-retry", agentName: "phone-agent" }),
      });
      assert.equal(res.status, 200);
      return (await res.json()).id;
    };
    const first = await create();
    assert.match(first, /^AD_[0-9A-Za-z]{12}$/);
    const second = await create();
    assert.match(second, /^AD_[0-9A-Za-z]{12}$/);
    assert.notEqual(second, first, "livekit-server gives each CreateDispatch a new random id");
    const dispatch = new AgentDispatchClient(lk.url, KEY, SECRET);
    const mine = (await dispatch.listDispatch("room-retry")).filter((d) =>
      d.agentName === "phone-agent"
    );
    assert.deepEqual(mine.map((d) => d.id).sort(), [first, second].sort());
  });
});

Deno.test('every new room gets a dispatch for agent name ""; only a worker without a name takes it', async () => {
  await withEmulator({ timeScale: 0.01 }, async (lk) => {
    const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
    const dispatch = new AgentDispatchClient(lk.url, KEY, SECRET);
    const sip = new SipClient(lk.url, KEY, SECRET);
    const names = async (room: string) =>
      (await dispatch.listDispatch(room)).map((d) => d.agentName).sort();

    // CreateRoom without agents, a dispatch's room and a call's room: the automatic dispatch.
    await rooms.createRoom({ name: "room-plain" });
    assert.deepEqual(await names("room-plain"), [""]);
    await dispatch.createDispatch("room-dispatched", "phone-agent");
    assert.deepEqual(await names("room-dispatched"), ["", "phone-agent"]);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-called", {
      participantIdentity: "callee",
    });
    assert.deepEqual(await names("room-called"), [""]);
    // CreateRoom with agents: those instead.
    await rooms.createRoom({
      name: "room-with-agents",
      agents: [new RoomAgentDispatch({ agentName: "front-desk", metadata: "m" })],
    });
    assert.deepEqual(
      (await dispatch.listDispatch("room-with-agents")).map((d) => [d.agentName, d.metadata]),
      [["front-desk", "m"]],
    );

    // No worker registered without a name (the default): the job is dropped, nothing joins for
    // it; the named agent joins with lk.agent_name set (livekit pkg/agent/worker.go).
    const agentsIn = async (room: string) =>
      (await rooms.listParticipants(room)).filter((p) => p.kind === ParticipantInfo_Kind.AGENT);
    await waitFor("the phone agent", async () => (await agentsIn("room-dispatched")).length > 0);
    const [phoneAgent] = await agentsIn("room-dispatched");
    assert.equal(phoneAgent.attributes["lk.agent_name"], "phone-agent");
    assert.equal(phoneAgent.attributes["lk.agent.state"], "listening");
    assert.deepEqual(await agentsIn("room-called"), []);
    assert.ok(lk.state().agentJobs.every((j) => j.agentName !== ""), 'no job for agent name ""');

    // A worker registered without a name joins every new room through that dispatch.
    lk.configure({ unnamedAgentWorkers: -1 });
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000002", "room-called-2", {
      participantIdentity: "callee",
    });
    await waitFor("the unnamed agent", async () => (await agentsIn("room-called-2")).length > 0);
    const [unnamed] = await agentsIn("room-called-2");
    assert.equal(unnamed.attributes["lk.agent_name"], "");
  });
});

Deno.test("at time scale zero every call still plays out in simulated-time order", async () => {
  await withEmulator({ timeScale: 0 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const dial = (to: string, identity: string, maxCallDuration?: number) =>
      sip.createSipParticipant(trunk.sipTrunkId, to, `room-${identity}`, {
        participantIdentity: identity,
        maxCallDuration,
      });
    await dial("+15550000777", "talks");
    await dial("+15550000603", "declines");
    await dial("+15550000408", "never-answers");
    await dial("+15550000999", "cut-off", 5);
    const calls = await waitFor("every call to end", async () => {
      const all = (await state(lk)).calls;
      return all.length === 4 && all.every((c) => c.endedAt) ? all : undefined;
    });
    const byIdentity = new Map(calls.map((c) => [c.identity, c]));
    assert.deepEqual(
      [byIdentity.get("talks")?.outcome, byIdentity.get("talks")?.endedBy],
      ["completed", "callee"],
    );
    assert.equal(byIdentity.get("declines")?.outcome, "declined");
    assert.equal(byIdentity.get("never-answers")?.outcome, "no_answer");
    assert.deepEqual(
      [byIdentity.get("cut-off")?.outcome, byIdentity.get("cut-off")?.endedBy],
      ["completed", "max_call_duration"],
    );
  });
});

Deno.test("a new time scale applies to calls already in progress", async () => {
  await withEmulator({ timeScale: 1 }, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-rescale", {
      participantIdentity: "callee",
    });
    assert.equal(
      (await state(lk)).calls[0].endedAt,
      undefined,
      "at real time the call lasts 21.5 s",
    );
    lk.configure({ timeScale: 0 });
    const call = await waitFor("the call to finish", async () => {
      const [c] = (await state(lk)).calls;
      return c?.endedAt ? c : undefined;
    });
    assert.deepEqual([call.outcome, call.endedBy], ["completed", "callee"]);
  });
});

Deno.test("a request without a token has no grants and is refused as unauthenticated", async () => {
  await withEmulator({}, async (lk) => {
    const res = await fetch(`${lk.url}/twirp/livekit.SIP/ListSIPInboundTrunk`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { code: "unauthenticated", msg: "permissions denied" });
  });
});

Deno.test("Twirp protobuf bodies are understood as well as JSON", async () => {
  await withEmulator({}, async (lk) => {
    const sip = new SipClient(lk.url, KEY, SECRET);
    const trunk = await outboundTrunk(sip);
    const res = await fetch(`${lk.url}/twirp/livekit.SIP/ListSIPOutboundTrunk`, {
      method: "POST",
      headers: {
        "Content-Type": "application/protobuf",
        Authorization: `Bearer ${await adminToken({ sip: { admin: true } })}`,
      },
      body: new Uint8Array(
        new ListSIPOutboundTrunkRequest({ trunkIds: [trunk.sipTrunkId] }).toBinary(),
      ),
    });
    assert.equal(res.headers.get("Content-Type"), "application/protobuf");
    const list = ListSIPOutboundTrunkResponse.fromBinary(new Uint8Array(await res.arrayBuffer()));
    assert.deepEqual(list.items.map((t) => t.sipTrunkId), [trunk.sipTrunkId]);
  });
});

/** Engages the SDK's failover on a local host; the SipClient constructor does not pass it on. */
function forceFailover(client: SipClient): SipClient {
  (client as unknown as { rpc: { failoverForce: boolean } }).rpc.failoverForce = true;
  return client;
}

async function requestLog(lk: LiveKitEmulator): Promise<RequestLogEntry[]> {
  return (await (await fetch(`${lk.url}/emulator/requests`)).json()).requests;
}

async function dials(lk: LiveKitEmulator): Promise<RequestLogEntry[]> {
  return (await requestLog(lk)).filter((r) => r.method === "CreateSIPParticipant");
}

Deno.test("/settings/regions lists the other regions as LiveKit Cloud does, and every region shares one state", async () => {
  await withEmulator({ regions: 2 }, async (lk) => {
    assert.equal(lk.regionUrls.length, 2);
    const token = await adminToken({ sip: { call: true } });
    const res = await fetch(`${lk.url}/settings/regions`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("Cache-Control") ?? "", /max-age=\d+/);
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["regions"]);
    assert.deepEqual(
      body.regions.map((r: Record<string, unknown>) => Object.keys(r).sort()),
      [["distance", "region", "url"], ["distance", "region", "url"]],
    );
    assert.deepEqual(
      body.regions.map((r: { url: string }) => r.url.replace(/^ws/, "http")),
      lk.regionUrls,
      "the regional URLs, not the project URL",
    );
    assert.equal(typeof body.regions[0].distance, "string", "int64 as protojson writes it");

    const anonymous = await fetch(`${lk.url}/settings/regions`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();

    // A trunk created through one region is seen through the others.
    const viaRegion = new SipClient(lk.regionUrls[1], KEY, SECRET);
    const trunk = await outboundTrunk(viaRegion);
    const primary = new SipClient(lk.url, KEY, SECRET);
    assert.deepEqual((await primary.listSipOutboundTrunk()).map((t) => t.sipTrunkId), [
      trunk.sipTrunkId,
    ]);
    assert.deepEqual((await requestLog(lk)).map((r) => r.region), ["region-2", "primary"]);
    assert.deepEqual(lk.state().regions.map((r) => r.region), [
      "primary",
      "region-1",
      "region-2",
    ]);
  });
  await withEmulator({}, async (lk) => {
    const res = await fetch(`${lk.url}/settings/regions`, {
      headers: { Authorization: `Bearer ${await adminToken({ sip: { call: true } })}` },
    });
    assert.equal(res.status, 404, "without regions it answers like a self-hosted server");
    await res.body?.cancel();
  });
});

Deno.test("with failover forced, a dial whose answer is lost rings once per attempt, under one request id", async () => {
  for (const regions of [1, 2]) {
    // Real time, so every call is still ringing when the SDK replays the request.
    await withEmulator({ regions, answerFailureRate: 1, timeScale: 1 }, async (lk) => {
      const sip = forceFailover(new SipClient(lk.url, KEY, SECRET));
      const trunk = await outboundTrunk(sip);
      const err = await serverError(
        sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-replayed", {
          participantIdentity: "callee",
        }),
      );
      assert.equal(err.status, 503);
      assert.equal(err.code, "unavailable");

      const st = lk.state();
      assert.equal(st.invitesByRoom["room-replayed"], regions + 1, `${regions} extra region(s)`);
      const ids = Object.keys(st.invitesByRequestId);
      assert.equal(ids.length, 1, "the SDK keeps X-Livekit-Request-Id across replays");
      assert.equal(st.invitesByRequestId[ids[0]], regions + 1);
      assert.deepEqual(
        st.invites.map((i) => i.region),
        ["primary", "region-1", "region-2"].slice(0, regions + 1),
      );
      // Each replay joins the same identity again: the earlier participant is replaced and
      // its call hung up, but every attempt placed a call.
      assert.equal(st.calls.length, regions + 1);
      assert.deepEqual(
        st.calls.slice(0, -1).map((c) => [c.outcome, c.disconnectReason]),
        st.calls.slice(0, -1).map(() => ["canceled", "DUPLICATE_IDENTITY"]),
      );
      const creates = await dials(lk);
      assert.deepEqual(creates.map((r) => r.status), creates.map(() => 503));
      assert.deepEqual(creates.map((r) => r.requestId), creates.map(() => ids[0]));
    });
  }
});

Deno.test("with failover: false the same lost answer is not replayed: one INVITE", async () => {
  await withEmulator({ regions: 2, answerFailureRate: 1 }, async (lk) => {
    const sip = forceFailover(new SipClient(lk.url, KEY, SECRET, { failover: false }));
    const trunk = await outboundTrunk(sip);
    const err = await serverError(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-once", {
        participantIdentity: "callee",
      }),
    );
    assert.equal(err.status, 503);
    const st = lk.state();
    assert.equal(st.invitesByRoom["room-once"], 1);
    assert.equal((await dials(lk)).length, 1);
    // The call was placed all the same: the participant is in the room and the call goes on.
    assert.equal(st.calls.length, 1);
    assert.equal(st.calls[0].requestId, Object.keys(st.invitesByRequestId)[0]);
    const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
    assert.deepEqual((await rooms.listParticipants("room-once")).map((p) => p.identity), [
      "callee",
    ]);
  });
});

Deno.test("with failover forced, an answer dropped after the call was placed is replayed too", async () => {
  await withEmulator({ regions: 2, answerTimeoutRate: 1, hangMs: 10 }, async (lk) => {
    const sip = forceFailover(new SipClient(lk.url, KEY, SECRET));
    const trunk = await outboundTrunk(sip);
    const err = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-dropped", {
        participantIdentity: "callee",
      }),
    );
    assert.ok(!(err instanceof ServerError), `expected a transport error, got ${err}`);
    // Once per region, and Deno's fetch may itself resend a request whose reused
    // keep-alive connection closed without an answer.
    const creates = await dials(lk);
    assert.ok(creates.length >= 3, `${creates.length} attempts`);
    assert.deepEqual([...new Set(creates.map((r) => r.region))], [
      "primary",
      "region-1",
      "region-2",
    ]);
    assert.ok(creates.every((r) => r.code === "dropped"));
    assert.equal(lk.state().invitesByRoom["room-dropped"], creates.length);
  });
});

Deno.test("with failover forced, 4xx answers are not replayed", async () => {
  await withEmulator({ regions: 2 }, async (lk) => {
    const sip = forceFailover(new SipClient(lk.url, KEY, SECRET));
    const trunk = await outboundTrunk(sip);
    const busy = await rejection(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000486", "room-busy", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
      }),
    );
    assert.ok(busy instanceof SipCallError && busy.status === 429);
    const unknown = await serverError(
      sip.createSipParticipant("ST_doesnotexist", "+15550000001", "room-unknown", {
        participantIdentity: "callee",
      }),
    );
    assert.equal(unknown.status, 404);
    assert.equal((await dials(lk)).length, 2);
    assert.equal(lk.state().invites.length, 1);
  });
});

Deno.test("answerFailureRate places the call and only loses the answer; failureRate does nothing", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ answerFailureRate: 1, webhookUrl: hookUrl }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      const lost = await serverError(
        sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-lost", {
          participantIdentity: "callee",
        }),
      );
      assert.equal(lost.status, 503);
      const call = await waitFor("the call placed anyway to end", () => {
        const [c] = lk.state().calls;
        return c?.endedAt ? c : undefined;
      });
      assert.deepEqual([call.outcome, call.endedBy], ["completed", "callee"]);
      await waitFor("participant_left", () => received.some((r) => r.body.includes("_left")));

      lk.configure({ answerFailureRate: 0, failureRate: 1 });
      const refused = await serverError(
        sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-refused", {
          participantIdentity: "callee",
        }),
      );
      assert.equal(refused.status, 503);
      assert.deepEqual(Object.keys(lk.state().invitesByRoom), ["room-lost"]);
    });
  });
});

Deno.test("the SIP participant publishes its track at join, before the INVITE; the answer changes attributes and sends no webhook", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    // At this scale the call all but stands still until the scale changes.
    await withEmulator({ timeScale: 1000, webhookUrl: hookUrl }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      const info = await sip.createSipParticipant(trunk.sipTrunkId, "+15550000777", "room-track", {
        participantIdentity: "callee",
      });
      const receiver = new WebhookReceiver(KEY, SECRET);
      const events = async () =>
        await Promise.all(received.map((r) => receiver.receive(r.body, r.auth ?? undefined)));
      await waitFor("track_published", () => received.length >= 3);
      const [, , published] = await events();
      assert.equal(published.event, "track_published");
      assert.deepEqual(published.participant?.toJson(), {
        sid: info.participantId,
        identity: "callee",
      });
      assert.equal(published.track?.type, TrackType.AUDIO);
      assert.equal(published.track?.name, "callee");

      const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
      const dialing = await rooms.getParticipant("room-track", "callee");
      assert.equal(dialing.attributes["sip.callStatus"], "dialing", "published before any answer");
      assert.deepEqual(dialing.tracks.map((t) => t.sid), [published.track?.sid]);
      assert.equal(lk.state().invites.length, 1, "the INVITE went out after the track");

      lk.configure({ timeScale: FAST });
      await waitFor("the answer", async () => {
        const p = await rooms.getParticipant("room-track", "callee");
        return p.attributes["sip.callStatus"] === "active";
      });
      lk.configure({ timeScale: 1000 });
      await delay(50);
      assert.deepEqual((await events()).map((e) => e.event), [
        "room_started",
        "participant_joined",
        "track_published",
      ]);

      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000408", "room-ringing", {
        participantIdentity: "ringing",
      });
      lk.configure({ timeScale: FAST });
      await waitFor("ringing", async () => {
        const p = await rooms.getParticipant("room-ringing", "ringing").catch(() => null);
        return p?.attributes["sip.callStatus"] === "ringing";
      });
    });
  });
});

Deno.test("a failed call without waiting leaves with the reason livekit/sip gives its call status", async () => {
  // Numbers starting +1666 get the carrier answer named by their last three digits.
  const reasons: Record<number, string> = {
    407: "Proxy Authentication Required",
    410: "Gone",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    600: "Busy Everywhere",
  };
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({
      webhookUrl: hookUrl,
      carrier: ({ toNumber }) => {
        if (!toNumber.startsWith("+1666")) return Promise.resolve(null);
        const code = Number(toNumber.slice(-3));
        return Promise.resolve({ sipStatusCode: code, sipStatus: reasons[code] ?? "Other" });
      },
    }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      const cases: [string, string, string, string][] = [
        // callee, participant's disconnect reason, SIP call info's reason, outcome
        ["+15550000401", "USER_REJECTED", "USER_REJECTED", "unauthorized"],
        ["+16660000407", "USER_REJECTED", "USER_REJECTED", "unauthorized"],
        ["+15550000403", "USER_REJECTED", "USER_REJECTED", "forbidden"],
        ["+15550000486", "USER_REJECTED", "USER_REJECTED", "busy"],
        ["+16660000488", "USER_REJECTED", "USER_REJECTED", "failed"],
        ["+15550000603", "USER_REJECTED", "USER_REJECTED", "declined"],
        ["+16660000600", "USER_REJECTED", "USER_REJECTED", "busy"],
        ["+15550000404", "USER_UNAVAILABLE", "USER_UNAVAILABLE", "not_found"],
        ["+15550000480", "USER_UNAVAILABLE", "USER_UNAVAILABLE", "unavailable"],
        ["+15550000408", "USER_UNAVAILABLE", "USER_UNAVAILABLE", "no_answer"],
        // Other 4xx: a rejected call status on the participant, "unavailable" in the call info.
        ["+16660000410", "USER_REJECTED", "USER_UNAVAILABLE", "failed"],
        // Other 5xx: a dropped call leaves with no reason, recorded as CLIENT_INITIATED.
        ["+15550000503", "CLIENT_INITIATED", "SIP_TRUNK_FAILURE", "failed"],
        ["+16660000500", "CLIENT_INITIATED", "SIP_TRUNK_FAILURE", "failed"],
      ];
      for (const [number] of cases) {
        await sip.createSipParticipant(trunk.sipTrunkId, number, `room-${number}`, {
          participantIdentity: number,
          ringingTimeout: 30,
        });
      }
      // A carrier's CPS limit: rejected on the participant, a trunk failure in the call info.
      lk.configure({ trunkCps: 1 });
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-first", {
        participantIdentity: "first",
      });
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000002", "room-cps", {
        participantIdentity: "cps",
      });
      cases.push(["cps", "USER_REJECTED", "SIP_TRUNK_FAILURE", "rate_limited"]);

      const receiver = new WebhookReceiver(KEY, SECRET);
      const left = await waitFor("every failed call to leave", async () => {
        const byIdentity = new Map<string, WebhookEvent>();
        for (const r of received) {
          const e = await receiver.receive(r.body, r.auth ?? undefined);
          if (e.event === "participant_left") byIdentity.set(e.participant!.identity, e);
        }
        return cases.every(([identity]) => byIdentity.has(identity)) && byIdentity;
      });
      const calls = new Map(lk.state().calls.map((c) => [c.identity, c]));
      for (const [identity, reason, callInfoReason, outcome] of cases) {
        const e = left.get(identity);
        assert.equal(
          DisconnectReason[e?.participant?.disconnectReason ?? 0],
          reason,
          `${identity} leaves with ${reason}`,
        );
        assert.notEqual(e?.participant?.attributes["sip.callStatus"], "active");
        const call = calls.get(identity);
        assert.deepEqual(
          [call?.sipCallDisconnectReason, call?.outcome],
          [callInfoReason, outcome],
          identity,
        );
      }
    });
  });
});

Deno.test("joinDelayMs: a SIP participant slower to join than livekit-server waits fails the request, and nothing dials", async () => {
  await withEmulator({ joinDelayMs: 31_000, regions: 2 }, async (lk) => {
    const sip = forceFailover(new SipClient(lk.url, KEY, SECRET));
    const trunk = await outboundTrunk(sip);
    const err = await serverError(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-slow", {
        participantIdentity: "callee",
      }),
    );
    assert.deepEqual([err.status, err.code, err.message], [
      408,
      "deadline_exceeded",
      "request timed out",
    ]);
    assert.equal((await dials(lk)).length, 1, "a 408 is not replayed");
    const st = lk.state();
    assert.deepEqual([st.invites, st.calls, st.participants], [[], [], []]);

    // Under 30 s the answer waits for the join.
    lk.configure({ joinDelayMs: 29_000 });
    const started = performance.now();
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-slow", {
      participantIdentity: "callee",
    });
    assert.ok(performance.now() - started >= 29 * FAST * 1000);
    assert.equal(lk.state().invites.length, 1);

    // Waiting for the answer, the server allows 80 s for join and ringing together.
    lk.configure({ joinDelayMs: 31_000 });
    await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-slow-wait", {
      participantIdentity: "callee",
      waitUntilAnswered: true,
    });
    lk.configure({ joinDelayMs: 79_000 });
    const late = await serverError(
      sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-late", {
        participantIdentity: "callee",
        waitUntilAnswered: true,
      }),
    );
    assert.deepEqual([late.code, late.message], ["deadline_exceeded", "request timed out"]);
    const answeredLate = await waitFor(
      "the late call to be answered anyway",
      () => lk.state().calls.find((c) => c.room === "room-late" && c.answeredAt),
    );
    assert.equal(answeredLate.identity, "callee");
  });
});

Deno.test("webhookDropRate drops events for good; the next delivered event counts them in numDropped", async () => {
  await withWebhookSink(async (hookUrl, received) => {
    await withEmulator({ webhookUrl: hookUrl, webhookDropRate: 1 }, async (lk) => {
      const sip = new SipClient(lk.url, KEY, SECRET);
      const trunk = await outboundTrunk(sip);
      await sip.createSipParticipant(trunk.sipTrunkId, "+15550000001", "room-dropped", {
        participantIdentity: "callee",
      });
      await waitFor("the call to end", () => lk.state().calls[0]?.endedAt);
      const dropped = await waitFor("room_finished to be dropped", async () => {
        const st = await state(lk);
        const counts = st.webhooksDropped as Record<string, number>;
        return counts.room_finished ? counts : undefined;
      });
      assert.deepEqual(dropped, {
        room_started: 1,
        participant_joined: 1,
        track_published: 1,
        track_unpublished: 1,
        participant_left: 1,
        room_finished: 1,
      });
      assert.equal(received.length, 0);

      lk.configure({ webhookDropRate: 0 });
      const rooms = new RoomServiceClient(lk.url, KEY, SECRET);
      await rooms.createRoom({ name: "room-after" });
      await waitFor("room_started", () => received.length === 1);
      const event = await new WebhookReceiver(KEY, SECRET).receive(
        received[0].body,
        received[0].auth ?? undefined,
      );
      assert.equal(event.event, "room_started");
      assert.equal(event.numDropped, 6);
      assert.equal(lk.state().webhookDeliveries.filter((d) => d.dropped).length, 6);
    });
  });
});
