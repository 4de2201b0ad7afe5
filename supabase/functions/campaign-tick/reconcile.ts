// Reconciliation: LiveKit's webhooks are best effort (a participant's leave or a room's end
// can be dropped), so calls that may have ended unseen are checked against the rooms and
// participants LiveKit still holds; the database (internal.reconcile_calls) decides from that.
import type { CallRow } from "../_shared/calls.ts";
import type { Deps } from "../_shared/deps.ts";
import { describeLiveKitError, DIAL_TIMEOUT_SEC } from "../_shared/livekit.ts";

/** A dial still waiting after this long lost its requester (a stopped function). */
const DIAL_GRACE_SEC = DIAL_TIMEOUT_SEC + 30;
/** livekit-server's default departure timeout: a room closes this long after its last participant left. */
const DEPARTURE_SEC = 20;

/** What LiveKit holds for one call checked. */
interface Seen {
  id: string;
  roomExists: boolean;
  present: boolean;
  callStatus: string | null;
}

/** Checks live calls that are due against LiveKit and settles the ones that ended; returns how many ended. */
export async function reconcileCalls(deps: Deps) {
  const { config, sql, log } = deps;
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
  const seen: Seen[] = [];
  for (const row of rows) {
    const roomExists = rooms.has(row.room_name);
    let callStatus: string | null = null;
    let present = false;
    if (roomExists) {
      try {
        const p = await lk.rooms.getParticipant(row.room_name, row.participant_identity);
        present = true;
        callStatus = p.attributes?.["sip.callStatus"] ?? null;
      } catch (e) {
        if (describeLiveKitError(e).code !== "not_found") continue; // LiveKit trouble: next time
      }
    }
    seen.push({ id: row.id, roomExists, present, callStatus });
  }
  if (seen.length === 0) return 0;
  // One statement: calls still going are stamped, the ones that ended are settled and returned.
  const ended = await sql<CallRow[]>`
    select * from internal.reconcile_calls(${sql.json(seen as never)}, ${DEPARTURE_SEC})`;
  for (const call of ended) {
    log.info("call ended (reconciled)", {
      callId: call.id,
      status: call.status,
      outcome: call.outcome,
    });
  }
  return ended.length;
}
