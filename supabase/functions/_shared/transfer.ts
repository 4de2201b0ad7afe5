// Transfers: the callee's SIP participant is handed to another number or SIP address with a
// REFER through LiveKit's TransferSIPParticipant. The destination allowlist and the owner's
// do-not-call list apply to phone numbers (a sip: URI whose user part is one included) and are
// checked before LiveKit is called; the result is recorded on the call and as a call event.
import { type CallRequester, requesterLabel, requireRoom } from "./agent_auth.ts";
import type { CallRow } from "./calls.ts";
import { checkDestinationAllowed } from "./phone.ts";
import type { Deps } from "./deps.ts";
import { asUser, type Sql, type Tx } from "./db.ts";
import { ConflictError, NotFoundError, PreconditionError, UpstreamError } from "./errors.ts";
import { describeLiveKitError } from "./livekit.ts";
import { readPhoneNumber } from "./phone.ts";
import { takeRateLimit } from "./rate_limit.ts";

/** The call record with what this module adds to it. */
export type TransferCallRow = CallRow & {
  transferred_to: string | null;
  disposition: string | null;
};

/** The call a request names (by id or room), as its requester may see it; 404 otherwise. */
export async function findCall(
  sql: Sql,
  requester: CallRequester,
  by: { callId?: string; roomName?: string },
): Promise<TransferCallRow> {
  const query = (q: Sql | Tx) =>
    q<TransferCallRow[]>`select * from public.outbound_calls where ${
      by.callId ? q`id = ${by.callId}` : q`room_name = ${by.roomName!}`
    }`;
  const [call] = requester.kind === "user"
    ? await asUser(sql, requester.claims, (tx) => query(tx))
    : await query(sql);
  const what = by.callId ? `Call ${by.callId}` : `No call in room ${by.roomName}`;
  if (!call) throw new NotFoundError(by.callId ? `${what} does not exist.` : `${what}.`);
  if (by.callId && by.roomName && call.room_name !== by.roomName) {
    throw new NotFoundError(`Call ${by.callId} is not the call in room ${by.roomName}.`);
  }
  requireRoom(requester, call.room_name);
  return call;
}

export interface TransferTarget {
  /** What LiveKit is asked to transfer to: a tel: or sip: URI. */
  uri: string;
  /** The phone number it reaches, when it is one (the destination policy and do-not-call apply). */
  number: string | null;
  /** The SIP host of a sip: URI whose user part is not a number (it must be an allowed host). */
  sipHost: string | null;
}

/**
 * "+15551234567" or "tel:+1..." (sent as tel:+E.164), or "sip:user@host" / "sips:...". A SIP
 * user part of digits is a phone number: it must read as E.164 (with or without its "+"), and
 * the URI is sent with that number, so no dialling prefix or separator reaches the carrier. Any
 * other user part is a SIP address, allowed only on an operator's TRANSFER_SIP_HOSTS (checked
 * by transferCall). A string: why it is none of these.
 */
export function parseTransferTarget(raw: string): TransferTarget | string {
  const value = raw.trim();
  const tel = /^tel:(.*)$/i.exec(value)?.[1] ?? (value.startsWith("+") ? value : null);
  if (tel !== null) {
    const n = readPhoneNumber(tel);
    if (!n) return "the number must be E.164 with its country code, digits only (+15551234567)";
    return { uri: `tel:${n.e164}`, number: n.e164, sipHost: null };
  }
  const sip =
    /^(sips?):([^@\s;?<>"]+)@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?(;[^\s<>"?]*)?$/i
      .exec(value);
  if (!sip) return "expected +E.164, tel:+E.164 or sip:user@host";
  const [, scheme, rawUser, host, port = "", params = ""] = sip;
  let user: string;
  try {
    user = decodeURIComponent(rawUser);
  } catch {
    return "the SIP user part is not valid percent-encoding";
  }
  if (/^\+?[0-9][0-9 ().-]*$/.test(user)) {
    const n = readPhoneNumber(user.startsWith("+") ? user : `+${user}`);
    if (!n) return `the SIP user part ${user} is not a phone number in E.164`;
    return {
      uri: `${scheme.toLowerCase()}:${n.e164}@${host}${port}${params}`,
      number: n.e164,
      sipHost: null,
    };
  }
  return { uri: value, number: null, sipHost: host.toLowerCase() };
}

export interface TransferInput {
  transferTo: string;
  playDialtone?: boolean;
}

/** Checks the call and the target, asks LiveKit to transfer, and records the result. */
export async function transferCall(
  deps: Deps,
  call: TransferCallRow,
  target: TransferTarget,
  input: TransferInput,
  requester: CallRequester,
) {
  const { config, sql, log } = deps;
  const lk = deps.liveKit;
  if (call.status !== "in_progress") {
    throw new ConflictError(
      `Call ${call.id} is not in progress (${call.status}); only an answered, live call can be transferred.`,
      { status: call.status },
    );
  }
  if (call.transferred_to) {
    throw new ConflictError(`Call ${call.id} was already transferred to ${call.transferred_to}.`, {
      transferredTo: call.transferred_to,
    });
  }
  if (target.sipHost !== null && !config.transferSipHosts.includes(target.sipHost)) {
    throw new PreconditionError(
      "destination_not_allowed",
      `Cannot transfer to ${target.uri}: a SIP address that is not a phone number may only be on a host the operator allows (TRANSFER_SIP_HOSTS${
        config.transferSipHosts.length ? `: ${config.transferSipHosts.join(", ")}` : " is empty"
      }).`,
      { allowedSipHosts: config.transferSipHosts },
    );
  }
  if (target.number) {
    let narrow: string[] | undefined;
    if (call.campaign_id) {
      const [c] = await sql<{ allowed_countries: string[] }[]>`
        select allowed_countries from public.campaigns where id = ${call.campaign_id}`;
      narrow = c?.allowed_countries;
    }
    checkDestinationAllowed(config, target.number, narrow);
    const [{ dnc }] = await sql<{ dnc: boolean }[]>`
      select exists (select from public.do_not_call where owner_id = ${call.owner_id} and e164 = ${target.number}) as dnc`;
    if (dnc) {
      throw new PreconditionError(
        "do_not_call",
        `${target.number} is on the do-not-call list; a call cannot be transferred to it.`,
      );
    }
  }
  if (requester.kind !== "service") {
    const per = config.liveKitRequestsPerMinutePerUser;
    await takeRateLimit(deps, call.owner_id, "livekit", per, "trunk listings and transfers");
  }
  const by = requesterLabel(requester);
  const l = log.child({ callId: call.id, roomName: call.room_name });
  try {
    await lk.sip.transferSipParticipant(call.room_name, call.participant_identity, target.uri, {
      playDialtone: input.playDialtone ?? false,
    });
  } catch (e) {
    const f = describeLiveKitError(e);
    await sql`select internal.record_transfer(${call.id}, ${target.uri}, ${by}, false, ${
      sql.json({
        code: f.code,
        status: f.status,
        message: f.message,
        sipStatusCode: f.sipStatusCode,
        sipStatus: f.sipStatus,
      } as never)
    })`;
    l.warn("transfer failed", {
      upstreamCode: f.code,
      upstreamStatus: f.status,
      sipStatusCode: f.sipStatusCode,
    });
    // The call ended or another transfer is under way: the requester's view is out of date.
    if (
      (f.sipStatusCode === null && f.code === "failed_precondition") || f.code === "not_found" ||
      /already being transferred/.test(f.message)
    ) {
      throw new ConflictError(`Call ${call.id} cannot be transferred now: ${f.message}.`, {
        upstream: "livekit",
        code: f.code,
      });
    }
    throw new UpstreamError(
      "livekit",
      `Cannot transfer call ${call.id} to ${target.uri}: ${
        f.sipStatusCode
          ? `the carrier answered SIP ${f.sipStatusCode} ${f.sipStatus ?? ""}`.trim()
          : f.message
      } (${f.code})`,
      f.code,
      f.status,
      { sipStatusCode: f.sipStatusCode, sipStatus: f.sipStatus, callId: call.id },
    );
  }
  await sql`select internal.record_transfer(${call.id}, ${target.uri}, ${by}, true, null)`;
  l.info("call transferred", { transferTo: target.uri, by });
  const [row] = await sql<
    TransferCallRow[]
  >`select * from public.outbound_calls where id = ${call.id}`;
  return { call: { id: row.id, status: row.status, transferredTo: row.transferred_to } };
}
