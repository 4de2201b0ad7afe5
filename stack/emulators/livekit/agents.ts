/**
 * Agent workers, as LiveKit's agent dispatch runs them: each agent name has a pool of
 * workers; a dispatch is a job that waits until a worker of its agent name is free, then the
 * worker joins the room (kind AGENT) after its start-up time and publishes its audio. A job
 * ends when the room's last other participant has left, when the room goes, or when its
 * dispatch is deleted; its worker then takes the next waiting job of that name.
 *
 * Every new room also gets a dispatch for agent name "" (rooms.ts). Its job goes to workers
 * registered without an agent name (`unnamedAgentWorkers`); with none registered, as by default,
 * it is dropped and nothing joins, as livekit-server drops a job no worker is registered for
 * (reference livekit-selfhosted.md "Agent dispatch", livekit `pkg/agent/client.go`).
 */
import {
  type AgentDispatch,
  DisconnectReason,
  ParticipantInfo_Kind,
  type WebhookEvent,
} from "@livekit/protocol";
import type { Rooms } from "./rooms.ts";
import type { Scheduler } from "./timers.ts";

export interface AgentKnobs {
  /** Workers per agent name; -1 = as many as there are jobs. */
  agentWorkers: number;
  /**
   * Workers registered without an agent name, which take the automatic dispatch for agent name
   * "" every new room gets; 0 = none registered (those jobs are dropped); -1 = as many as jobs.
   */
  unnamedAgentWorkers: number;
  /** A worker's time from taking a job to joining its room (simulated ms). */
  agentJoinDelayMs: number;
  /** 0..1 chance a joined agent never publishes audio (never speaks). */
  agentSilentRate: number;
}

export interface AgentJobRecord {
  dispatchId: string;
  agentName: string;
  room: string;
  identity: string;
  dispatchedAt: number;
  joinedAt?: number;
  audioAt?: number;
  leftAt?: number;
  /** Removed before a worker took it (DeleteDispatch or room gone). */
  cancelled?: boolean;
}

interface Job {
  record: AgentJobRecord;
  state: "waiting" | "starting" | "joined" | "done";
  cancelJoin?: () => void;
}

export interface AgentsDeps {
  rooms: Rooms;
  scheduler: Scheduler;
  scaledMs(seconds: number): number;
  knobs(): AgentKnobs;
}

export class Agents {
  #deps: AgentsDeps;
  #jobs: Job[] = [];

  constructor(deps: AgentsDeps) {
    this.#deps = deps;
  }

  records(): AgentJobRecord[] {
    return this.#jobs.map((j) => ({ ...j.record }));
  }

  clear(): void {
    for (const j of this.#jobs) j.cancelJoin?.();
    this.#jobs = [];
  }

  /** A new dispatch: a job for a worker of its agent name. */
  dispatched(d: AgentDispatch): void {
    // No worker registered under the name: LiveKit drops the job, never retried. Modelled for
    // agent name "" only; a named agent's job waits for a worker (`agentWorkers`).
    if (d.agentName === "" && this.#workers("") === 0) return;
    if (this.#jobs.some((j) => j.record.dispatchId === d.id)) return;
    this.#jobs.push({
      state: "waiting",
      record: {
        dispatchId: d.id,
        agentName: d.agentName,
        room: d.room,
        identity: `agent-${d.id.replace(/^AD_/, "")}`,
        dispatchedAt: Date.now(),
      },
    });
    this.#pump();
  }

  /** DeleteDispatch: a waiting job is dropped; a started one leaves its room. */
  deleted(dispatchId: string): void {
    const job = this.#jobs.find((j) => j.record.dispatchId === dispatchId && j.state !== "done");
    if (job) this.#end(job, DisconnectReason.CLIENT_INITIATED);
  }

  /** Room events: agents leave when everyone else has, and their rooms' jobs end with them. */
  observe(ev: WebhookEvent): void {
    const room = ev.room?.name;
    if (!room) return;
    if (ev.event === "room_finished") {
      for (const j of this.#live(room)) this.#end(j, DisconnectReason.ROOM_CLOSED);
      return;
    }
    if (ev.event !== "participant_left" || ev.participant?.kind === ParticipantInfo_Kind.AGENT) {
      return;
    }
    const others = this.#deps.rooms.participants(room).filter((p) =>
      p.kind !== ParticipantInfo_Kind.AGENT
    );
    if (others.length === 0) {
      for (const j of this.#live(room)) {
        if (j.state === "joined") this.#end(j, DisconnectReason.CLIENT_INITIATED);
      }
    }
  }

  #live(room: string): Job[] {
    return this.#jobs.filter((j) => j.record.room === room && j.state !== "done");
  }

  /** Workers of an agent name (-1 = as many as there are jobs). */
  #workers(agentName: string): number {
    const k = this.#deps.knobs();
    return agentName === "" ? k.unnamedAgentWorkers : k.agentWorkers;
  }

  #busy(agentName: string): number {
    return this.#jobs.filter((j) =>
      j.record.agentName === agentName && (j.state === "starting" || j.state === "joined")
    ).length;
  }

  /** Hands waiting jobs, oldest first, to free workers. */
  #pump(): void {
    for (const job of this.#jobs) {
      if (job.state !== "waiting") continue;
      const workers = this.#workers(job.record.agentName);
      if (workers >= 0 && this.#busy(job.record.agentName) >= workers) continue;
      if (!this.#deps.rooms.has(job.record.room)) {
        job.state = "done";
        job.record.cancelled = true;
        continue;
      }
      job.state = "starting";
      const delay = this.#deps.scaledMs(this.#deps.knobs().agentJoinDelayMs / 1000);
      job.cancelJoin = this.#deps.scheduler.after(delay, () => this.#join(job));
    }
  }

  #join(job: Job): void {
    job.cancelJoin = undefined;
    if (job.state !== "starting") return;
    const { room, identity, agentName } = job.record;
    if (!this.#deps.rooms.has(room)) {
      job.state = "done";
      job.record.cancelled = true;
      this.#pump();
      return;
    }
    job.state = "joined";
    job.record.joinedAt = Date.now();
    this.#deps.rooms.join(room, {
      identity,
      name: agentName,
      metadata: "",
      // livekit-server sets lk.agent_name on every agent's token to its worker's agent name
      // (pkg/agent/worker.go AgentNameAttributeKey; reference livekit-selfhosted.md).
      attributes: { "lk.agent.state": "listening", "lk.agent_name": agentName },
      kind: ParticipantInfo_Kind.AGENT,
    }, () => this.#end(job, DisconnectReason.ROOM_DELETED, false));
    if (Math.random() >= this.#deps.knobs().agentSilentRate) {
      this.#deps.rooms.publishAudio(room, identity);
      job.record.audioAt = Date.now();
    }
  }

  #end(job: Job, reason: DisconnectReason, leave = true): void {
    const was = job.state;
    job.cancelJoin?.();
    job.cancelJoin = undefined;
    job.state = "done";
    if (was === "waiting" || was === "starting") job.record.cancelled = true;
    if (was === "joined") {
      job.record.leftAt = Date.now();
      if (leave) this.#deps.rooms.remove(job.record.room, job.record.identity, reason, false);
    }
    this.#pump();
  }
}
