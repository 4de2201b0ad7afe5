/**
 * Simulated outbound SIP calls. Like LiveKit SIP, the participant joins the room first
 * (sip.callStatus=dialing) and publishes its audio track, then the INVITE goes out: the
 * trunk's CPS limit and the carrier hook may reject it, otherwise the callee behaves as the
 * outcome table says. Every duration is simulated time, scaled by the time-scale knob.
 */
import { DisconnectReason, ParticipantInfo_Kind } from "@livekit/protocol";
import {
  type CalleeBehaviour,
  calleeBehaviour,
  type CallOutcome,
  JOIN_LIMIT_S,
  leaveReasonForSipStatus,
  outcomeForSipStatus,
  POST_DIAL_DELAY_S,
  ringingTimeoutError,
  sipCallDisconnectReason,
  sipCallError,
  transferError,
  WAIT_UNTIL_ANSWERED_LIMIT_S,
} from "./call_outcomes.ts";
import type { Rooms } from "./rooms.ts";
import type { Scheduler } from "./timers.ts";
import { TwirpError } from "./twirp.ts";

/** Optional carrier stand-in: a SIP failure returned here fails the call as the carrier would. */
export type CarrierCheck = (call: {
  address: string;
  username: string;
  password: string;
  fromNumber: string;
  toNumber: string;
  transport: string;
  /** When the INVITE reached the carrier (ms since the epoch). */
  invitedAt: number;
}) => Promise<{ sipStatusCode: number; sipStatus: string } | null>;

/**
 * How the carrier answers a REFER (knob `transferRefusal`): refused outright with a final SIP
 * status (`at: "refer"`, the default), or accepted (202) and then reported failed in a NOTIFY
 * (`at: "notify"`, e.g. the transfer target was busy).
 */
export interface TransferRefusal {
  sipStatusCode: number;
  sipStatus?: string;
  at?: "refer" | "notify";
}

/**
 * Real milliseconds from the REFER to the carrier's answer to it (202 Accepted, or a refusal),
 * and from the 202 to the NOTIFY saying the target answered. Signalling round trips, like the
 * `latencyMs` knob, so not scaled by `timeScale`: a transfer takes the same short moment at any
 * scale, during which a second request for the call meets the one under way.
 */
export const REFER_ANSWER_MS = 100;
export const TRANSFER_CONNECT_MS = 200;
/** livekit/sip hangs up this long (simulated) after a successful transfer unless the carrier did. */
export const REFER_BYE_S = 1;

/** One TransferSIPParticipant the SIP service acted on. */
export interface TransferRecord {
  transferTo: string;
  at: number;
  /** pending until the carrier answers; then transferred, refused (the REFER) or failed (NOTIFY). */
  result: "pending" | "transferred" | "refused" | "failed" | "call_ended";
  sipStatusCode?: number;
  sipStatus?: string;
}

export const CPS_LIMIT_STATUS = {
  sipStatusCode: 503,
  sipStatus: "Trunk CPS limit exceeded",
} as const;

export interface DialRequest {
  room: string;
  identity: string;
  name: string;
  metadata: string;
  attributes: Record<string, string>;
  trunkId: string;
  address: string;
  transport: string;
  username: string;
  password: string;
  fromNumber: string;
  toNumber: string;
  /** When the request reached LiveKit (CallContext.receivedAt): the INVITE is its join later. */
  receivedAt?: number;
  ringingTimeoutS: number;
  maxCallDurationS: number;
  waitUntilAnswered: boolean;
  /** X-Livekit-Request-Id of the CreateSIPParticipant request (the SDK keeps it across replays). */
  requestId: string | null;
  /** The listener (region) the request arrived at. */
  region: string;
}

/** One INVITE sent to the carrier. */
export interface InviteRecord {
  at: number;
  sipCallId: string;
  room: string;
  identity: string;
  toNumber: string;
  requestId: string | null;
  region: string;
}

export interface CallRecord {
  sipCallId: string;
  participantId: string;
  identity: string;
  room: string;
  trunkId: string;
  address: string;
  fromNumber: string;
  toNumber: string;
  requestId: string | null;
  region: string;
  startedAt: number;
  /** When the INVITE went out. */
  invitedAt?: number;
  outcome: CallOutcome;
  sipStatusCode?: number;
  sipStatus?: string;
  answeredAt?: number;
  endedAt?: number;
  /** The participant's disconnect reason, as participant_left carries it. */
  disconnectReason?: string;
  /** The reason classifyInviteError records in the SIP call info, for failed INVITEs. */
  sipCallDisconnectReason?: string;
  /** Who ended an answered call. */
  endedBy?: "callee" | "max_call_duration" | "transfer" | "room";
  /** Where a successful transfer sent the callee. */
  transferredTo?: string;
  /** Every transfer the SIP service started for this call, in order. */
  transfers?: TransferRecord[];
}

/** Something the call does at a simulated time, counted in seconds from the INVITE. */
interface TimelineEvent {
  atS: number;
  seq: number;
  run: () => void;
}

interface Call {
  record: CallRecord;
  req: DialRequest;
  answered: boolean;
  ended: boolean;
  /**
   * Maps real to simulated time: `simS` seconds after the INVITE at real time `realMs`,
   * advancing `msPerS` real ms per simulated second. Re-anchored when the time scale changes.
   */
  clock: { realMs: number; simS: number; msPerS: number };
  /** Simulated time of the last event that ran. */
  lastS: number;
  /** Pending events in simulated-time order; only the first has a timer. */
  timeline: TimelineEvent[];
  cancelNext: (() => void) | null;
  /** While the carrier decides on the INVITE: simulated time stands still, no event runs. */
  held?: boolean;
  waiter?: { resolve(): void; reject(err: TwirpError): void };
  /** The transfer in progress: livekit/sip keeps one per call (service.go pendingTransfers). */
  transfer?: {
    to: string;
    done: Promise<void>;
    /** The carrier accepted the REFER (202): a call that ends now counts as transferred. */
    accepted: boolean;
    settle(err: TwirpError | null): void;
  };
}

export interface CallsDeps {
  rooms: Rooms;
  scheduler: Scheduler;
  scaledMs(seconds: number): number;
  trunkCps(): number;
  /** Simulated ms the SIP participant takes to join. */
  joinDelayMs(): number;
  carrier?: CarrierCheck;
  /** Knob `transferRefusal`: how the carrier answers the next REFER (null: it transfers). */
  transferRefusal?(): TransferRefusal | null;
}

export class Calls {
  #deps: CallsDeps;
  #calls = new Map<string, Call>();
  #seq = 0;
  /** INVITE times (real ms) in the last second, per trunk address. */
  #invites = new Map<string, number[]>();
  #inviteLog: InviteRecord[] = [];

  constructor(deps: CallsDeps) {
    this.#deps = deps;
  }

  activeCount(): number {
    let n = 0;
    for (const c of this.#calls.values()) if (!c.ended) n++;
    return n;
  }

  records(): CallRecord[] {
    return [...this.#calls.values()].map((c) => ({
      ...c.record,
      ...(c.record.transfers ? { transfers: c.record.transfers.map((t) => ({ ...t })) } : {}),
    }));
  }

  /** Every INVITE sent, in order. */
  invites(): InviteRecord[] {
    return this.#inviteLog.map((i) => ({ ...i }));
  }

  /**
   * Joins the SIP participant and starts dialing. Resolves once the participant exists, or,
   * with waitUntilAnswered, once the callee answers (rejecting with the call's Twirp error).
   * livekit-server waits 30 s for the participant (80 s with waitUntilAnswered, join
   * included); a join slower than that fails the request with deadline_exceeded, and the SIP
   * service, whose request shares that deadline, abandons the join: nothing joins or dials.
   */
  async dial(
    sipCallId: string,
    req: DialRequest,
  ): Promise<{ participantId: string; identity: string }> {
    const limitS = req.waitUntilAnswered ? WAIT_UNTIL_ANSWERED_LIMIT_S : JOIN_LIMIT_S;
    const joinS = this.#deps.joinDelayMs() / 1000;
    if (joinS >= limitS) {
      if (!(await this.#deps.scheduler.sleep(this.#deps.scaledMs(limitS)))) {
        throw new TwirpError("unavailable", "service shutting down");
      }
      throw new TwirpError("deadline_exceeded", "request timed out");
    }
    if (joinS > 0 && !(await this.#deps.scheduler.sleep(this.#deps.scaledMs(joinS)))) {
      throw new TwirpError("unavailable", "service shutting down");
    }
    const call: Call = {
      req,
      answered: false,
      ended: false,
      clock: { realMs: Date.now(), simS: 0, msPerS: this.#deps.scaledMs(1) },
      lastS: 0,
      timeline: [],
      cancelNext: null,
      record: {
        sipCallId,
        participantId: "",
        identity: req.identity,
        room: req.room,
        trunkId: req.trunkId,
        address: req.address,
        fromNumber: req.fromNumber,
        toNumber: req.toNumber,
        requestId: req.requestId,
        region: req.region,
        startedAt: Date.now(),
        outcome: "dialing",
      },
    };
    const participant = this.#deps.rooms.join(
      req.room,
      {
        identity: req.identity,
        name: req.name,
        metadata: req.metadata,
        attributes: { ...req.attributes, "sip.callStatus": "dialing" },
        kind: ParticipantInfo_Kind.SIP,
      },
      (reason) => this.#removedByRoom(call, reason),
    );
    call.record.participantId = participant.sid;
    this.#calls.set(sipCallId, call);
    // The track exists before the INVITE: livekit/sip may play a dial tone into it.
    this.#deps.rooms.publishAudio(req.room, req.identity);

    const answered = req.waitUntilAnswered ? this.#waitForAnswer(call) : null;
    // Dated from the request, not from when this process got to it (see CallContext.receivedAt).
    const invitedAt = Math.min(
      Date.now(),
      (req.receivedAt ?? Date.now()) + this.#deps.scaledMs(Math.max(0, joinS)),
    );
    this.#invite(call, invitedAt).catch(() => this.#fail(call, 500, "Server Internal Error"));
    if (answered) {
      // livekit-server stops waiting at its limit, counted from the request; the call goes on.
      this.#at(call, limitS - joinS, () => {
        call.waiter?.reject(new TwirpError("deadline_exceeded", "request timed out"));
      });
      await answered;
    }
    return { participantId: participant.sid, identity: participant.identity };
  }

  /**
   * TransferSIPParticipant as livekit/sip runs it. One transfer per call at a time: a second
   * request to the same target waits for the first one's result, to another target is
   * `invalid_argument` "call already being transferred elsewhere" (pkg/sip/service.go). Only an
   * established call can be transferred (pkg/sip/outbound.go). The REFER goes out in the call's
   * dialog; the carrier answers it (202, or a refusal with its SIP status), then NOTIFYs the
   * target's answer; on success the call is hung up one second later unless the carrier did.
   * Resolves when the transfer succeeded, rejects with LiveKit's error otherwise.
   */
  async transfer(sipCallId: string, transferTo: string): Promise<void> {
    const call = this.#calls.get(sipCallId);
    if (!call || call.ended) throw new TwirpError("not_found", "unknown call");
    const pending = call.transfer;
    if (pending) {
      if (pending.to !== transferTo) {
        throw new TwirpError("invalid_argument", "call already being transferred elsewhere");
      }
      return await pending.done;
    }
    if (!call.answered) {
      throw new TwirpError("failed_precondition", "can't transfer non established call");
    }
    const record: TransferRecord = { transferTo, at: Date.now(), result: "pending" };
    (call.record.transfers ??= []).push(record);
    const refusal = this.#deps.transferRefusal?.() ?? null;
    let settle!: (err: TwirpError | null) => void;
    const done = new Promise<void>((resolve, reject) => {
      settle = (err) => {
        if (call.transfer?.done !== done) return;
        call.transfer = undefined;
        err ? reject(err) : resolve();
      };
    });
    // Several waiters may share it; the request handler below is only one of them.
    done.catch(() => {});
    call.transfer = { to: transferTo, done, accepted: false, settle };
    const { scheduler } = this.#deps;
    scheduler.after(REFER_ANSWER_MS, () => {
      if (call.transfer?.done !== done) return; // the call ended first
      if (refusal && (refusal.at ?? "refer") === "refer") {
        Object.assign(record, refusedStatus(refusal), { result: "refused" });
        settle(transferError(refusal.sipStatusCode, refusal.sipStatus ?? "", "refer"));
        return;
      }
      call.transfer.accepted = true;
      scheduler.after(TRANSFER_CONNECT_MS, () => {
        if (call.transfer?.done !== done) return;
        if (refusal) {
          Object.assign(record, refusedStatus(refusal), { result: "failed" });
          settle(transferError(refusal.sipStatusCode, refusal.sipStatus ?? "", "notify"));
          return;
        }
        record.result = "transferred";
        call.record.transferredTo = transferTo;
        settle(null);
        this.#at(
          call,
          this.#simulatedNow(call) + REFER_BYE_S,
          () => this.#hangup(call, "transfer"),
        );
      });
    });
    await done;
  }

  /** Forgets every call without webhooks; pending waits answer `unavailable`. */
  clear(message: string): void {
    for (const call of this.#calls.values()) {
      if (!call.ended) {
        this.#stop(call);
        call.waiter?.reject(new TwirpError("unavailable", message));
      }
    }
    this.#calls.clear();
    this.#invites.clear();
    this.#inviteLog = [];
  }

  /** Applies a new time scale to calls in progress. */
  rescale(): void {
    for (const call of this.#calls.values()) this.#pump(call);
  }

  #waitForAnswer(call: Call): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      call.waiter = {
        resolve: () => {
          call.waiter = undefined;
          resolve();
        },
        reject: (err) => {
          call.waiter = undefined;
          reject(err);
        },
      };
    });
  }

  /** Schedules `run` at simulated time `atS` (seconds after the INVITE), in order with the rest. */
  #at(call: Call, atS: number, run: () => void): void {
    call.timeline.push({ atS, seq: this.#seq++, run });
    call.timeline.sort((a, b) => a.atS - b.atS || a.seq - b.seq);
    this.#pump(call);
  }

  /** Keeps one timer per call, for its earliest event, so events run in simulated-time order at any scale. */
  #pump(call: Call): void {
    call.cancelNext?.();
    call.cancelNext = null;
    const next = call.timeline[0];
    if (call.ended || call.held || !next) return;
    const msPerS = this.#deps.scaledMs(1);
    if (msPerS !== call.clock.msPerS) {
      call.clock = { realMs: Date.now(), simS: this.#simulatedNow(call), msPerS };
    }
    const delay = (next.atS - this.#simulatedNow(call)) * msPerS;
    call.cancelNext = this.#deps.scheduler.after(delay, () => {
      call.cancelNext = null;
      call.timeline.shift();
      if (call.ended) return;
      call.lastS = next.atS;
      next.run();
      this.#pump(call);
    });
  }

  #simulatedNow(call: Call): number {
    const { realMs, simS, msPerS } = call.clock;
    const now = msPerS > 0 ? simS + (Date.now() - realMs) / msPerS : simS;
    return Math.max(call.lastS, now);
  }

  #stop(call: Call): void {
    call.ended = true;
    call.cancelNext?.();
    call.cancelNext = null;
    call.timeline = [];
    const transfer = call.transfer;
    if (transfer) {
      // livekit/sip: a REFER the carrier accepted counts as done when the call ends first;
      // one still unanswered ends with the call.
      const record = call.record.transfers?.at(-1);
      if (record?.result === "pending") {
        record.result = transfer.accepted ? "transferred" : "call_ended";
      }
      if (transfer.accepted) call.record.transferredTo = transfer.to;
      transfer.settle(
        transfer.accepted
          ? null
          : new TwirpError("failed_precondition", "can't transfer hung up call"),
      );
    }
  }

  /** Admits an INVITE sent at `now` under the per-address calls-per-second limit (real seconds). */
  #admitInvite(address: string, now: number): boolean {
    const cps = this.#deps.trunkCps();
    if (cps <= 0) return true;
    const key = address.toLowerCase();
    const recent = (this.#invites.get(key) ?? []).filter((t) => now - t < 1000);
    if (recent.length >= cps) {
      this.#invites.set(key, recent);
      return false;
    }
    recent.push(now);
    this.#invites.set(key, recent);
    return true;
  }

  async #invite(call: Call, invitedAt: number): Promise<void> {
    const { req } = call;
    call.clock = { realMs: Date.now(), simS: 0, msPerS: this.#deps.scaledMs(1) };
    call.record.invitedAt = invitedAt;
    this.#inviteLog.push({
      at: call.record.invitedAt,
      sipCallId: call.record.sipCallId,
      room: req.room,
      identity: req.identity,
      toNumber: req.toNumber,
      requestId: req.requestId,
      region: req.region,
    });
    call.held = true;
    // The ringing timeout and the call's max duration both run from the INVITE.
    this.#at(call, Math.min(req.ringingTimeoutS, req.maxCallDurationS), () => {
      if (!call.answered) this.#noAnswer(call);
    });
    this.#at(call, req.maxCallDurationS, () => this.#hangup(call, "max_call_duration"));

    let behaviour: CalleeBehaviour | null = null;
    if (!this.#admitInvite(req.address, invitedAt)) {
      behaviour = { kind: "reject", ringS: 0, ...CPS_LIMIT_STATUS };
    } else if (this.#deps.carrier) {
      let verdict: { sipStatusCode: number; sipStatus: string } | null;
      try {
        verdict = await this.#deps.carrier({
          address: req.address,
          username: req.username,
          password: req.password,
          fromNumber: req.fromNumber,
          toNumber: req.toNumber,
          transport: req.transport,
          invitedAt,
        });
      } catch {
        verdict = { sipStatusCode: 503, sipStatus: "Service Unavailable" };
      }
      if (verdict) behaviour = { kind: "reject", ringS: 0, ...verdict };
    }
    call.held = false;
    if (call.ended) return;
    // The carrier's verdict takes no simulated time: the emulator's own work on it (hashing
    // the INVITE's credentials, which a starved CPU can stretch past a 20 ms ringing timeout
    // at small time scales) must not run the call's timers.
    call.clock = { realMs: Date.now(), simS: 0, msPerS: this.#deps.scaledMs(1) };
    this.#pump(call);
    behaviour ??= calleeBehaviour(req.toNumber);

    const firstResponse = POST_DIAL_DELAY_S;
    switch (behaviour.kind) {
      case "no_answer":
        this.#at(call, firstResponse, () => this.#ringing(call));
        return;
      case "answer": {
        const { ringS, talkS } = behaviour;
        this.#at(call, firstResponse, () => this.#ringing(call));
        this.#at(call, firstResponse + ringS, () => {
          this.#answer(call);
          // The callee hangs up after talking.
          this.#at(call, firstResponse + ringS + talkS, () => this.#hangup(call, "callee"));
        });
        return;
      }
      case "reject": {
        const { ringS, sipStatusCode, sipStatus } = behaviour;
        if (ringS > 0) this.#at(call, firstResponse, () => this.#ringing(call));
        this.#at(call, firstResponse + ringS, () => this.#fail(call, sipStatusCode, sipStatus));
        return;
      }
    }
  }

  #ringing(call: Call): void {
    if (call.answered) return;
    call.record.outcome = "ringing";
    this.#deps.rooms.setAttributes(call.req.room, call.req.identity, {
      "sip.callStatus": "ringing",
    });
  }

  #answer(call: Call): void {
    call.answered = true;
    call.record.outcome = "active";
    call.record.answeredAt = Date.now();
    this.#deps.rooms.setAttributes(call.req.room, call.req.identity, {
      "sip.callStatus": "active",
    });
    call.waiter?.resolve();
  }

  #hangup(call: Call, by: "callee" | "max_call_duration" | "transfer"): void {
    if (!call.answered) return;
    call.record.endedBy = by;
    this.#deps.rooms.setAttributes(call.req.room, call.req.identity, {
      "sip.callStatus": "hangup",
    });
    this.#end(
      call,
      by === "transfer" ? "transferred" : "completed",
      DisconnectReason.CLIENT_INITIATED,
    );
  }

  #fail(call: Call, code: number, reason: string): void {
    if (call.ended || call.answered) return;
    call.record.sipStatusCode = code;
    call.record.sipStatus = reason;
    call.record.sipCallDisconnectReason = DisconnectReason[sipCallDisconnectReason(code)];
    this.#end(
      call,
      outcomeForSipStatus(code, reason),
      leaveReasonForSipStatus(code, reason),
      sipCallError(code, reason),
    );
  }

  #noAnswer(call: Call): void {
    call.record.sipCallDisconnectReason = DisconnectReason[DisconnectReason.USER_UNAVAILABLE];
    this.#end(call, "no_answer", DisconnectReason.USER_UNAVAILABLE, ringingTimeoutError());
  }

  #end(call: Call, outcome: CallOutcome, reason: DisconnectReason, error?: TwirpError): void {
    if (call.ended) return;
    this.#stop(call);
    call.record.outcome = outcome;
    call.record.endedAt = Date.now();
    call.record.disconnectReason = DisconnectReason[reason];
    if (error) call.waiter?.reject(error);
    this.#deps.rooms.remove(call.req.room, call.req.identity, reason, false);
  }

  /** The server removed the participant (room deleted, removed, replaced): the call ends. */
  #removedByRoom(call: Call, reason: DisconnectReason): void {
    if (call.ended) return;
    this.#stop(call);
    call.record.outcome = call.answered ? "completed" : "canceled";
    if (call.answered) call.record.endedBy = "room";
    call.record.endedAt = Date.now();
    call.record.disconnectReason = DisconnectReason[reason];
    // Dialing stops when the room connection closes; LiveKit SIP reports that as a timeout.
    call.waiter?.reject(ringingTimeoutError());
  }
}

function refusedStatus(r: TransferRefusal): { sipStatusCode: number; sipStatus?: string } {
  return { sipStatusCode: r.sipStatusCode, ...(r.sipStatus ? { sipStatus: r.sipStatus } : {}) };
}
