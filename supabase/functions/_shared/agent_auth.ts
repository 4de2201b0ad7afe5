// Requesters of the functions an agent uses during its call (call-report, transfer-call): the
// service key, a LiveKit access token for the call's room (the agent already holds the
// project's LiveKit key and secret and mints one with livekit-server-sdk's AccessToken), or,
// where allowed, a user's session.
import * as jose from "jose";
import { TokenVerifier } from "livekit-server-sdk";
import { authenticate, bearer, type Requester } from "./auth.ts";
import { type Config, requireLiveKit } from "./config.ts";
import type { Deps } from "./deps.ts";
import { AuthError, ForbiddenError, ValidationError } from "./errors.ts";

export type CallRequester =
  | Requester
  | { kind: "agent"; room: string; identity: string | null; admin: boolean; join: boolean };

interface VideoClaims {
  room?: unknown;
  roomAdmin?: unknown;
  roomJoin?: unknown;
}

/** The grants of a token signed with the project's LiveKit key and secret, or null if it is not one. */
export async function verifyRoomToken(
  config: Config,
  token: string,
): Promise<Extract<CallRequester, { kind: "agent" }> | null> {
  const { apiKey, apiSecret } = requireLiveKit(config);
  let claims: jose.JWTPayload & { video?: VideoClaims };
  try {
    claims = await new TokenVerifier(apiKey, apiSecret).verify(token) as typeof claims;
  } catch {
    return null;
  }
  const video = claims.video ?? {};
  return {
    kind: "agent",
    room: typeof video.room === "string" ? video.room : "",
    identity: typeof claims.sub === "string" ? claims.sub : null,
    admin: video.roomAdmin === true,
    join: video.roomJoin === true,
  };
}

/** Does this token's issuer claim to be the project's LiveKit key (so a failure is a forged one)? */
function claimsLiveKitIssuer(config: Config, token: string): boolean {
  try {
    return jose.decodeJwt(token).iss === config.livekit?.apiKey;
  } catch {
    return false;
  }
}

/**
 * Who is calling: the service key, a LiveKit room token (checked against the call's room by
 * `requireRoom`), or a user session when `users` allows it. Anything unproven is a 401.
 */
export async function authenticateCallRequester(
  req: Request,
  deps: Pick<Deps, "config" | "sql">,
  opts: { users: boolean },
): Promise<CallRequester> {
  const config = deps.config;
  const token = bearer(req);
  if (!token) {
    throw new AuthError(
      "Missing Authorization: Bearer <token>: a LiveKit access token for the call's room or the service key.",
    );
  }
  if (config.livekit) {
    const agent = await verifyRoomToken(config, token);
    if (agent) return agent;
    if (claimsLiveKitIssuer(config, token)) {
      throw new AuthError("The LiveKit access token could not be verified (signature or expiry).");
    }
  }
  const requester = await authenticate(req, deps).catch((e) => {
    if (e instanceof AuthError && !opts.users) {
      throw new AuthError(
        "The token is neither a LiveKit access token signed with this project's key nor the service key.",
      );
    }
    throw e;
  });
  if (requester.kind === "user" && !opts.users) {
    throw new ForbiddenError(
      "This function takes the agent's LiveKit access token for its room or the service key, not a user session.",
    );
  }
  return requester;
}

/** A LiveKit token may act only on its own room: `room` = the call's, with roomAdmin or roomJoin. */
export function requireRoom(requester: CallRequester, roomName: string): void {
  if (requester.kind !== "agent") return;
  if (!requester.admin && !requester.join) {
    throw new ForbiddenError(
      "The LiveKit token grants neither roomJoin nor roomAdmin: give it roomJoin for the call's room.",
    );
  }
  if (requester.room !== roomName) {
    throw new ForbiddenError(
      requester.room
        ? `The LiveKit token is for room ${requester.room}; it may act only on the call in that room.`
        : "The LiveKit token names no room; it may act only on the call in its own room.",
    );
  }
}

/** How the requester is named on what it recorded. */
/**
 * The call a request names: its callId, or its roomName (an agent's own room when it gives
 * neither). A room token may act only on its own room: refused before anything is looked up.
 */
export function namedCall(requester: CallRequester, body: { callId?: string; roomName?: string }) {
  const roomName = body.roomName ??
    (requester.kind === "agent" && !body.callId ? requester.room : undefined);
  if (!body.callId && !roomName) {
    throw new ValidationError("Name the call: give callId or roomName.", {
      fields: { callId: "give callId or roomName" },
    });
  }
  if (roomName) requireRoom(requester, roomName);
  return { callId: body.callId, roomName };
}

export function requesterLabel(requester: CallRequester): string {
  switch (requester.kind) {
    case "agent":
      return `agent${requester.identity ? `:${requester.identity}` : ""}`;
    case "user":
      return `user:${requester.userId}`;
    case "service":
      return "service";
  }
}
