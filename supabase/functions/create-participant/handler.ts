import { z } from "zod";
import { authenticate } from "../_shared/auth.ts";
import { callView, placeCall, requireAssistant } from "../_shared/calls.ts";
import { asUser, db } from "../_shared/db.ts";
import {
  ConflictError,
  NotFoundError,
  RateLimitError,
  ValidationError,
} from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { liveKit, liveKitError } from "../_shared/livekit.ts";
import { e164, uuid } from "../_shared/schemas.ts";

const name = z.string().min(1).max(128).regex(
  /^[A-Za-z0-9_.:=-]+$/,
  "letters, digits and _ . : = - only",
);

const Body = z.strictObject({
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
  ringingTimeoutSec: z.number().int().min(5).max(80).optional(),
  maxCallDurationSec: z.number().int().min(10).max(86_400).optional(),
}).refine((b) => (b.assistantId === undefined) !== (b.outboundTrunkId === undefined), {
  message: "give exactly one of assistantId or outboundTrunkId",
  path: ["assistantId"],
});

export const handler = serve("create-participant", ["POST"], async (req, { config, log }) => {
  const caller = await authenticate(req, config);
  const body = await readJson(req, Body);
  const sql = db(config.dbUrl);

  let ownerId: string;
  if (caller.kind === "user") {
    if (body.outboundTrunkId) {
      throw new ValidationError("Users call by assistantId.", {
        fields: { outboundTrunkId: "service callers only" },
      });
    }
    await asUser(sql, caller.claims, (tx) => requireAssistant(tx, body.assistantId!));
    ownerId = caller.userId;
    // A user names a new room, never an existing one (another caller's inbound call, say).
    if (body.roomName) {
      const existing = await liveKit(config).rooms.listRooms([body.roomName]).catch((e) => {
        throw liveKitError(`check room ${body.roomName}`, e);
      });
      if (existing.length > 0) {
        throw new ConflictError(`Room ${body.roomName} already exists; give a new roomName.`);
      }
    }
    const [{ wait }] = await sql<{ wait: number }[]>`
      select internal.take_rate_limit(${ownerId}, 'create-participant', ${config.callsPerMinutePerUser}) as wait`;
    if (wait > 0) {
      throw new RateLimitError(
        `At most ${config.callsPerMinutePerUser} calls a minute; try again in ${wait} s.`,
        wait,
      );
    }
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

  const result = await placeCall(config, sql, liveKit(config), {
    ownerId,
    assistantId: body.assistantId,
    outboundTrunkId: body.outboundTrunkId,
    to: body.phoneNumber,
    roomName: body.roomName,
    participantName: body.participantName,
    participantIdentity: body.participantIdentity,
    metadata: body.metadata,
    waitUntilAnswered: body.waitUntilAnswered,
    ringingTimeoutSec: body.ringingTimeoutSec,
    maxCallDurationSec: body.maxCallDurationSec,
  }, log);
  if (result.duplicate) {
    throw new ValidationError(
      `Room ${body.roomName} was already used for a call; give a new roomName.`,
      {
        fields: { roomName: "already used" },
      },
    );
  }
  if (result.error) throw result.error;
  return { call: callView(result.call) };
});
