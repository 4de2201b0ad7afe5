// Row 4: what create-participant adds to the LiveKit requests it wraps. With 50 ms of
// injected LiveKit latency, the median end-to-end time of create-participant through the
// gateway (service key + outboundTrunkId) is divided by the median of the same sequence
// done bare with the SDK on the same emulator and trunk: CreateDispatch, ListParticipants
// until the agent is in the room, then CreateSIPParticipant (without waiting for the
// answer, as create-participant answers once the dial is out), alternating.
import { ParticipantInfo_Kind } from "@livekit/protocol";
import { AgentDispatchClient, RoomServiceClient, SipClient } from "livekit-server-sdk";
import {
  callFunction,
  createAssistant,
  createUser,
  type Ctx,
  fmt,
  median,
  provisionLines,
  quietly,
  type Row,
} from "./lib.ts";

const LATENCY_MS = 50;
const SAMPLES = 30;
const WARMUP = 3;

export async function functionOverhead(ctx: Ctx): Promise<Row[]> {
  const user = await createUser(ctx, "bench-overhead");
  const assistantId = await createAssistant(ctx, user, "overhead-agent");
  // A budget the calls here never reach: this row measures the function, not pacing.
  const [line] = await provisionLines(ctx, user, assistantId, 1, 1000);
  const { url, apiKey, apiSecret } = ctx.info.livekit;
  const sip = new SipClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  const dispatch = new AgentDispatchClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  const rooms = new RoomServiceClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  const callee = (i: number) => `+1646555${String(1000 + i).padStart(4, "0")}`;

  const viaFunction = async (i: number) => {
    const t = performance.now();
    const r = await callFunction(ctx.info, "create-participant", ctx.info.serviceKey, {
      outboundTrunkId: line.outboundTrunkId,
      phoneNumber: callee(i),
    });
    const ms = performance.now() - t;
    if (r.status !== 200) {
      throw new Error(`create-participant: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return ms;
  };
  const bare = async (i: number) => {
    const room = `bench-bare-${crypto.randomUUID()}`;
    const t = performance.now();
    await dispatch.createDispatch(room, "overhead-agent", { metadata: "{}" });
    for (let pause = 25;; pause = Math.min(pause * 2, 250)) {
      const ps = await rooms.listParticipants(room);
      if (ps.some((p) => p.kind === ParticipantInfo_Kind.AGENT)) break;
      await new Promise((r) => setTimeout(r, pause));
    }
    await sip.createSipParticipant(line.outboundTrunkId, callee(i), room, {
      participantIdentity: `sip-${room}`,
      participantName: callee(i),
      fromNumber: line.e164,
      waitUntilAnswered: false,
      ringingTimeout: 30,
      maxCallDuration: 1800,
      krispEnabled: true,
    });
    return performance.now() - t;
  };

  // Quietly: the calls' webhooks would load the gateway while it is being timed.
  const fn: number[] = [];
  const sdk: number[] = [];
  await quietly(ctx, async () => {
    ctx.stack.livekit!.configure({ latencyMs: LATENCY_MS });
    try {
      for (let i = 0; i < WARMUP + SAMPLES; i++) {
        // Alternating which goes first, so drift in the machine's load hits both alike.
        let a: number, b: number;
        if (i % 2) {
          a = await viaFunction(i);
          b = await bare(i);
        } else {
          b = await bare(i);
          a = await viaFunction(i);
        }
        if (i >= WARMUP) {
          fn.push(a);
          sdk.push(b);
        }
      }
    } finally {
      ctx.stack.livekit!.configure({ latencyMs: 0 });
    }
  });
  const f = median(fn);
  const s = median(sdk);
  ctx.say(
    `  create-participant ${fmt(f, 1)} ms, bare dispatch + agent wait + dial ${
      fmt(s, 1)
    } ms (median of ${SAMPLES}, ${LATENCY_MS} ms LiveKit latency)`,
  );
  return [{
    id: "4",
    what: "create-participant / bare dispatch + agent wait + dial",
    ratio: f / s,
    target: "<= 1.10",
    pass: f / s <= 1.1,
    note: `${fmt(f, 1)} vs ${fmt(s, 1)} ms (median of ${SAMPLES}, ${LATENCY_MS} ms latency): ${
      fmt(f - s, 1)
    } ms of its own`,
  }];
}
