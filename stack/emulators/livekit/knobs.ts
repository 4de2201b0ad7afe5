/** The emulator's knobs: simulated time, injected latency and failures, carrier limits. */
import { z } from "zod";
import type { TransferRefusal } from "./calls.ts";
import type { AgentKnobs } from "./agents.ts";

export interface LiveKitKnobs extends AgentKnobs {
  /** Multiplies every simulated duration (ringing, talk time, timeouts); 1 = real time. */
  timeScale: number;
  /** Added before every Twirp response. */
  latencyMs: number;
  /** 0..1 chance a Twirp call answers 503 unavailable without doing anything. */
  failureRate: number;
  /** 0..1 chance a Twirp call hangs for `hangMs`, then drops the connection, without doing anything. */
  timeoutRate: number;
  /**
   * 0..1 chance a CreateSIPParticipant does all its work (participant joined, INVITE sent, and
   * with wait_until_answered the answer awaited), then answers 503 unavailable instead.
   */
  answerFailureRate: number;
  /** 0..1 chance a CreateSIPParticipant does all its work, then hangs `hangMs` and drops the connection. */
  answerTimeoutRate: number;
  /** Real ms of the hangs of `timeoutRate` and `answerTimeoutRate`. */
  hangMs: number;
  /**
   * Simulated ms the SIP participant takes to join the room (scaled by `timeScale`). Past
   * livekit-server's wait (30 s, or 80 s with wait_until_answered) the request fails with
   * deadline_exceeded and nothing joins or dials.
   */
  joinDelayMs: number;
  /** 0..1 chance each webhook event is dropped and never delivered, as LiveKit's notifier does when full. */
  webhookDropRate: number;
  /** 0 = unlimited; at the cap CreateSIPParticipant fails with resource_exhausted. */
  maxConcurrentCalls: number;
  /** 0 = unlimited; INVITEs per real second per outbound trunk address before the carrier answers 503. */
  trunkCps: number;
  /** Where webhooks are POSTed; null sends none. */
  webhookUrl: string | null;
  /**
   * How the carrier answers a transfer's REFER: null transfers; a SIP status refuses the REFER
   * (`at: "refer"`, default) or fails it in the NOTIFY that follows (`at: "notify"`).
   */
  transferRefusal: TransferRefusal | null;
}

export const DEFAULT_KNOBS: LiveKitKnobs = {
  timeScale: 1,
  latencyMs: 0,
  failureRate: 0,
  timeoutRate: 0,
  answerFailureRate: 0,
  answerTimeoutRate: 0,
  hangMs: 15_000,
  joinDelayMs: 0,
  webhookDropRate: 0,
  maxConcurrentCalls: 0,
  trunkCps: 0,
  webhookUrl: null,
  transferRefusal: null,
  agentWorkers: -1,
  unnamedAgentWorkers: 0,
  agentJoinDelayMs: 500,
  agentSilentRate: 0,
};

const knobsPatch = z.object({
  timeScale: z.number().min(0).optional(),
  latencyMs: z.number().min(0).optional(),
  failureRate: z.number().min(0).max(1).optional(),
  timeoutRate: z.number().min(0).max(1).optional(),
  answerFailureRate: z.number().min(0).max(1).optional(),
  answerTimeoutRate: z.number().min(0).max(1).optional(),
  hangMs: z.number().min(0).optional(),
  joinDelayMs: z.number().min(0).optional(),
  webhookDropRate: z.number().min(0).max(1).optional(),
  maxConcurrentCalls: z.number().int().min(0).optional(),
  trunkCps: z.number().min(0).optional(),
  webhookUrl: z.url().nullable().optional(),
  transferRefusal: z.strictObject({
    sipStatusCode: z.number().int().min(300).max(699),
    sipStatus: z.string().max(200).optional(),
    at: z.enum(["refer", "notify"]).optional(),
  }).nullable().optional(),
  agentWorkers: z.number().int().min(-1).optional(),
  unnamedAgentWorkers: z.number().int().min(-1).optional(),
  agentJoinDelayMs: z.number().min(0).optional(),
  agentSilentRate: z.number().min(0).max(1).optional(),
}).strict();

/** Validates a partial set of knobs; throws naming every problem. */
export function parseKnobs(input: unknown): Partial<LiveKitKnobs> {
  const result = knobsPatch.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((i) =>
      `${i.path.join(".") || "(root)"}: ${i.message}`
    );
    throw new Error(`invalid LiveKit emulator knobs: ${problems.join("; ")}`);
  }
  const out: Partial<LiveKitKnobs> = {};
  for (const [k, v] of Object.entries(result.data)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
