// The Twilio emulator, driven only through the real `twilio` library via createTwilioClient.

import assert from "node:assert/strict";
import twilio from "twilio";
import { DisconnectReason, SIPTransport } from "@livekit/protocol";
import { SipCallError, SipClient } from "livekit-server-sdk";
import { startLiveKit } from "../../stack/emulators/livekit/server.ts";
import { createTwilioClient } from "../../supabase/functions/_shared/twilio_client.ts";
import {
  startTwilio,
  type TwilioEmulator,
  type TwilioEmulatorOptions,
} from "../../stack/emulators/twilio/server.ts";

const ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN = "emulator-auth-token";
const CALLER = "+15550100001";
const OTHER_NUMBER = "+15550100002";
const STRONG_PASSWORD = "Str0ngEnoughPass";

type Client = ReturnType<typeof createTwilioClient>;

async function withTwilio(
  options: Partial<TwilioEmulatorOptions>,
  run: (emulator: TwilioEmulator, client: Client) => Promise<void>,
): Promise<void> {
  const emulator = await startTwilio({
    accountSid: ACCOUNT_SID,
    authToken: AUTH_TOKEN,
    port: 0,
    numbers: [{ phoneNumber: CALLER }, { phoneNumber: OTHER_NUMBER }],
    ...options,
  });
  try {
    const client = createTwilioClient({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      baseUrl: emulator.url,
    });
    await run(emulator, client);
  } finally {
    await emulator.close();
  }
}

/** Asserts that `promise` rejects with Twilio's RestException carrying `status` and `code`. */
async function rejectsWith(
  promise: Promise<unknown>,
  status: number,
  code: number,
  messagePart?: string,
): Promise<InstanceType<typeof twilio.RestException>> {
  let caught: unknown;
  await assert.rejects(promise, (e) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof twilio.RestException, `expected a RestException, got ${caught}`);
  assert.equal(caught.status, status);
  assert.equal(caught.code, code);
  assert.equal(caught.moreInfo, `https://www.twilio.com/docs/errors/${code}`);
  if (messagePart) assert.match(caught.message, new RegExp(messagePart));
  return caught;
}

async function numberSid(client: Client, phoneNumber: string): Promise<string> {
  const [number] = await client.incomingPhoneNumbers.list({ phoneNumber });
  assert.ok(number, `${phoneNumber} should be on the account`);
  return number.sid;
}

/** A trunk with a credential list holding `username` / STRONG_PASSWORD and CALLER attached. */
async function provisionTrunk(client: Client, domainName: string, username = "livekit") {
  const trunk = await client.trunking.v1.trunks.create({ friendlyName: "Calls", domainName });
  const list = await client.sip.credentialLists.create({ friendlyName: `${domainName} auth` });
  await client.sip.credentialLists(list.sid).credentials.create({
    username,
    password: STRONG_PASSWORD,
  });
  await client.trunking.v1.trunks(trunk.sid).credentialsLists.create({
    credentialListSid: list.sid,
  });
  await client.trunking.v1.trunks(trunk.sid).phoneNumbers.create({
    phoneNumberSid: await numberSid(client, CALLER),
  });
  return { trunk, list };
}

Deno.test("a wrong auth token is refused with 401 and code 20003", async () => {
  await withTwilio({}, async (emulator) => {
    const client = createTwilioClient({
      accountSid: ACCOUNT_SID,
      authToken: "not-the-token",
      baseUrl: emulator.url,
    });
    await rejectsWith(client.incomingPhoneNumbers.list(), 401, 20003, "Authenticate");
    await rejectsWith(client.trunking.v1.trunks.list(), 401, 20003);
  });
});

Deno.test("a number is found by its E.164 phone number", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const found = await client.incomingPhoneNumbers.list({ phoneNumber: CALLER });
    assert.equal(found.length, 1);
    const [number] = found;
    assert.equal(number.phoneNumber, CALLER);
    assert.match(number.sid, /^PN[0-9a-f]{32}$/);
    assert.equal(number.accountSid, ACCOUNT_SID);
    assert.equal(number.friendlyName, "(555) 010-0001");
    assert.equal(number.trunkSid, null);
    assert.ok(number.dateCreated instanceof Date, "date_created parses as an RFC 2822 date");
    assert.equal(number.capabilities.voice, true);

    const fetched = await client.incomingPhoneNumbers(number.sid).fetch();
    assert.equal(fetched.phoneNumber, CALLER);
    assert.deepEqual(await client.incomingPhoneNumbers.list({ phoneNumber: "+15559999999" }), []);
  });
});

Deno.test("fetching an unknown phone number sid fails with 404 and code 20404", async () => {
  await withTwilio({}, async (_emulator, client) => {
    await rejectsWith(
      client.incomingPhoneNumbers(`PN${"0".repeat(32)}`).fetch(),
      404,
      20404,
      "was not found",
    );
  });
});

Deno.test("listing 25 numbers ten at a time returns each number once across three pages", async () => {
  const numbers = Array.from({ length: 25 }, (_, i) => ({
    phoneNumber: `+1555020${String(i).padStart(4, "0")}`,
  }));
  await withTwilio({ numbers }, async (emulator, client) => {
    const listed = await client.incomingPhoneNumbers.list({ pageSize: 10 });
    assert.deepEqual(
      listed.map((n) => n.phoneNumber),
      numbers.map((n) => n.phoneNumber),
    );
    const pageRequests = emulator.requests().filter((r) =>
      r.path.endsWith("/IncomingPhoneNumbers.json")
    );
    assert.equal(pageRequests.length, 3);
    assert.deepEqual(pageRequests.map((r) => r.query.Page ?? "0"), ["0", "1", "2"]);

    const visited: string[] = [];
    await client.incomingPhoneNumbers.each({ pageSize: 10 }, (n) => {
      visited.push(n.sid);
    });
    assert.equal(visited.length, 25);
    assert.equal(new Set(visited).size, 25);

    const limited = await client.incomingPhoneNumbers.list({ limit: 12, pageSize: 5 });
    assert.equal(limited.length, 12);
  });
});

Deno.test("trunks list across pages in the v1 meta format", async () => {
  await withTwilio({}, async (_emulator, client) => {
    for (const name of ["one", "two", "three"]) {
      await client.trunking.v1.trunks.create({
        friendlyName: name,
        domainName: `${name}.pstn.twilio.com`,
      });
    }
    const trunks = await client.trunking.v1.trunks.list({ pageSize: 2 });
    assert.deepEqual(trunks.map((t) => t.friendlyName), ["one", "two", "three"]);
    const page = await client.trunking.v1.trunks.page({ pageSize: 2 });
    assert.equal(page.instances.length, 2);
    assert.ok(page.nextPageUrl);
    const next = await page.nextPage();
    assert.ok(next);
    assert.deepEqual(next.instances.map((t) => t.friendlyName), ["three"]);
    assert.equal(next.nextPageUrl, undefined);
  });
});

Deno.test("a trunk whose domain does not end in pstn.twilio.com is refused", async () => {
  await withTwilio({}, async (_emulator, client) => {
    await rejectsWith(
      client.trunking.v1.trunks.create({ domainName: "calls.example.com" }),
      400,
      21245,
      "pstn.twilio.com",
    );
    await rejectsWith(
      client.trunking.v1.trunks.create({ domainName: "under_score.pstn.twilio.com" }),
      400,
      21245,
    );
    await rejectsWith(
      client.trunking.v1.trunks.create({ friendlyName: "x".repeat(65) }),
      400,
      21245,
      "64",
    );
    assert.deepEqual(await client.trunking.v1.trunks.list(), []);
  });
});

Deno.test("a trunk domain already taken is refused with 21248", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const trunk = await client.trunking.v1.trunks.create({
      friendlyName: "Calls",
      domainName: "acme-calls.pstn.twilio.com",
    });
    assert.match(trunk.sid, /^TK[0-9a-f]{32}$/);
    assert.equal(trunk.domainName, "acme-calls.pstn.twilio.com");
    assert.ok(trunk.dateCreated instanceof Date, "date_created parses as ISO 8601");
    await rejectsWith(
      client.trunking.v1.trunks.create({ domainName: "ACME-calls.pstn.twilio.com" }),
      400,
      21248,
    );
  });
});

Deno.test("a deleted trunk's domain stays reserved", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const trunk = await client.trunking.v1.trunks.create({ domainName: "once.pstn.twilio.com" });
    await client.trunking.v1.trunks(trunk.sid).remove();
    await rejectsWith(
      client.trunking.v1.trunks.create({ domainName: "once.pstn.twilio.com" }),
      400,
      21248,
    );
  });
});

Deno.test("an origination url missing a required parameter is refused naming it", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const trunk = await client.trunking.v1.trunks.create({ domainName: "orig.pstn.twilio.com" });
    // The library checks required parameters itself; a raw request shows the server's answer.
    const response = await client.request({
      method: "post",
      uri: `https://trunking.twilio.com/v1/Trunks/${trunk.sid}/OriginationUrls`,
      data: { SipUrl: "sip:lk.example.com;transport=tcp", Priority: 1, Weight: 1, Enabled: true },
    });
    assert.equal(response.statusCode, 400);
    const body = typeof response.body === "string" ? JSON.parse(response.body) : response.body;
    assert.equal(body.code, 20001);
    assert.equal(body.message, "Missing required parameter FriendlyName in the post body");
    assert.equal(body.more_info, "https://www.twilio.com/docs/errors/20001");

    const url = await client.trunking.v1.trunks(trunk.sid).originationUrls.create({
      sipUrl: "sip:lk.example.com;transport=tcp",
      priority: 1,
      weight: 1,
      enabled: true,
      friendlyName: "LiveKit",
    });
    assert.match(url.sid, /^OU[0-9a-f]{32}$/);
    assert.equal(url.sipUrl, "sip:lk.example.com;transport=tcp");
    const urls = await client.trunking.v1.trunks(trunk.sid).originationUrls.list();
    assert.deepEqual(urls.map((u) => u.sid), [url.sid]);

    await rejectsWith(
      client.trunking.v1.trunks(trunk.sid).originationUrls.create({
        sipUrl: "http://lk.example.com",
        priority: 1,
        weight: 1,
        enabled: true,
        friendlyName: "Not SIP",
      }),
      400,
      21245,
      "SipUrl",
    );
    await client.trunking.v1.trunks(trunk.sid).originationUrls(url.sid).remove();
    assert.deepEqual(await client.trunking.v1.trunks(trunk.sid).originationUrls.list(), []);
  });
});

Deno.test("a weak credential password is refused and a strong one is kept but never returned", async () => {
  await withTwilio({}, async (emulator, client) => {
    const list = await client.sip.credentialLists.create({ friendlyName: "LiveKit" });
    assert.match(list.sid, /^CL[0-9a-f]{32}$/);
    const credentials = client.sip.credentialLists(list.sid).credentials;
    for (const weak of ["Short1a", "alllowercase123", "ALLUPPERCASE123", "NoDigitsAtAllHere"]) {
      await rejectsWith(credentials.create({ username: "livekit", password: weak }), 400, 21243);
    }
    await rejectsWith(
      credentials.create({ username: "u".repeat(33), password: STRONG_PASSWORD }),
      400,
      21243,
      "32",
    );

    const credential = await credentials.create({ username: "livekit", password: STRONG_PASSWORD });
    assert.match(credential.sid, /^CR[0-9a-f]{32}$/);
    assert.equal(credential.username, "livekit");
    assert.ok(!JSON.stringify(credential.toJSON()).includes(STRONG_PASSWORD));
    await rejectsWith(
      credentials.create({ username: "livekit", password: STRONG_PASSWORD }),
      400,
      21243,
      "already exists",
    );
    const listed = await credentials.list();
    assert.deepEqual(listed.map((c) => c.username), ["livekit"]);

    const inspection = JSON.stringify({ state: emulator.state(), requests: emulator.requests() });
    assert.ok(!inspection.includes(STRONG_PASSWORD), "inspection never shows a password");
    const state = await (await fetch(`${emulator.url}/emulator/state`)).text();
    const requests = await (await fetch(`${emulator.url}/emulator/requests`)).text();
    assert.ok(!state.includes(STRONG_PASSWORD) && !requests.includes(STRONG_PASSWORD));
    assert.ok(requests.includes('"Password":"********"'));
  });
});

Deno.test("a credential list and a phone number attached to a trunk show in its lists and on the number", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const { trunk, list } = await provisionTrunk(client, "attach.pstn.twilio.com");
    const trunkApi = client.trunking.v1.trunks(trunk.sid);

    const lists = await trunkApi.credentialsLists.list();
    assert.deepEqual(lists.map((l) => [l.sid, l.trunkSid]), [[list.sid, trunk.sid]]);
    const numbers = await trunkApi.phoneNumbers.list();
    assert.deepEqual(numbers.map((n) => n.phoneNumber), [CALLER]);

    const [number] = await client.incomingPhoneNumbers.list({ phoneNumber: CALLER });
    assert.equal(number.trunkSid, trunk.sid);
    const fetched = await trunkApi.fetch();
    assert.deepEqual(fetched.authTypeSet, ["CREDENTIAL_LIST"]);

    await rejectsWith(
      trunkApi.credentialsLists.create({ credentialListSid: `CL${"0".repeat(32)}` }),
      400,
      21245,
    );
    await rejectsWith(client.sip.credentialLists(list.sid).remove(), 400, 21241);

    await trunkApi.phoneNumbers(number.sid).remove();
    const detached = await client.incomingPhoneNumbers(number.sid).fetch();
    assert.equal(detached.trunkSid, null);
  });
});

Deno.test("a number's trunk sid can be set directly, but only to a trunk of the account", async () => {
  await withTwilio({}, async (_emulator, client) => {
    const trunk = await client.trunking.v1.trunks.create({ domainName: "direct.pstn.twilio.com" });
    const sid = await numberSid(client, OTHER_NUMBER);
    const updated = await client.incomingPhoneNumbers(sid).update({
      trunkSid: trunk.sid,
      friendlyName: "Support line",
    });
    assert.equal(updated.trunkSid, trunk.sid);
    assert.equal(updated.friendlyName, "Support line");
    const onTrunk = await client.trunking.v1.trunks(trunk.sid).phoneNumbers.list();
    assert.deepEqual(onTrunk.map((n) => n.sid), [sid]);
    await rejectsWith(
      client.incomingPhoneNumbers(sid).update({ trunkSid: `TK${"0".repeat(32)}` }),
      400,
      21245,
    );
    await rejectsWith(
      client.incomingPhoneNumbers(sid).update({ voiceUrl: "not a url" }),
      400,
      21402,
    );
  });
});

Deno.test("termination accepts the right credentials from a number of the account", async () => {
  await withTwilio({}, async (emulator, client) => {
    await provisionTrunk(client, "term-ok.pstn.twilio.com");
    const result = await emulator.terminate({
      address: "term-ok.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: CALLER,
      toNumber: "+442071234567",
    });
    assert.equal(result, null);
    assert.equal(emulator.state().terminations.at(-1)?.outcome, "accepted");
  });
});

Deno.test("termination with a wrong password is refused with 403", async () => {
  await withTwilio({}, async (emulator, client) => {
    await provisionTrunk(client, "term-pw.pstn.twilio.com");
    const result = await emulator.terminate({
      address: "term-pw.pstn.twilio.com",
      username: "livekit",
      password: "Wr0ngPassword!",
      fromNumber: CALLER,
      toNumber: "+442071234567",
    });
    assert.deepEqual(
      result && [result.sipStatusCode, result.sipStatus, result.errorCode],
      [403, "Forbidden", 32202],
    );
    const noCredentials = await emulator.terminate({
      address: "term-pw.pstn.twilio.com",
      username: "",
      password: "",
      fromNumber: CALLER,
      toNumber: "+442071234567",
    });
    assert.equal(noCredentials?.sipStatusCode, 407);
  });
});

Deno.test("termination to an unknown domain is refused with 404", async () => {
  await withTwilio({}, async (emulator, client) => {
    await provisionTrunk(client, "term-known.pstn.twilio.com");
    const result = await emulator.terminate({
      address: "term-unknown.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: CALLER,
      toNumber: "+442071234567",
    });
    assert.equal(result?.sipStatusCode, 404);
  });
});

Deno.test("termination with a caller id that is not the account's number is refused with 403", async () => {
  await withTwilio({}, async (emulator, client) => {
    await provisionTrunk(client, "term-cid.pstn.twilio.com");
    const result = await emulator.terminate({
      address: "sip:term-cid.pstn.twilio.com;transport=tcp",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: "+15557777777",
      toNumber: "+442071234567",
    });
    assert.deepEqual(result && [result.sipStatusCode, result.errorCode], [403, 32204]);
  });
});

Deno.test("with the trunk caller id policy a number not on the trunk is refused", async () => {
  await withTwilio({ callerIdPolicy: "trunk" }, async (emulator, client) => {
    await provisionTrunk(client, "term-policy.pstn.twilio.com");
    const call = {
      address: "term-policy.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      toNumber: "+442071234567",
    };
    const other = await emulator.terminate({ ...call, fromNumber: OTHER_NUMBER });
    assert.equal(other?.sipStatusCode, 403);
    assert.equal(await emulator.terminate({ ...call, fromNumber: CALLER }), null);
  });
});

Deno.test("termination above the trunk's calls per second is refused with 503", async () => {
  let clock = Date.parse("2025-01-01T00:00:00Z");
  await withTwilio({ now: () => clock }, async (emulator, client) => {
    await provisionTrunk(client, "term-cps.pstn.twilio.com");
    const call = {
      address: "term-cps.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: CALLER,
      toNumber: "+442071234567",
    };
    assert.equal(await emulator.terminate(call), null);
    const second = await emulator.terminate(call);
    assert.deepEqual(
      second && [second.sipStatusCode, second.sipStatus, second.errorCode],
      [503, "Trunk CPS limit exceeded", 32001],
    );
    clock += 1000;
    assert.equal(await emulator.terminate(call), null);

    // The budget is configurable at run time; a sliding window of one second.
    const configured = await fetch(`${emulator.url}/emulator/config`, {
      method: "POST",
      body: JSON.stringify({ cps: 2 }),
    });
    assert.equal((await configured.json()).config.cps, 2);
    clock += 1000;
    assert.equal(await emulator.terminate(call), null);
    clock += 500;
    assert.equal(await emulator.terminate(call), null);
    clock += 400;
    assert.equal((await emulator.terminate(call))?.sipStatus, "Trunk CPS limit exceeded");
    clock += 200; // the first of the two is now more than a second old
    assert.equal(await emulator.terminate(call), null);
    const bad = await fetch(`${emulator.url}/emulator/config`, {
      method: "POST",
      body: JSON.stringify({ cps: -1 }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});

Deno.test("termination counts INVITEs by when they arrived, whatever order they are decided in", async () => {
  const clock = Date.parse("2025-01-01T00:00:00Z");
  await withTwilio({ now: () => clock + 5000, cps: 2 }, async (emulator, client) => {
    await provisionTrunk(client, "term-order.pstn.twilio.com");
    const call = (invitedAt: number) => ({
      address: "term-order.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: CALLER,
      toNumber: "+442071234567",
      invitedAt,
    });
    assert.equal(await emulator.terminate(call(clock + 900)), null);
    assert.equal(await emulator.terminate(call(clock)), null, "arrived first, decided second");
    // Three inside 900 ms: over the budget, though decided after the later one.
    assert.equal((await emulator.terminate(call(clock + 500)))?.errorCode, 32001);
    assert.equal(await emulator.terminate(call(clock + 1900)), null);
    assert.equal(await emulator.terminate(call(clock + 3500)), null);
    assert.equal(await emulator.terminate(call(clock + 3600)), null);
    // Arrived before those two and shares no sliding second with both and another.
    assert.equal(await emulator.terminate(call(clock + 2400)), null);
    assert.equal((await emulator.terminate(call(clock + 3000)))?.errorCode, 32001);
    const times = emulator.state().terminations.map((t) => [Date.parse(t.time) - clock, t.outcome]);
    assert.deepEqual(times, [
      [900, "accepted"],
      [0, "accepted"],
      [500, "refused"],
      [1900, "accepted"],
      [3500, "accepted"],
      [3600, "accepted"],
      [2400, "accepted"],
      [3000, "refused"],
    ]);
  });
});

Deno.test("LiveKit sees Twilio's CPS refusal as a carrier rate limit", async () => {
  await withTwilio({ cps: 1 }, async (emulator, client) => {
    await provisionTrunk(client, "lk-cps.pstn.twilio.com");
    const lk = await startLiveKit({
      apiKey: "devkey",
      apiSecret: "devsecret-that-is-long-enough-for-hs256",
      timeScale: 0.001,
      carrier: (call) => emulator.terminate(call),
    });
    try {
      const sip = new SipClient(lk.url, "devkey", "devsecret-that-is-long-enough-for-hs256");
      const trunk = await sip.createSipOutboundTrunk("twilio", "lk-cps.pstn.twilio.com", [CALLER], {
        transport: SIPTransport.SIP_TRANSPORT_AUTO,
        authUsername: "livekit",
        authPassword: STRONG_PASSWORD,
      });
      const dial = (room: string, waitUntilAnswered: boolean) =>
        sip.createSipParticipant(trunk.sipTrunkId, "+442071234567", room, {
          participantIdentity: "callee",
          waitUntilAnswered,
        });
      await dial("room-1", false);
      const err = await dial("room-2", true).then(() => null, (e) => e);
      assert.ok(err instanceof SipCallError, `expected a SipCallError, got ${err}`);
      assert.deepEqual(
        [err.status, err.code, err.sipStatusCode, err.sipStatus],
        [412, "failed_precondition", 503, "Trunk CPS limit exceeded"],
      );
      await dial("room-3", false);
      let refused = lk.state().calls.find((c) => c.room === "room-3");
      for (let i = 0; i < 200 && !refused?.endedAt; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        refused = lk.state().calls.find((c) => c.room === "room-3");
      }
      assert.equal(refused?.outcome, "rate_limited");
      assert.equal(refused?.disconnectReason, DisconnectReason[DisconnectReason.USER_REJECTED]);
      assert.equal(refused?.sipCallDisconnectReason, "SIP_TRUNK_FAILURE");
      assert.deepEqual(
        emulator.state().terminations.map((t) => t.outcome),
        ["accepted", "refused", "refused"],
      );
    } finally {
      await lk.close();
    }
  });
});

Deno.test("listing numbers by PhoneNumber matches partial numbers and digit wildcards", async () => {
  const numbers = ["+15550100001", "+155501000012", "+15550200001"].map((phoneNumber) => ({
    phoneNumber,
  }));
  await withTwilio({ numbers }, async (_emulator, client) => {
    const phones = async (phoneNumber: string) =>
      (await client.incomingPhoneNumbers.list({ phoneNumber })).map((n) => n.phoneNumber).sort();
    // The full number also finds the longer number that contains it: compare exactly.
    assert.deepEqual(await phones("+15550100001"), ["+15550100001", "+155501000012"]);
    assert.deepEqual(await phones("0100"), ["+15550100001", "+155501000012"]);
    assert.deepEqual(await phones("555*2"), ["+15550200001"]);
    assert.deepEqual(await phones("+1555**00001"), [
      "+15550100001",
      "+155501000012",
      "+15550200001",
    ]);
    assert.deepEqual(await phones("+15559999999"), []);
    const requested = await fetch(
      `${_emulator.url}/2010-04-01/Accounts/${ACCOUNT_SID}/IncomingPhoneNumbers.json?PhoneNumber=0100`,
      { headers: { Authorization: `Basic ${btoa(`${ACCOUNT_SID}:${AUTH_TOKEN}`)}` } },
    );
    assert.equal(requested.status, 200);
    assert.equal((await requested.json()).incoming_phone_numbers.length, 2);
  });
});

Deno.test("deleting a trunk detaches its numbers and keeps them on the account", async () => {
  await withTwilio({}, async (emulator, client) => {
    const { trunk, list } = await provisionTrunk(client, "deleted.pstn.twilio.com");
    await client.trunking.v1.trunks(trunk.sid).remove();
    await rejectsWith(client.trunking.v1.trunks(trunk.sid).fetch(), 404, 20404);
    const [number] = await client.incomingPhoneNumbers.list({ phoneNumber: CALLER });
    assert.equal(number.trunkSid, null);
    // Credential lists belong to the account, not the trunk.
    assert.equal((await client.sip.credentialLists(list.sid).fetch()).sid, list.sid);
    const result = await emulator.terminate({
      address: "deleted.pstn.twilio.com",
      username: "livekit",
      password: STRONG_PASSWORD,
      fromNumber: CALLER,
      toNumber: "+442071234567",
    });
    assert.equal(result?.sipStatusCode, 404);
  });
});

Deno.test("injected throttling answers 429 with code 20429", async () => {
  await withTwilio({ failureRate: 1 }, async (emulator, client) => {
    await rejectsWith(client.trunking.v1.trunks.list(), 429, 20429);
    emulator.configure({ failureRate: 0 });
    assert.deepEqual(await client.trunking.v1.trunks.list(), []);
    const configured = await fetch(`${emulator.url}/emulator/config`, {
      method: "POST",
      body: JSON.stringify({ failureRate: 1 }),
    });
    assert.equal(configured.status, 200);
    await configured.body?.cancel();
    await rejectsWith(client.incomingPhoneNumbers.list(), 429, 20429);
  });
});

Deno.test("reset restores the seeded numbers and removes trunks and credential lists", async () => {
  await withTwilio({}, async (emulator, client) => {
    const callerSid = await numberSid(client, CALLER);
    await provisionTrunk(client, "reset.pstn.twilio.com");
    const reset = await fetch(`${emulator.url}/emulator/reset`, { method: "POST" });
    assert.equal(reset.status, 200);
    await reset.body?.cancel();
    assert.deepEqual(await client.trunking.v1.trunks.list(), []);
    assert.deepEqual(await client.sip.credentialLists.list(), []);
    const [number] = await client.incomingPhoneNumbers.list({ phoneNumber: CALLER });
    assert.equal(number.sid, callerSid);
    assert.equal(number.trunkSid, null);
    await client.trunking.v1.trunks.create({ domainName: "reset.pstn.twilio.com" });
  });
});
