// Row 4: what create-participant adds to the LiveKit call it wraps. With 50 ms of injected
// LiveKit latency, the median end-to-end time of create-participant through the gateway
// (service key + outboundTrunkId) is divided by the median of a bare
// SipClient.createSipParticipant to the same emulator on the same trunk, alternating.
import { SipClient } from "livekit-server-sdk";
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
  const [line] = await provisionLines(ctx, user, assistantId, 1, 1);
  const { url, apiKey, apiSecret } = ctx.info.livekit;
  const sip = new SipClient(url, apiKey, apiSecret, { requestTimeout: 10 });
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
    `  create-participant ${fmt(f, 1)} ms, bare createSipParticipant ${
      fmt(s, 1)
    } ms (median of ${SAMPLES}, ${LATENCY_MS} ms LiveKit latency)`,
  );
  return [{
    id: "4",
    what: "create-participant / bare SDK call",
    ratio: f / s,
    target: "<= 1.15",
    pass: f / s <= 1.15,
    note: `${fmt(f, 1)} vs ${
      fmt(s, 1)
    } ms: dispatch then dial, 2 LiveKit round trips in sequence, + ${
      fmt(f - 2 * s, 1)
    } ms of its own`,
  }];
}
