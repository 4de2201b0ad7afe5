// The SDK replays a request to other regions on LiveKit Cloud when its answer fails or is
// late, and LiveKit does not de-duplicate CreateSIPParticipant. These tests force that
// replay path (failoverForce) against the emulator, which lists other regions like LiveKit
// Cloud: the product's clients must send each dial once, whatever happens to its answer.
import assert from "node:assert/strict";
import { SipClient } from "livekit-server-sdk";
import { placeCall } from "../../supabase/functions/_shared/dial.ts";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { depsFor } from "../../supabase/functions/_shared/deps.ts";
import { type LiveKit, liveKit } from "../../supabase/functions/_shared/livekit.ts";
import { logger, setLogSink } from "../../supabase/functions/_shared/log.ts";
import { configureLiveKit, livekitState, readyAssistant, sql, stack } from "../helpers/stack.ts";

setLogSink(() => {});
const config = parseConfig({
  SUPABASE_URL: stack.supabaseUrl,
  SUPABASE_ANON_KEY: stack.anonKey,
  SUPABASE_SERVICE_ROLE_KEY: stack.serviceKey,
  SUPABASE_DB_URL: stack.dbUrl,
  LIVEKIT_URL: stack.livekit.url,
  LIVEKIT_API_KEY: stack.livekit.apiKey,
  LIVEKIT_API_SECRET: stack.livekit.apiSecret,
  CARRIER_CPS: "50",
});

/** The product's clients, with the SDK's failover engaged as on a LiveKit Cloud host. */
function forcedClients(): LiveKit {
  const lk = liveKit(config);
  for (const client of [lk.sip, lk.dispatch, lk.rooms]) {
    (client as unknown as { rpc: { failoverForce: boolean } }).rpc.failoverForce = true;
  }
  return lk;
}

async function invitesFor(room: string): Promise<number> {
  return (await livekitState()).invitesByRoom[room] ?? 0;
}

const log = logger({ function: "replay-test" });

for (
  const [name, knobs] of [
    ["fails with a 5xx after placing the call", { answerFailureRate: 1 }],
    ["drops the connection after placing the call", { answerTimeoutRate: 1, hangMs: 300 }],
  ] as const
) {
  Deno.test(`a dial whose answer ${name} reaches LiveKit as one INVITE`, async () => {
    const { user, assistantId } = await readyAssistant(`replay${name.length}`);
    const lk = forcedClients();
    await configureLiveKit(knobs);
    let result;
    try {
      result = await placeCall(depsFor(config, { sql, liveKit: lk, log }), {
        ownerId: user.id,
        assistantId,
        to: `+1646555${String(Math.floor(Math.random() * 9000) + 1000)}`,
      });
    } finally {
      await configureLiveKit({ answerFailureRate: 0, answerTimeoutRate: 0, hangMs: 15_000 });
    }
    assert.ok(result.call, "a direct call always has its record");
    assert.equal(await invitesFor(result.call.room_name), 1, "the dial was not replayed");
    const [row] = await sql`select * from public.outbound_calls where id = ${result.call.id}`;
    assert.ok(row.status !== "dialing", `the call has a state: ${row.status}`);
  });
}

Deno.test("the SDK's default client would replay the same dial (the check above can fail)", async () => {
  const { outboundTrunkId } = await readyAssistant("replay-default");
  const sip = new SipClient(stack.livekit.url, stack.livekit.apiKey, stack.livekit.apiSecret);
  (sip as unknown as { rpc: { failoverForce: boolean } }).rpc.failoverForce = true;
  const room = `replay-${crypto.randomUUID()}`;
  await configureLiveKit({ answerFailureRate: 1 });
  try {
    await sip.createSipParticipant(outboundTrunkId, "+16465550100", room, {
      participantIdentity: "sip-replay",
    }).catch(() => {});
  } finally {
    await configureLiveKit({ answerFailureRate: 0 });
  }
  assert.ok(await invitesFor(room) >= 2, "failover on: the dial went out more than once");
});
