// The one place that talks LiveKit's SIP admin API. Every step looks up what exists before
// creating, so a retried, concurrent or half-finished run converges on exactly one inbound
// trunk, one dispatch rule and one outbound trunk per assigned number.
import { RoomAgentDispatch, RoomConfiguration, SIPTransport } from "@livekit/protocol";
import type {
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  SIPOutboundTrunkInfo,
} from "livekit-server-sdk";
import type { LiveKit } from "./livekit.ts";
import { liveKitError } from "./livekit.ts";

/** Marks trunks and rules this project manages (others on the project are left alone). */
export const MANAGED_BY = "voice-lines";

export interface TrunkOwner {
  phoneNumberId: string;
  e164: string;
  assistantId: string;
  agentName: string;
  ownerId: string;
}

export interface SipCredentials {
  address: string;
  username: string | null;
  password: string | null;
  transport: "auto" | "udp" | "tcp" | "tls";
  destinationCountry: string | null;
}

export interface TrunkMetadata {
  managedBy: typeof MANAGED_BY;
  phoneNumberId: string;
  assistantId: string;
  e164: string;
}

export function trunkMetadata(o: TrunkOwner): TrunkMetadata {
  return {
    managedBy: MANAGED_BY,
    phoneNumberId: o.phoneNumberId,
    assistantId: o.assistantId,
    e164: o.e164,
  };
}

export function parseMetadata(raw: string | undefined): TrunkMetadata | null {
  try {
    const m = JSON.parse(raw ?? "");
    return m?.managedBy === MANAGED_BY && typeof m.assistantId === "string" ? m : null;
  } catch {
    return null;
  }
}

const digits = (e164: string) => e164.replace(/\D/g, "");

/** Names are stable per number and assistant, so a reader of the LiveKit console can tell them apart. */
export function trunkNames(o: Pick<TrunkOwner, "e164" | "assistantId">) {
  const tag = `${digits(o.e164)}-${o.assistantId.slice(0, 8)}`;
  return { inbound: `in-${tag}`, outbound: `out-${tag}`, rule: `rule-${tag}` };
}

/** Rooms of inbound calls start with the assistant's prefix, one room per call. */
export function roomPrefix(assistantId: string): string {
  return `call-${assistantId.slice(0, 8)}-`;
}

const TRANSPORT: Record<SipCredentials["transport"], SIPTransport> = {
  auto: SIPTransport.SIP_TRANSPORT_AUTO,
  udp: SIPTransport.SIP_TRANSPORT_UDP,
  tcp: SIPTransport.SIP_TRANSPORT_TCP,
  tls: SIPTransport.SIP_TRANSPORT_TLS,
};

/** Managed trunks and rules currently holding this number. */
export interface Existing {
  inbound: SIPInboundTrunkInfo[];
  outbound: SIPOutboundTrunkInfo[];
  rules: SIPDispatchRuleInfo[];
}

export async function findExisting(lk: LiveKit, e164: string): Promise<Existing> {
  const [inbound, outbound] = await Promise.all([
    lk.sip.listSipInboundTrunk({ numbers: [e164] }).catch((e) => {
      throw liveKitError(`list inbound trunks for ${e164}`, e);
    }),
    lk.sip.listSipOutboundTrunk({ numbers: [e164] }).catch((e) => {
      throw liveKitError(`list outbound trunks for ${e164}`, e);
    }),
  ]);
  const managedIn = inbound.filter((t) => parseMetadata(t.metadata));
  const rules = managedIn.length === 0 ? [] : await lk.sip
    .listSipDispatchRule({ trunkIds: managedIn.map((t) => t.sipTrunkId) })
    .catch((e) => {
      throw liveKitError(`list dispatch rules for ${e164}`, e);
    });
  return {
    inbound: managedIn,
    outbound: outbound.filter((t) => parseMetadata(t.metadata)),
    rules: rules.filter((r) => parseMetadata(r.metadata)),
  };
}

/**
 * Deletes managed rules and trunks of this number that do not belong to `keep` (all of
 * them when `keep` is null). Rules go first, then inbound trunks, so that the number is
 * free before a new inbound trunk claims it.
 */
export async function removeStale(
  lk: LiveKit,
  e164: string,
  existing: Existing,
  keep: TrunkOwner | null,
) {
  const stale = <T extends { metadata: string }>(items: T[]) =>
    items.filter((i) => {
      const m = parseMetadata(i.metadata);
      return !keep || !m || m.assistantId !== keep.assistantId ||
        m.phoneNumberId !== keep.phoneNumberId;
    });
  const removed = { rules: 0, inbound: 0, outbound: 0 };
  for (const r of stale(existing.rules)) {
    await lk.sip.deleteSipDispatchRule(r.sipDispatchRuleId).catch((e) => {
      if (e?.code !== "not_found") {
        throw liveKitError(`delete dispatch rule ${r.sipDispatchRuleId} of ${e164}`, e);
      }
    });
    removed.rules++;
  }
  const deleteTrunk = (id: string) =>
    lk.sip.deleteSipTrunk(id).catch((e) => {
      if (e?.code !== "not_found") throw liveKitError(`delete trunk ${id} of ${e164}`, e);
    });
  for (const t of stale(existing.inbound)) {
    await deleteTrunk(t.sipTrunkId);
    removed.inbound++;
  }
  for (const t of stale(existing.outbound)) {
    await deleteTrunk(t.sipTrunkId);
    removed.outbound++;
  }
  return removed;
}

function mine<T extends { metadata: string }>(items: T[], o: TrunkOwner): T[] {
  return items.filter((i) => {
    const m = parseMetadata(i.metadata);
    return m?.assistantId === o.assistantId && m.phoneNumberId === o.phoneNumberId;
  });
}

export async function ensureInboundTrunk(lk: LiveKit, o: TrunkOwner, existing: Existing) {
  const found = mine(existing.inbound, o);
  if (found.length > 0) return found[0];
  return await lk.sip.createSipInboundTrunk(trunkNames(o).inbound, [o.e164], {
    metadata: JSON.stringify(trunkMetadata(o)),
  }).catch((e) => {
    throw liveKitError(`create inbound trunk for ${o.e164}`, e);
  });
}

export async function ensureDispatchRule(
  lk: LiveKit,
  o: TrunkOwner,
  inboundTrunkId: string,
  existing: Existing,
) {
  const found = mine(existing.rules, o).filter((r) => r.trunkIds.includes(inboundTrunkId));
  if (found.length > 0) return found[0];
  const metadata = JSON.stringify({ ...trunkMetadata(o), direction: "inbound" });
  return await lk.sip.createSipDispatchRule(
    { type: "individual", roomPrefix: roomPrefix(o.assistantId) },
    {
      name: trunkNames(o).rule,
      metadata: JSON.stringify(trunkMetadata(o)),
      trunkIds: [inboundTrunkId],
      roomConfig: new RoomConfiguration({
        agents: [new RoomAgentDispatch({ agentName: o.agentName, metadata })],
      }),
    },
  ).catch((e) => {
    throw liveKitError(`create dispatch rule for ${o.e164}`, e);
  });
}

export async function ensureOutboundTrunk(
  lk: LiveKit,
  o: TrunkOwner,
  creds: SipCredentials,
  existing: Existing,
) {
  const found = mine(existing.outbound, o);
  const current = found.find((t) =>
    t.address === creds.address && t.authUsername === (creds.username ?? "")
  );
  if (current) return current;
  // Address or credentials changed: replace the trunk rather than leave a stale one.
  for (const t of found) {
    await lk.sip.deleteSipTrunk(t.sipTrunkId).catch((e) => {
      throw liveKitError(`replace outbound trunk ${t.sipTrunkId} of ${o.e164}`, e);
    });
  }
  return await lk.sip.createSipOutboundTrunk(trunkNames(o).outbound, creds.address, [o.e164], {
    transport: TRANSPORT[creds.transport],
    destinationCountry: creds.destinationCountry ?? undefined,
    authUsername: creds.username ?? undefined,
    authPassword: creds.password ?? undefined,
    metadata: JSON.stringify(trunkMetadata(o)),
  }).catch((e) => {
    throw liveKitError(`create outbound trunk for ${o.e164}`, e);
  });
}
