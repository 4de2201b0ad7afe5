// LiveKit webhook intake: what a verified event says, read off LiveKit's protocol types and
// handed to the database (internal.record_livekit_event), which stores it once and moves the
// call in its room.
import { DisconnectReason, ParticipantInfo_Kind } from "@livekit/protocol";
import type { WebhookEvent } from "livekit-server-sdk";
import type { Deps } from "../_shared/deps.ts";

/** livekit-server's default departure timeout, when the room does not say its own. */
const DEFAULT_DEPARTURE_SEC = 20;

export interface Recorded {
  duplicate: boolean;
  callId: string | null;
  status: string | null;
  ended?: boolean;
  outcome?: string | null;
  disconnectReason?: string | null;
}

/** Stores a verified webhook once (by event id) and moves its call forward. */
export async function recordWebhook({ sql, log, clock }: Deps, ev: WebhookEvent) {
  const p = ev.participant;
  const createdSec = Number(ev.createdAt ?? 0n);
  const [{ r }] = await sql<{ r: Recorded }[]>`
    select internal.record_livekit_event(
      event_id => ${ev.id}, event => ${ev.event}, room => ${ev.room?.name ?? ""},
      payload => ${sql.json(JSON.parse(ev.toJsonString()))},
      event_at => ${new Date(createdSec * 1000 || clock.now())},
      identity => ${p?.identity ?? null}, participant_sid => ${p?.sid || null},
      is_sip => ${p?.kind === ParticipantInfo_Kind.SIP},
      sip_call => ${p?.attributes?.["sip.callID"] || null},
      sip_call_status => ${p?.attributes?.["sip.callStatus"] ?? null},
      disconnect_reason => ${p ? DisconnectReason[p.disconnectReason] ?? "UNKNOWN_REASON" : null},
      departure_sec => ${ev.room?.departureTimeout ?? DEFAULT_DEPARTURE_SEC}) as r`;
  if (r.ended) {
    log.info("call ended", {
      callId: r.callId,
      status: r.status,
      outcome: r.outcome,
      disconnectReason: r.disconnectReason,
    });
  }
  return { duplicate: r.duplicate, callId: r.callId, status: r.status };
}
