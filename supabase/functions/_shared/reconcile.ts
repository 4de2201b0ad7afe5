// Reconciliation: LiveKit's webhooks are best effort (a participant's leave or a room's end
// can be dropped), so calls that may have ended unseen are checked against the rooms and
// participants LiveKit still holds before anything is concluded.
import type { ParticipantInfo } from "livekit-server-sdk";
import { type CallRow, moveCall, stateOf } from "./calls.ts";
import { asService } from "./db.ts";
import type { Deps } from "./deps.ts";
import { describeLiveKitError, DIAL_TIMEOUT_SEC } from "./livekit.ts";
import { applyEvent, isFinal, outcomeFromDisconnect, type Transition } from "./outcomes.ts";

/** A dial still waiting after this long lost its requester (a stopped function). */
const DIAL_GRACE_SEC = DIAL_TIMEOUT_SEC + 30;
/** livekit-server's default departure timeout: a room closes this long after its last participant left. */
const DEPARTURE_SEC = 20;

/** Checks live calls that are due against LiveKit and settles the ones that ended; returns how many ended. */
export async function reconcileCalls(deps: Deps) {
  const { config, sql, log, clock } = deps;
  const lk = deps.liveKit;
  const rows = await sql<CallRow[]>`
    select * from internal.calls_to_reconcile(${config.reconcileEverySec}, ${DIAL_GRACE_SEC}, 200)`;
  if (rows.length === 0) return 0;
  let rooms: Set<string>;
  try {
    rooms = new Set((await lk.rooms.listRooms(rows.map((r) => r.room_name))).map((r) => r.name));
  } catch (e) {
    log.warn("calls not reconciled: LiveKit did not list rooms", { ...describeLiveKitError(e) });
    return 0;
  }
  let ended = 0;
  const unchanged: string[] = [];
  for (const row of rows) {
    let participant: ParticipantInfo | null = null;
    if (rooms.has(row.room_name)) {
      try {
        participant = await lk.rooms.getParticipant(row.room_name, row.participant_identity);
      } catch (e) {
        if (describeLiveKitError(e).code !== "not_found") continue; // LiveKit trouble: next time
      }
    }
    // Most calls checked are simply still going: they are only stamped, all in one statement.
    if (!judge(row, participant, rooms.has(row.room_name), new Date(clock.now()))) {
      unchanged.push(row.id);
      continue;
    }
    const done = await asService(sql, async (tx) => {
      const [call] = await tx<CallRow[]>`
        select * from public.outbound_calls where id = ${row.id} for update`;
      if (!call || isFinal(call.status)) return false;
      const next = judge(call, participant, rooms.has(row.room_name), new Date(clock.now()));
      await tx`update public.outbound_calls set checked_at = now() where id = ${call.id}`;
      if (!next) return false;
      const moved = await moveCall(tx, call, next, null);
      if (isFinal(moved.status)) {
        log.info("call ended (reconciled)", {
          callId: moved.id,
          status: moved.status,
          outcome: moved.outcome,
        });
      }
      return isFinal(moved.status);
    });
    if (done) ended++;
  }
  if (unchanged.length > 0) {
    await sql`update public.outbound_calls set checked_at = now() where id = any(${unchanged}::uuid[])`;
  }
  return ended;
}

/** What LiveKit's state says about a live call: still going, answered, or over. */
export function judge(
  call: CallRow,
  participant: ParticipantInfo | null,
  roomExists: boolean,
  now: Date,
): Transition | null {
  const status = participant?.attributes?.["sip.callStatus"];
  if (participant && status !== "hangup") {
    return status === "active" ? applyEvent(stateOf(call), { kind: "answered", at: now }) : null;
  }
  const answered = call.answered_at !== null || call.status === "in_progress";
  if (answered) {
    // A room that is gone closed its departure timeout after the participant left.
    const left = call.ended_at ??
      (roomExists ? now : new Date(now.getTime() - DEPARTURE_SEC * 1000));
    const endedAt = call.answered_at && left < call.answered_at ? call.answered_at : left;
    return { status: "completed", answeredAt: call.answered_at, endedAt, outcome: "answered" };
  }
  if (participant) return null; // hanging up an unanswered call: its leave comes next
  // Gone without an answer on record: the leave's reason when it came, else nothing is known,
  // and a call that may have been answered is never dialed again.
  const x = call.disconnect_reason
    ? outcomeFromDisconnect(call.disconnect_reason, false)
    : { status: "failed" as const, outcome: "lost" as const };
  return {
    status: x.status,
    answeredAt: null,
    endedAt: call.ended_at ?? now,
    outcome: x.outcome,
  };
}
