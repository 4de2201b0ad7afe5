/** livekit.RoomService and livekit.AgentDispatchService over Twirp. */
import type { Agents } from "./agents.ts";
import {
  CreateAgentDispatchRequest,
  CreateRoomRequest,
  DeleteAgentDispatchRequest,
  DeleteRoomRequest,
  DeleteRoomResponse,
  DisconnectReason,
  ListAgentDispatchRequest,
  ListAgentDispatchResponse,
  ListParticipantsRequest,
  ListParticipantsResponse,
  ListRoomsRequest,
  ListRoomsResponse,
  RemoveParticipantResponse,
  RoomParticipantIdentity,
} from "@livekit/protocol";
import { canAdminRoom, canCreateRoom, canListRooms } from "./auth.ts";
import type { Rooms } from "./rooms.ts";
import { PERMISSION_DENIED, PSRPC_PREFIX } from "./sip_service.ts";
import { type CallContext, method, type Service, TwirpError } from "./twirp.ts";

// livekit-server 1.13.5 answers these psrpc errors with the psrpc prefix (see PSRPC_PREFIX).
const ROOM_NOT_FOUND = `${PSRPC_PREFIX}requested room does not exist`;
const PARTICIPANT_NOT_FOUND = `${PSRPC_PREFIX}participant does not exist`;
const DISPATCH_NOT_FOUND = `${PSRPC_PREFIX}dispatch ID not found`;
/**
 * Dispatch calls go to the node holding the room (psrpc, room topic); for a room that does not
 * exist nobody answers, and livekit-server 1.13.5 says so as `unavailable` (503).
 */
const NO_ROOM_NODE = `${PSRPC_PREFIX}no response from servers`;

function deny(): TwirpError {
  return new TwirpError("unauthenticated", PERMISSION_DENIED);
}

function requireRoomAdmin(ctx: CallContext, room: string): void {
  if (!canAdminRoom(ctx.grants, room)) throw deny();
}

export function roomService(rooms: Rooms): Service {
  return {
    methods: {
      CreateRoom: method(CreateRoomRequest, (req, ctx) => {
        if (!canCreateRoom(ctx.grants)) throw deny();
        if (req.name === "") throw new TwirpError("invalid_argument", "no room name");
        // A new room gets a dispatch per requested agent, or the automatic one for agent name ""
        // (Rooms.ensure); an existing room keeps its own.
        return rooms.ensure(req.name, {
          emptyTimeout: req.emptyTimeout,
          departureTimeout: req.departureTimeout,
          maxParticipants: req.maxParticipants,
          metadata: req.metadata,
          agents: req.agents,
        });
      }),

      ListRooms: method(ListRoomsRequest, (req, ctx) => {
        if (!canListRooms(ctx.grants)) throw deny();
        return new ListRoomsResponse({ rooms: rooms.list(req.names) });
      }),

      DeleteRoom: method(DeleteRoomRequest, (req, ctx) => {
        if (!canCreateRoom(ctx.grants)) throw deny();
        if (!rooms.delete(req.room)) throw new TwirpError("not_found", ROOM_NOT_FOUND);
        return new DeleteRoomResponse();
      }),

      ListParticipants: method(ListParticipantsRequest, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        return new ListParticipantsResponse({ participants: rooms.participants(req.room) });
      }),

      GetParticipant: method(RoomParticipantIdentity, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        const p = rooms.participant(req.room, req.identity);
        if (!p) throw new TwirpError("not_found", PARTICIPANT_NOT_FOUND);
        return p;
      }),

      RemoveParticipant: method(RoomParticipantIdentity, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        if (!rooms.remove(req.room, req.identity, DisconnectReason.PARTICIPANT_REMOVED)) {
          throw new TwirpError("not_found", PARTICIPANT_NOT_FOUND);
        }
        return new RemoveParticipantResponse();
      }),
    },
    unimplemented: [
      "MutePublishedTrack",
      "UpdateParticipant",
      "UpdateSubscriptions",
      "SendData",
      "UpdateRoomMetadata",
      "ForwardParticipant",
      "MoveParticipant",
      "PerformRpc",
    ],
  };
}

export function agentDispatchService(rooms: Rooms, agents: Agents): Service {
  return {
    methods: {
      CreateDispatch: method(CreateAgentDispatchRequest, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        // A new random id every time, also for a request repeated with the same
        // X-Livekit-Request-Id: livekit-server does not de-duplicate (pkg/rtc/room.go, guid.New).
        // The room, if new, also gets the automatic dispatch for agent name "" (Rooms.ensure).
        return rooms.addDispatch(req.room, {
          agentName: req.agentName,
          metadata: req.metadata,
          restartPolicy: req.restartPolicy,
          deployment: req.deployment,
          attributes: req.attributes,
        });
      }),

      ListDispatch: method(ListAgentDispatchRequest, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        if (!rooms.has(req.room)) throw new TwirpError("unavailable", NO_ROOM_NODE);
        const all = rooms.dispatches(req.room);
        return new ListAgentDispatchResponse({
          agentDispatches: req.dispatchId ? all.filter((d) => d.id === req.dispatchId) : all,
        });
      }),

      DeleteDispatch: method(DeleteAgentDispatchRequest, (req, ctx) => {
        requireRoomAdmin(ctx, req.room);
        if (!rooms.has(req.room)) throw new TwirpError("unavailable", NO_ROOM_NODE);
        const removed = rooms.removeDispatch(req.room, req.dispatchId);
        if (!removed) throw new TwirpError("not_found", DISPATCH_NOT_FOUND);
        agents.deleted(removed.id);
        return removed;
      }),
    },
  };
}
