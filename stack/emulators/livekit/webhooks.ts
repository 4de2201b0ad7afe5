/**
 * Webhook delivery like LiveKit's URL notifier (livekit/protocol webhook/url_notifier.go):
 * POST protojson (camelCase, defaults omitted) with Content-Type application/webhook+json and
 * `Authorization: <JWT>` whose sha256 claim signs the body. Events of one room go out in
 * order; rooms are delivered side by side (a bounded number at once), off the request path,
 * with a bounded number of retries. Events may be dropped (the notifier drops when its queue
 * is full); each delivered event's `numDropped` counts the events dropped or undeliverable
 * since the previous send, as the notifier does.
 */
import { WebhookEvent } from "@livekit/protocol";
import { webhookToken } from "./auth.ts";
import { ID_PREFIX, newId } from "./ids.ts";
import type { Scheduler } from "./timers.ts";

const MAX_ATTEMPTS = 3;
const RETRY_DELAYS_MS = [200, 1000];
const DELIVERY_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 500;
/** Rooms whose events are being delivered at the same time. */
const PARALLEL_ROOMS = 16;

export interface WebhookDelivery {
  id: string;
  event: string;
  room: string;
  participant?: string;
  attempts: number;
  /** HTTP status of the last attempt; 0 when the request itself failed or it was dropped. */
  status: number;
  delivered: boolean;
  /** Dropped before any attempt (knob `webhookDropRate`). */
  dropped?: boolean;
  /** The event's numDropped as sent. */
  numDropped?: number;
}

export interface WebhookSenderOptions {
  apiKey: string;
  apiSecret: string;
  url: () => string | null;
  scheduler: Scheduler;
  /** 0..1 chance an event is dropped at once. */
  dropRate: () => number;
}

export class WebhookSender {
  #opts: WebhookSenderOptions;
  /** Pending events per room, in order. */
  #queues = new Map<string, WebhookEvent[]>();
  /** Rooms with a delivery under way. */
  #active = new Set<string>();
  #inflight = new Set<Promise<void>>();
  #abort = new AbortController();
  #stopped = false;
  #log: WebhookDelivery[] = [];
  sent = 0;
  failed = 0;
  /** Events dropped at once, by event type. */
  droppedByEvent: Record<string, number> = {};
  /** Dropped or undeliverable since the last send: the next event's numDropped. */
  #droppedSinceSend = 0;

  constructor(opts: WebhookSenderOptions) {
    this.#opts = opts;
  }

  /** Stamps id and time on the event and queues it; never waits for delivery. */
  emit(event: WebhookEvent): void {
    if (this.#stopped || !this.#opts.url()) return;
    event.id = newId(ID_PREFIX.webhookEvent);
    event.createdAt = BigInt(Math.floor(Date.now() / 1000));
    const room = event.room?.name ?? "";
    if (Math.random() < this.#opts.dropRate()) {
      this.droppedByEvent[event.event] = (this.droppedByEvent[event.event] ?? 0) + 1;
      this.#droppedSinceSend++;
      this.#record({
        id: event.id,
        event: event.event,
        room,
        participant: event.participant?.identity,
        attempts: 0,
        status: 0,
        delivered: false,
        dropped: true,
      });
      return;
    }
    const queue = this.#queues.get(room);
    if (queue) queue.push(event);
    else this.#queues.set(room, [event]);
    this.#pump();
  }

  deliveries(): WebhookDelivery[] {
    return this.#log.map((d) => ({ ...d }));
  }

  #record(delivery: WebhookDelivery): void {
    this.#log.push(delivery);
    if (this.#log.length > LOG_LIMIT) this.#log.shift();
  }

  /** Drops queued events, aborts the ones in flight and forgets the counters. */
  reset(): void {
    this.#queues.clear();
    this.#abort.abort();
    this.#abort = new AbortController();
    this.#log = [];
    this.sent = 0;
    this.failed = 0;
    this.droppedByEvent = {};
    this.#droppedSinceSend = 0;
  }

  /** For shutdown: like reset, then waits for the deliveries in flight to give up. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.reset();
    await Promise.all([...this.#inflight]);
  }

  /** Starts a drain for each waiting room, up to PARALLEL_ROOMS at once. */
  #pump(): void {
    if (this.#stopped) return;
    for (const room of this.#queues.keys()) {
      if (this.#inflight.size >= PARALLEL_ROOMS) return;
      if (this.#active.has(room)) continue;
      this.#active.add(room);
      const p = this.#drain(room).finally(() => {
        this.#inflight.delete(p);
        this.#active.delete(room);
        this.#pump();
      });
      this.#inflight.add(p);
    }
  }

  async #drain(room: string): Promise<void> {
    const signal = this.#abort.signal;
    for (;;) {
      const queue = this.#queues.get(room);
      const event = queue?.shift();
      if (!event || signal.aborted) {
        if (queue && queue.length === 0) this.#queues.delete(room);
        return;
      }
      await this.#deliver(event, signal);
    }
  }

  async #deliver(event: WebhookEvent, signal: AbortSignal): Promise<void> {
    event.numDropped = this.#droppedSinceSend;
    this.#droppedSinceSend = 0;
    const body = event.toJsonString();
    const record: WebhookDelivery = {
      id: event.id,
      event: event.event,
      room: event.room?.name ?? "",
      participant: event.participant?.identity,
      attempts: 0,
      status: 0,
      delivered: false,
      numDropped: event.numDropped,
    };
    this.#record(record);
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !signal.aborted; attempt++) {
      if (attempt > 0) {
        const elapsed = await this.#opts.scheduler.sleep(RETRY_DELAYS_MS[attempt - 1] ?? 1000);
        if (!elapsed || signal.aborted) break;
      }
      const url = this.#opts.url();
      if (!url) break;
      record.attempts = attempt + 1;
      const attemptCtl = new AbortController();
      const onAbort = () => attemptCtl.abort();
      signal.addEventListener("abort", onAbort);
      const cancelTimeout = this.#opts.scheduler.after(DELIVERY_TIMEOUT_MS, onAbort);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "Content-Type": "application/webhook+json",
            "Authorization": await webhookToken(body, this.#opts.apiKey, this.#opts.apiSecret),
            "User-Agent": "LiveKit",
          },
          body,
          signal: attemptCtl.signal,
        });
        await res.body?.cancel();
        record.status = res.status;
        if (res.ok) {
          record.delivered = true;
          if (!signal.aborted) this.sent++;
          return;
        }
      } catch {
        record.status = 0;
      } finally {
        cancelTimeout();
        signal.removeEventListener("abort", onAbort);
      }
    }
    if (!signal.aborted) {
      this.failed++;
      this.#droppedSinceSend += event.numDropped + 1;
    }
  }
}
