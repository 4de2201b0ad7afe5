/**
 * Rooms and their participants, with LiveKit's lifecycle: a room starts when created or
 * first joined, and finishes once empty for its departure timeout (after someone has left)
 * or empty timeout (nobody ever joined), or when deleted. Each change emits its webhook.
 */
import {
  AgentDispatch,
  AgentDispatchState,
  DisconnectReason,
  ParticipantInfo,
  ParticipantInfo_Kind,
  ParticipantInfo_State,
  ParticipantPermission,
  Room,
  RoomAgentDispatch,
  RoomEndReason,
  TrackInfo,
  TrackSource,
  TrackType,
  WebhookEvent,
} from "@livekit/protocol";
import { ID_PREFIX, newId } from "./ids.ts";
import type { JsonValue } from "./twirp.ts";
import type { Scheduler } from "./timers.ts";

/** livekit-server defaults (pkg/config RoomConfig). */
export const DEFAULT_EMPTY_TIMEOUT_S = 300;
export const DEFAULT_DEPARTURE_TIMEOUT_S = 20;

export interface RoomSettings {
  emptyTimeout?: number;
  departureTimeout?: number;
  maxParticipants?: number;
  metadata?: string;
  /** The agents CreateRoom asks for; none gets the automatic dispatch for agent name "". */
  agents?: DispatchInit[];
}

/** What a dispatch is made of (its id, room and state are the room's to set). */
export type DispatchInit = Pick<
  AgentDispatch,
  "agentName" | "metadata" | "restartPolicy" | "deployment" | "attributes"
>;

export interface ParticipantInit {
  identity: string;
  name: string;
  metadata: string;
  attributes: Record<string, string>;
  kind: ParticipantInfo_Kind;
}

/** Told when the server removes a participant (room deleted, removed by API, duplicate identity). */
export type RemovedHook = (reason: DisconnectReason) => void;

interface Member {
  info: ParticipantInfo;
  onRemoved?: RemovedHook;
}

interface RoomEntry {
  info: Room;
  members: Map<string, Member>;
  dispatches: AgentDispatch[];
  everJoined: boolean;
  cancelClose: (() => void) | null;
}

export interface RoomsDeps {
  scheduler: Scheduler;
  emit(event: WebhookEvent): void;
  /** Simulated seconds to real milliseconds (applies the time scale). */
  scaledMs(seconds: number): number;
  /** A new dispatch: its job is offered to the agent workers. */
  dispatched(dispatch: AgentDispatch): void;
}

export class Rooms {
  #rooms = new Map<string, RoomEntry>();
  #deps: RoomsDeps;

  constructor(deps: RoomsDeps) {
    this.#deps = deps;
  }

  has(name: string): boolean {
    return this.#rooms.has(name);
  }

  room(name: string): Room | undefined {
    return this.#rooms.get(name)?.info.clone();
  }

  /**
   * Returns the room, creating it (room_started) when it does not exist. A new room gets a
   * dispatch for each agent asked for, or, when none is, one for agent name "": livekit-server
   * gives every new room that automatic dispatch (pkg/rtc/room.go
   * createAgentDispatchesFromRoomAgent; reference livekit-selfhosted.md "Agent dispatch").
   */
  ensure(name: string, settings: RoomSettings = {}): Room {
    const existing = this.#rooms.get(name);
    if (existing) return existing.info.clone();
    const now = Date.now();
    const entry: RoomEntry = {
      info: new Room({
        sid: newId(ID_PREFIX.room),
        name,
        emptyTimeout: settings.emptyTimeout || DEFAULT_EMPTY_TIMEOUT_S,
        departureTimeout: settings.departureTimeout || DEFAULT_DEPARTURE_TIMEOUT_S,
        maxParticipants: settings.maxParticipants ?? 0,
        metadata: settings.metadata ?? "",
        creationTime: BigInt(Math.floor(now / 1000)),
        creationTimeMs: BigInt(now),
      }),
      members: new Map(),
      dispatches: [],
      everJoined: false,
      cancelClose: null,
    };
    this.#rooms.set(name, entry);
    this.#emit("room_started", entry);
    this.#scheduleCloseIfEmpty(entry);
    const agents = settings.agents?.length ? settings.agents : [new RoomAgentDispatch()];
    for (const a of agents) {
      const { agentName, metadata, restartPolicy, deployment, attributes } = a;
      this.#dispatch(entry, { agentName, metadata, restartPolicy, deployment, attributes });
    }
    return entry.info.clone();
  }

  /** Adds a participant (participant_joined); an existing one with the same identity is replaced. */
  join(roomName: string, init: ParticipantInit, onRemoved?: RemovedHook): ParticipantInfo {
    this.ensure(roomName);
    if (this.#rooms.get(roomName)!.members.has(init.identity)) {
      this.remove(roomName, init.identity, DisconnectReason.DUPLICATE_IDENTITY);
    }
    // The removal above may have closed nothing (rooms close on a timer), so the entry is still there.
    const entry = this.#rooms.get(roomName)!;
    const now = Date.now();
    const info = new ParticipantInfo({
      sid: newId(ID_PREFIX.participant),
      identity: init.identity,
      name: init.name,
      metadata: init.metadata,
      attributes: { ...init.attributes },
      kind: init.kind,
      state: ParticipantInfo_State.ACTIVE,
      joinedAt: BigInt(Math.floor(now / 1000)),
      joinedAtMs: BigInt(now),
      version: 1,
      permission: new ParticipantPermission({
        canSubscribe: true,
        canPublish: true,
        canPublishData: true,
      }),
    });
    entry.members.set(init.identity, { info, onRemoved });
    entry.everJoined = true;
    entry.cancelClose?.();
    entry.cancelClose = null;
    entry.info.numParticipants = entry.members.size;
    this.#emit("participant_joined", entry, info);
    return info.clone();
  }

  participant(roomName: string, identity: string): ParticipantInfo | undefined {
    return this.#rooms.get(roomName)?.members.get(identity)?.info.clone();
  }

  participants(roomName: string): ParticipantInfo[] {
    const entry = this.#rooms.get(roomName);
    return entry ? [...entry.members.values()].map((m) => m.info.clone()) : [];
  }

  setAttributes(roomName: string, identity: string, attrs: Record<string, string>): void {
    const member = this.#rooms.get(roomName)?.members.get(identity);
    if (!member) return;
    Object.assign(member.info.attributes, attrs);
    member.info.version++;
  }

  /**
   * Removes a participant (participant_left with `reason`). `notify` tells the participant's
   * owner, for removals the participant did not start itself.
   */
  remove(roomName: string, identity: string, reason: DisconnectReason, notify = true): boolean {
    const entry = this.#rooms.get(roomName);
    const member = entry?.members.get(identity);
    if (!entry || !member) return false;
    entry.members.delete(identity);
    entry.info.numParticipants = entry.members.size;
    member.info.state = ParticipantInfo_State.DISCONNECTED;
    member.info.disconnectReason = reason;
    member.info.version++;
    // Closing the participant closes its tracks first, each with track_unpublished
    // (pkg/rtc/room.go RemoveParticipant, participant.go track OnClose).
    for (const track of member.info.tracks) {
      this.#emit("track_unpublished", entry, this.#trackOwner(member.info), undefined, track);
    }
    this.#emit("participant_left", entry, member.info);
    if (notify) member.onRemoved?.(reason);
    this.#scheduleCloseIfEmpty(entry);
    return true;
  }

  /** DeleteRoom: every participant leaves with ROOM_DELETED, then room_finished. */
  delete(name: string): boolean {
    const entry = this.#rooms.get(name);
    if (!entry) return false;
    entry.cancelClose?.();
    entry.cancelClose = null;
    for (const identity of [...entry.members.keys()]) {
      this.remove(name, identity, DisconnectReason.ROOM_DELETED);
    }
    this.#finish(entry, RoomEndReason.ROOM_END_API_DELETE);
    return true;
  }

  list(names: string[] = []): Room[] {
    const rooms = [...this.#rooms.values()].map((e) => e.info.clone());
    return names.length ? rooms.filter((r) => names.includes(r.name)) : rooms;
  }

  /** CreateDispatch: a dispatch with a new random id, in the room (created if need be). */
  addDispatch(roomName: string, init: DispatchInit): AgentDispatch {
    this.ensure(roomName);
    return this.#dispatch(this.#rooms.get(roomName)!, init);
  }

  #dispatch(entry: RoomEntry, init: DispatchInit): AgentDispatch {
    const dispatch = new AgentDispatch({
      ...init,
      id: newId(ID_PREFIX.agentDispatch),
      room: entry.info.name,
      state: new AgentDispatchState({ createdAt: BigInt(Date.now()) * 1_000_000n }),
    });
    entry.dispatches.push(dispatch);
    this.#deps.dispatched(dispatch.clone());
    return dispatch.clone();
  }

  dispatches(roomName: string): AgentDispatch[] {
    return (this.#rooms.get(roomName)?.dispatches ?? []).map((d) => d.clone());
  }

  removeDispatch(roomName: string, id: string): AgentDispatch | undefined {
    const entry = this.#rooms.get(roomName);
    const i = entry?.dispatches.findIndex((d) => d.id === id) ?? -1;
    if (!entry || i < 0) return undefined;
    const [removed] = entry.dispatches.splice(i, 1);
    return removed;
  }

  /** Forgets everything without webhooks (timers are cancelled by the scheduler's owner). */
  clear(): void {
    for (const entry of this.#rooms.values()) entry.cancelClose?.();
    this.#rooms.clear();
  }

  snapshot(): { rooms: JsonValue[]; participants: JsonValue[]; dispatches: JsonValue[] } {
    const entries = [...this.#rooms.values()];
    return {
      rooms: entries.map((e) => e.info.toJson()),
      participants: entries.flatMap((e) =>
        [...e.members.values()].map((m) => ({
          room: e.info.name,
          ...(m.info.toJson() as Record<string, JsonValue>),
        }))
      ),
      dispatches: entries.flatMap((e) => e.dispatches.map((d) => d.toJson())),
    };
  }

  #scheduleCloseIfEmpty(entry: RoomEntry): void {
    if (entry.members.size > 0) return;
    entry.cancelClose?.();
    const timeout = entry.everJoined ? entry.info.departureTimeout : entry.info.emptyTimeout;
    entry.cancelClose = this.#deps.scheduler.after(this.#deps.scaledMs(timeout), () => {
      entry.cancelClose = null;
      if (this.#rooms.get(entry.info.name) === entry && entry.members.size === 0) {
        this.#finish(entry, RoomEndReason.ROOM_END_IDLE_TIMEOUT);
      }
    });
  }

  #finish(entry: RoomEntry, reason: RoomEndReason): void {
    entry.cancelClose?.();
    entry.cancelClose = null;
    this.#rooms.delete(entry.info.name);
    this.#emit("room_finished", entry, undefined, reason);
  }

  #emit(
    event: string,
    entry: RoomEntry,
    participant?: ParticipantInfo,
    roomEndReason?: RoomEndReason,
    track?: TrackInfo,
  ): void {
    this.#deps.emit(
      new WebhookEvent({
        event,
        room: entry.info.clone(),
        participant: participant?.clone(),
        track: track?.clone(),
        roomEndReason,
      }),
    );
  }

  /**
   * The participant publishes an audio track (track_published). livekit/sip does this as soon
   * as the SIP participant has joined, before the INVITE (outbound.go connectToRoom), with the
   * participant's identity as the track name and no source (room.go NewParticipantTrack). The
   * event's participant carries only sid and identity (livekit pkg/telemetry/events.go).
   */
  publishAudio(roomName: string, identity: string): void {
    const entry = this.#rooms.get(roomName);
    const member = entry?.members.get(identity);
    if (!entry || !member) return;
    const track = new TrackInfo({
      sid: newId(ID_PREFIX.track),
      type: TrackType.AUDIO,
      source: TrackSource.UNKNOWN,
      name: identity,
      mimeType: "audio/opus",
    });
    member.info.tracks.push(track);
    member.info.version++;
    this.#emit("track_published", entry, this.#trackOwner(member.info), undefined, track);
  }

  /** Track events name the participant by sid and identity only (pkg/telemetry/events.go). */
  #trackOwner(info: ParticipantInfo): ParticipantInfo {
    return new ParticipantInfo({ sid: info.sid, identity: info.identity });
  }
}
