// Carrier pacing: each carrier trunk's calls-per-second budget, safe in any sliding second. The
// database hands out send slots (internal.take_carrier_slots); a dial waits for its slot here,
// and one that would go out late takes a new slot instead of crowding the next ones.
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { Deps } from "./deps.ts";
import type { Sql } from "./db.ts";
import { isDatabaseUnavailable, RateLimitError } from "./errors.ts";
import { gatedDial, SlotMissedError } from "./livekit.ts";

/** A dial sent later than this after its slot takes a new one (internal.take_carrier_slots). */
export const SLOT_TOLERANCE_MS = 30;
/** How far ahead a direct call may wait for its carrier trunk's next slot. */
export const DIRECT_SLOT_WAIT_SEC = 5;

/** One send slot of the carrier trunk, or null when none opens within `horizonSec`. */
export async function takeSlot(sql: Sql, config: Config, carrier: string, horizonSec: number) {
  const [{ slots }] = await sql<{ slots: Date[] }[]>`
    select internal.take_carrier_slots(${carrier}, ${config.carrierCps}, 1, ${horizonSec}) as slots`;
  return slots[0] ?? null;
}

/**
 * How much of an earlier dial's lateness a dial need not make up: slots are 40 ms more than a
 * second apart per cps, and the rest covers what happens after the last check, just before the
 * request is written (connecting, the network), which no check sees.
 */
const SLOT_SHRINK_MS = 10;
/** This isolate's dials per carrier trunk in the last 2 s, as they went: slot and lateness (ms). */
const sentDials = new Map<string, { slot: number; late: number }[]>();
function sentOn(clock: Clock, carrier: string) {
  const since = clock.now() - 2000;
  let sent = sentDials.get(carrier);
  if (!sent) sentDials.set(carrier, sent = []);
  // Mostly in slot order: what is older than 2 s is at the front.
  let old = 0;
  while (old < sent.length && sent[old].slot <= since) old++;
  if (old > 0) sent.splice(0, old);
  return sent;
}

/**
 * How long after its slot a dial waits so that it is no closer to an earlier dial of this
 * isolate than their slots are apart, less SLOT_SHRINK_MS: a dial that went out late pushes
 * back the ones that may share a sliding second with it, those up to 1.04 s later (5 ms more
 * for slots rounded to the ms), by its lateness.
 */
export function carriedLateness(sent: readonly { slot: number; late: number }[], slot: number) {
  let wait = 0;
  for (const d of sent) {
    if (d.slot < slot && slot - d.slot <= 1045) wait = Math.max(wait, d.late - SLOT_SHRINK_MS);
  }
  return wait;
}

/**
 * Sends a dial in its carrier slot. The dial is started at once, so the request is built and
 * signed while the slot is still ahead; it then waits for the slot at the last moment, just
 * before it is written (livekit.ts, gatedDial), and a dial that would go out more than
 * SLOT_TOLERANCE_MS late takes a new slot. `onSend` is told when it goes. false: no slot opened
 * in time, and nothing was sent.
 */
export async function sendInSlot(
  deps: Deps,
  carrier: string,
  slot: Date | null,
  room: string,
  onSend: (at: number) => void,
  send: () => Promise<void>,
): Promise<boolean> {
  const { clock } = deps;
  const gate = async () => {
    const due = slot && await awaitSlot(deps, carrier, slot);
    if (!due) return false;
    const now = clock.now();
    sentOn(clock, carrier).push({ slot: due.getTime(), late: now - due.getTime() });
    onSend(now);
    return true;
  };
  try {
    await gatedDial(room, gate, send);
    return true;
  } catch (e) {
    if (e instanceof SlotMissedError) return false;
    throw e;
  }
}

/** Waits for the slot; a dial that would go out late takes a new slot instead: the slot it goes in (null: none). */
async function awaitSlot(deps: Deps, carrier: string, slot: Date): Promise<Date | null> {
  const { clock } = deps;
  for (let tries = 0; tries < 5; tries++) {
    // Only a time still ahead is slept for: even a zero-length sleep waits for the event loop's
    // next turn, which on a busy isolate makes a dial late for a slot that had already come.
    if (slot.getTime() > clock.now()) await clock.sleep(slot.getTime() - clock.now());
    const sent = sentOn(clock, carrier);
    const goAt = slot.getTime() + carriedLateness(sent, slot.getTime());
    if (goAt > clock.now()) await clock.sleep(goAt - clock.now());
    if (clock.now() - slot.getTime() <= SLOT_TOLERANCE_MS) return slot;
    const next = await retakeSlot(deps, carrier);
    if (!next) return null;
    slot = next;
  }
  return null;
}

/** A new slot for a dial that missed its own; the database restarting is waited out a little. */
async function retakeSlot({ sql, config, clock }: Deps, carrier: string) {
  for (let tries = 0;; tries++) {
    try {
      return await takeSlot(sql, config, carrier, DIRECT_SLOT_WAIT_SEC);
    } catch (e) {
      // Nothing has gone out yet, so ask again shortly.
      if (!isDatabaseUnavailable(e) || tries === 4) throw e;
      await clock.sleep(250 * (tries + 1));
    }
  }
}

/** 429 with the wait until the carrier trunk's next slot. */
export async function carrierBusy({ sql, clock }: Deps, carrier: string) {
  const [{ at }] = await sql<{ at: Date }[]>`select internal.carrier_next_slot(${carrier}) as at`;
  const wait = Math.max(1, Math.ceil((at.getTime() - clock.now()) / 1000));
  return new RateLimitError(
    `The carrier trunk's calls-per-second budget is used up; try again in ${wait} s.`,
    wait,
  );
}
