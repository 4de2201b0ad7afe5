// A direct call: one a requester places with create-participant (a user by assistantId, or
// the service by assistantId or outboundTrunkId). Whose call it is, the per-user rate limit,
// then the one dial path; a requester who does not wait gets the call once it was dialed.
import { z } from "zod";
import type { Requester } from "../_shared/auth.ts";
import { requireAssistant } from "../_shared/assistants.ts";
import { takeRateLimit } from "../_shared/rate_limit.ts";
import { type CallRow, callView } from "../_shared/calls.ts";
import { placeCall } from "../_shared/dial.ts";
import { asUser } from "../_shared/db.ts";
import type { Deps } from "../_shared/deps.ts";
import { ConflictError, NotFoundError, ValidationError } from "../_shared/errors.ts";
import { liveKitError } from "../_shared/livekit.ts";
import { CALL_DURATION_SEC, e164, RINGING_TIMEOUT_SEC, uuid } from "../_shared/schemas.ts";

const name = z.string().min(1).max(128).regex(
  /^[A-Za-z0-9_.:=-]+$/,
  "letters, digits and _ . : = - only",
);

export const CallBody = z.strictObject({
  assistantId: uuid.optional(),
  outboundTrunkId: z.string().regex(/^ST_[A-Za-z0-9]{1,64}$/, "must be a LiveKit trunk id (ST_...)")
    .optional(),
  phoneNumber: e164,
  roomName: name.optional(),
  participantName: z.string().min(1).max(200).optional(),
  participantIdentity: name.optional(),
  metadata: z.record(z.string(), z.unknown()).refine(
    (m) => JSON.stringify(m).length <= 4096,
    "at most 4 KiB of JSON",
  )
    .optional(),
  waitUntilAnswered: z.boolean().optional(),
  ringingTimeoutSec: z.number().int().min(RINGING_TIMEOUT_SEC.min).max(RINGING_TIMEOUT_SEC.max)
    .optional(),
  maxCallDurationSec: z.number().int().min(CALL_DURATION_SEC.min).max(CALL_DURATION_SEC.max)
    .optional(),
}).refine((b) => (b.assistantId === undefined) !== (b.outboundTrunkId === undefined), {
  message: "give exactly one of assistantId or outboundTrunkId",
  path: ["assistantId"],
});

/** Places the requester's call; answers once it is dialed, or with its outcome when asked to wait. */
export async function requestCall(
  deps: Deps,
  requester: Requester,
  body: z.infer<typeof CallBody>,
) {
  const { config, sql, log } = deps;
  let ownerId: string;
  if (requester.kind === "user") {
    if (body.outboundTrunkId) {
      throw new ValidationError("Users call by assistantId.", {
        fields: { outboundTrunkId: "service requesters only" },
      });
    }
    await asUser(sql, requester.claims, (tx) => requireAssistant(sql, tx, body.assistantId!));
    ownerId = requester.userId;
    // A user names a new room, never an existing one (another requester's inbound call, say).
    if (body.roomName) {
      const existing = await deps.liveKit.rooms.listRooms([body.roomName]).catch((e) => {
        throw liveKitError(`check room ${body.roomName}`, e);
      });
      if (existing.length > 0) {
        throw new ConflictError(`Room ${body.roomName} already exists; give a new roomName.`);
      }
    }
    await takeRateLimit(deps, ownerId, "create-participant", config.callsPerMinutePerUser, "calls");
  } else {
    const [owner] = body.assistantId
      ? await sql<{ owner_id: string }[]>`
          select owner_id from public.assistant where id = ${body.assistantId}`
      : await sql<{ owner_id: string }[]>`
          select owner_id from public.phone_number where outbound_trunk_id = ${body
        .outboundTrunkId!}`;
    if (!owner) {
      throw new NotFoundError(
        `${body.assistantId ? "Assistant" : "Outbound trunk"} ${
          body.assistantId ?? body.outboundTrunkId
        } does not exist.`,
      );
    }
    ownerId = owner.owner_id;
  }

  let dialing: (call: CallRow) => void = () => {};
  const sent = new Promise<CallRow>((resolve) => dialing = resolve);
  const dial = placeCall(deps, {
    ownerId,
    assistantId: body.assistantId,
    outboundTrunkId: body.outboundTrunkId,
    to: body.phoneNumber,
    roomName: body.roomName,
    participantName: body.participantName,
    participantIdentity: body.participantIdentity,
    metadata: body.metadata,
    ringingTimeoutSec: body.ringingTimeoutSec,
    maxCallDurationSec: body.maxCallDurationSec,
    onDialing: dialing,
  });
  // The dial always waits for the answer (the only signal of it). A requester who does not want
  // to wait gets the call as soon as it was dialed: once its SIP participant is in the room,
  // or with its outcome if that came first; the wait goes on in the background.
  let dialed = false;
  const early = body.waitUntilAnswered ? null : await Promise.race([
    dial.then((r) => (dialed && !r.notDialed ? r.call : null)),
    sent.then((call) => {
      dialed = true;
      return joined(deps, call);
    }),
  ]);
  if (early) {
    keepAlive(dial.catch((e) => log.error("background dial failed", { error: String(e) })));
    return { call: callView(early) };
  }
  const result = await dial;
  if (result.duplicate) {
    throw new ValidationError(
      `Room ${body.roomName} was already used for a call; give a new roomName.`,
      {
        fields: { roomName: "already used" },
      },
    );
  }
  if (result.error) throw result.error;
  // A direct call's record is written before anything else (placeCall), so there is one.
  return { call: callView(result.call!) };
}

/** The call with its SIP participant's ids once it has joined (LiveKit answers within moments). */
async function joined({ liveKit: lk, clock }: Deps, call: CallRow): Promise<CallRow> {
  for (let i = 0; i < 30; i++) {
    const p = await lk.rooms.getParticipant(call.room_name, call.participant_identity).catch(() =>
      null
    );
    if (p) {
      return { ...call, participant_id: p.sid, sip_call_id: p.attributes?.["sip.callID"] || null };
    }
    await clock.sleep(100);
  }
  return call;
}

/** Supabase's runtime keeps the worker alive for a background task (EdgeRuntime.waitUntil). */
function keepAlive(p: Promise<unknown>) {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil(p: Promise<unknown>): void } })
    .EdgeRuntime;
  runtime?.waitUntil(p);
}
