// Row 1's floor: the same LiveKit requests as a dial (dispatch the agent, poll
// ListParticipants until it is in the room, CreateSIPParticipant with wait_until_answered),
// with no database, paced in memory at the same budget and run at a fixed concurrency, in a
// fresh process. Reads {url, apiKey, apiSecret, agentName, concurrency, cps, ownConnections,
// calls: [{trunkId, from, to}]} as JSON on stdin; prints `start`, then
// {"calls", "dialed", "ms", "cpuMs"}. With ownConnections, each request that creates (the
// dispatch, the dial) goes over a connection of its own, as the product sends them.
import process from "node:process";
import { AgentDispatchClient, RoomServiceClient, SipClient } from "livekit-server-sdk";
import { ParticipantInfo_Kind } from "@livekit/protocol";

interface Input {
  url: string;
  apiKey: string;
  apiSecret: string;
  agentName: string;
  concurrency: number;
  cps: number;
  ownConnections?: boolean;
  calls: { trunkId: string; from: string; to: string }[];
}

const input: Input = JSON.parse(await new Response(Deno.stdin.readable).text());
const { url, apiKey, apiSecret } = input;
if (input.ownConnections) {
  const noIdle = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  const fetchPooled = globalThis.fetch;
  globalThis.fetch = (req, init) =>
    fetchPooled(req, /\/Create[A-Za-z]*$/.test(String(req)) ? { ...init, client: noIdle } : init);
}
const sip = new SipClient(url, apiKey, apiSecret);
const dispatch = new AgentDispatchClient(url, apiKey, apiSecret);
const rooms = new RoomServiceClient(url, apiKey, apiSecret);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

const gapMs = 1000 / input.cps;
let nextSlot = 0;
let next = 0;
let dialed = 0;

async function worker() {
  while (next < input.calls.length) {
    const call = input.calls[next++];
    const slot = Math.max(Date.now(), nextSlot);
    nextSlot = slot + gapMs;
    const room = `bare-${crypto.randomUUID()}`;
    await dispatch.createDispatch(room, input.agentName, { metadata: "{}" });
    let agent = null;
    for (let pause = 25; !agent; pause = Math.min(pause * 2, 250)) {
      const ps = await rooms.listParticipants(room).catch(() => []);
      agent = ps.find((p) => p.kind === ParticipantInfo_Kind.AGENT) ?? null;
      if (!agent) await sleep(pause);
    }
    await sleep(slot - Date.now());
    const dial = sip.createSipParticipant(call.trunkId, call.to, room, {
      participantIdentity: `sip-${room}`,
      participantName: call.to,
      participantMetadata: "{}",
      fromNumber: call.from,
      waitUntilAnswered: true,
      ringingTimeout: 80,
      maxCallDuration: 1800,
      krispEnabled: true,
    });
    if (await dial.then(() => true, () => false)) dialed++;
  }
}

console.log("start");
const cpu = process.cpuUsage();
const started = performance.now();
await Promise.all(Array.from({ length: input.concurrency }, worker));
const used = process.cpuUsage(cpu);
console.log(JSON.stringify({
  calls: input.calls.length,
  dialed,
  ms: performance.now() - started,
  cpuMs: (used.user + used.system) / 1000,
}));
