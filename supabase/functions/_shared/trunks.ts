// The one place that talks LiveKit's SIP admin API. Every step looks up what exists before
// creating, so a retried, concurrent or half-finished run converges on exactly one inbound
// trunk, one dispatch rule and one outbound trunk per assigned number.
import {
  ListUpdate,
  RoomAgentDispatch,
  RoomConfiguration,
  SIPOutboundTrunkUpdate,
  SIPTransport,
} from "@livekit/protocol";
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

/** Everything this project sets on an outbound trunk. */
export interface OutboundSpec {
  name: string;
  address: string;
  numbers: string[];
  transport: SIPTransport;
  destinationCountry: string;
  authUsername: string;
  authPassword: string;
  metadata: string;
}

/**
 * A keyed fingerprint of the password, kept in the trunk's metadata: where LiveKit does not
 * return a trunk's password, it still tells whether the trunk carries the one we want.
 */
export async function passwordFingerprint(key: string, password: string): Promise<string> {
  const k = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(`sip-auth:${password}`));
  return Array.from(new Uint8Array(mac).slice(0, 16), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

export function outboundSpec(
  o: TrunkOwner,
  creds: SipCredentials,
  fingerprint: string | null,
): OutboundSpec {
  return {
    name: trunkNames(o).outbound,
    address: creds.address,
    numbers: [o.e164],
    transport: TRANSPORT[creds.transport],
    destinationCountry: creds.destinationCountry ?? "",
    authUsername: creds.username ?? "",
    authPassword: creds.password ?? "",
    metadata: JSON.stringify({
      ...trunkMetadata(o),
      ...(fingerprint ? { authFingerprint: fingerprint } : {}),
    }),
  };
}

function sameJson(a: string, b: string): boolean {
  const canonical = (raw: string): string => {
    try {
      const sort = (v: unknown): unknown =>
        v && typeof v === "object" && !Array.isArray(v)
          ? Object.fromEntries(
            Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
          : v;
      return JSON.stringify(sort(JSON.parse(raw)));
    } catch {
      return raw;
    }
  };
  return canonical(a) === canonical(b);
}

export type OutboundField = keyof OutboundSpec;

/**
 * What differs between a trunk and what it should be, as an update-fields request (null when
 * nothing does). The password is compared directly where LiveKit returns it; where it comes
 * back empty, the fingerprint in the metadata decides.
 */
export function outboundChanges(
  current: Pick<SIPOutboundTrunkInfo, OutboundField>,
  want: OutboundSpec,
): { fields: OutboundField[]; update: SIPOutboundTrunkUpdate } | null {
  const fields: OutboundField[] = [];
  if (current.name !== want.name) fields.push("name");
  if (current.address !== want.address) fields.push("address");
  const sorted = (l: string[]) => [...l].sort().join(",");
  if (sorted(current.numbers) !== sorted(want.numbers)) fields.push("numbers");
  if (current.transport !== want.transport) fields.push("transport");
  if ((current.destinationCountry ?? "") !== want.destinationCountry) {
    fields.push("destinationCountry");
  }
  if (current.authUsername !== want.authUsername) fields.push("authUsername");
  if (current.authPassword !== "" && current.authPassword !== want.authPassword) {
    fields.push("authPassword");
  }
  if (!sameJson(current.metadata, want.metadata)) {
    fields.push("metadata");
    // The fingerprint changed (or was never written): the password may have too.
    if (!fields.includes("authPassword")) fields.push("authPassword");
  }
  if (fields.length === 0) return null;
  const update = new SIPOutboundTrunkUpdate();
  for (const f of fields) {
    if (f === "numbers") update.numbers = new ListUpdate({ set: want.numbers });
    else if (f === "transport") update.transport = want.transport;
    else update[f] = want[f];
  }
  return { fields, update };
}

/**
 * The number's one outbound trunk, made to match `creds`: created when missing, updated in
 * place (UpdateSIPOutboundTrunk, so its id and every reference to it stay) when any field
 * we set differs. Duplicates (a half-finished earlier run) are removed.
 */
export async function ensureOutboundTrunk(
  lk: LiveKit,
  o: TrunkOwner,
  creds: SipCredentials,
  existing: Existing,
  opts: { fingerprintKey: string; preferId?: string | null },
): Promise<{ trunk: SIPOutboundTrunkInfo; updated: OutboundField[] }> {
  const fingerprint = creds.password
    ? await passwordFingerprint(opts.fingerprintKey, creds.password)
    : null;
  const want = outboundSpec(o, creds, fingerprint);
  const found = mine(existing.outbound, o);
  if (found.length === 0) {
    const trunk = await lk.sip.createSipOutboundTrunk(want.name, want.address, want.numbers, {
      transport: want.transport,
      destinationCountry: creds.destinationCountry ?? undefined,
      authUsername: creds.username ?? undefined,
      authPassword: creds.password ?? undefined,
      metadata: want.metadata,
    }).catch((e) => {
      throw liveKitError(`create outbound trunk for ${o.e164}`, e);
    });
    return { trunk, updated: [] };
  }
  const keep = found.find((t) => t.sipTrunkId === opts.preferId) ??
    found.find((t) => outboundChanges(t, want) === null) ?? found[0];
  for (const t of found) {
    if (t === keep) continue;
    await lk.sip.deleteSipTrunk(t.sipTrunkId).catch((e) => {
      if (e?.code !== "not_found") {
        throw liveKitError(`delete duplicate outbound trunk ${t.sipTrunkId} of ${o.e164}`, e);
      }
    });
  }
  const changes = outboundChanges(keep, want);
  if (!changes) return { trunk: keep, updated: [] };
  const trunk = await lk.sip.updateSipOutboundTrunkFields(keep.sipTrunkId, changes.update)
    .catch((e) => {
      throw liveKitError(`update outbound trunk ${keep.sipTrunkId} of ${o.e164}`, e);
    });
  return { trunk, updated: changes.fields };
}
