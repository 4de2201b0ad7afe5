/**
 * LiveKit's SIP validation rules (livekit/protocol livekit/sip.go, sip/sip.go and
 * livekit/sip_validation.go), kept pure so they can be reasoned about and tested alone.
 * Messages match the Go sources so callers see the same text as against real LiveKit.
 */
import {
  CreateSIPParticipantRequest,
  ListUpdate,
  SIPDispatchRuleInfo,
  SIPDispatchRuleUpdate,
  SIPInboundTrunkInfo,
  SIPInboundTrunkUpdate,
  SIPMediaConfig,
  SIPMediaEncryption,
  SIPOutboundConfig,
  SIPOutboundTrunkInfo,
  SIPOutboundTrunkUpdate,
  TransferSIPParticipantRequest,
} from "@livekit/protocol";
import { TwirpCode, TwirpError } from "./twirp.ts";

/** A validation failure; `code` is set when the Go error carries its own code (a psrpc error). */
export interface Problem {
  msg: string;
  code?: TwirpCode;
}

type Duration = NonNullable<SIPMediaConfig["mediaTimeout"]>;

export function durationSeconds(d: Duration | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

/** Strips spaces, dashes and parentheses and adds a leading "+", for things that look like numbers. */
export function normalizeNumber(num: string): string {
  if (num === "") return "";
  if (!/^\+?[\d\- ()]+$/.test(num)) return num;
  const n = num.replace(/[ \-()]/g, "");
  return n.startsWith("+") ? n : "+" + n;
}

/** Go's %q for the plain strings used in these messages. */
function q(s: string): string {
  return JSON.stringify(s);
}

// ---------------------------------------------------------------------------------------------
// SIP headers

const TOKEN_CHARS = /^[0-9A-Za-z\-.!%*_+`'~]+$/;
const FORBIDDEN_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "accept-language",
  "allow",
  "allow-events",
  "call-id",
  "contact",
  "content-encoding",
  "content-length",
  "content-type",
  "cseq",
  "event",
  "expires",
  "from",
  "max-forwards",
  "record-route",
  "refer-to",
  "reply-to",
  "k",
  "l",
  "m",
  "o",
  "r",
  "t",
  "u",
  "v",
]);

/** protocol livekit/sip_validation.go allowedCharacters.Validate on token characters. */
function tokenCharProblem(value: string): string | null {
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (c >= 128) return `char ${c} out of range, consider explicilty adding utf8 characters`;
    if (!TOKEN_CHARS.test(ch)) return `char ${c} not allowed`;
  }
  return null;
}

function headerNameProblem(name: string, restrictNames: boolean): string | null {
  if (name === "") return "header name cannot be empty";
  if (name.length > 255) return "header name too long (max 255 characters)";
  const chars = tokenCharProblem(name);
  if (chars) return `header name ${name} contains invalid characters: ${chars}`;
  if (restrictNames && FORBIDDEN_HEADERS.has(name.toLowerCase())) {
    return `header name ${name} not supported`;
  }
  return null;
}

function headersProblem(headers: Record<string, string>): string | null {
  for (const [name, value] of Object.entries(headers)) {
    const p = headerNameProblem(name, true);
    if (p) return `invalid header name: ${p}`;
    if (value.length > 1024) {
      return `invalid header value for ${name}: header ${name}: value too long (max 1024 characters)`;
    }
    // Printable ASCII plus tab; characters beyond ASCII are allowed.
    for (const ch of value) {
      const c = ch.codePointAt(0)!;
      if (c < 128 && c !== 0x09 && (c < 0x20 || c > 0x7e)) {
        return `invalid header value for ${name}: header ${name}: value: char ${c} not allowed`;
      }
    }
  }
  return null;
}

function headerMapProblem(names: Iterable<string>): string | null {
  for (const name of names) {
    const p = headerNameProblem(name, false);
    if (p) return `invalid header name: ${p}`;
  }
  return null;
}

function mediaProblem(media: SIPMediaConfig | undefined): string | null {
  if (!media) return null;
  for (const c of media.codecs) {
    if (c.name === "") return "missing codec name";
    if (/[ \t\n\r]/.test(c.name)) return "invalid codec name";
    if (c.name.includes("/")) return "codec name must not contain '/'";
  }
  if (media.mediaTimeout) {
    const s = durationSeconds(media.mediaTimeout);
    if (s < 0) return "media_timeout must not be negative";
    if (s > 600) return "media_timeout must not exceed 10m0s";
  }
  return null;
}

function hostnameProblem(value: string, fieldName: string): string | null {
  if (value.includes("transport=")) return `${fieldName} should not contain transport parameter`;
  if (/[@;]/.test(value) || value.startsWith("sip:") || value.startsWith("sips:")) {
    return `${fieldName} should be a hostname or IP, not SIP URI`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Trunks

export function inboundTrunkProblem(t: SIPInboundTrunkInfo): Problem | null {
  const hasAuth = t.authUsername !== "" || t.authPassword !== "";
  if (!hasAuth && t.allowedAddresses.length === 0 && t.numbers.length === 0) {
    return {
      msg:
        "for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers",
      code: "invalid_argument",
    };
  }
  const msg = mediaProblem(t.media) ?? headersProblem(t.headers) ??
    headerMapProblem(Object.values(t.attributesToHeaders)) ??
    headerMapProblem(Object.keys(t.headersToAttributes));
  return msg ? { msg } : null;
}

export function outboundTrunkProblem(t: SIPOutboundTrunkInfo): Problem | null {
  if (t.numbers.length === 0) return { msg: "no trunk numbers specified" };
  if (t.address === "") return { msg: "no outbound address specified" };
  const msg = hostnameProblem(t.address, "trunk address") ??
    hostnameProblem(t.fromHost, "from_host") ??
    headersProblem(t.headers) ?? headerMapProblem(Object.values(t.attributesToHeaders)) ??
    headerMapProblem(Object.keys(t.headersToAttributes)) ?? mediaProblem(t.media);
  return msg ? { msg } : null;
}

export function listUpdateProblem(u: ListUpdate | undefined): string | null {
  if (!u) return null;
  const change = u.set.length + u.add.length + u.remove.length > 0;
  if (!u.clear && !change) return "unsupported list update operation";
  if (u.clear && change) return "cannot clear and change the list at the same time";
  if (u.set.length > 0 && u.add.length + u.remove.length > 0) {
    return "cannot set and change the list at the same time";
  }
  if ([...u.set, ...u.add, ...u.remove].some((v) => v === "")) return "empty element in the list";
  return null;
}

export function applyListUpdate(list: string[], u: ListUpdate | undefined): string[] {
  if (!u) return list;
  if (u.clear) return [];
  if (u.set.length > 0) return [...u.set];
  const out = list.filter((v) => !u.remove.includes(v));
  for (const v of u.add) if (!out.includes(v)) out.push(v);
  return out;
}

export function inboundUpdateProblem(u: SIPInboundTrunkUpdate): string | null {
  return listUpdateProblem(u.numbers) ?? listUpdateProblem(u.allowedAddresses) ??
    listUpdateProblem(u.allowedNumbers) ?? mediaProblem(u.media);
}

export function outboundUpdateProblem(u: SIPOutboundTrunkUpdate): string | null {
  return listUpdateProblem(u.numbers) ?? mediaProblem(u.media);
}

/**
 * What every update-fields request does to `media` (protocol livekit/sip.go updateMediaConfig
 * and SIPMediaConfig.UpgradeWith): the result always carries a media config, empty when it had
 * none, holding the legacy mediaEncryption unless that is DISABLE, and mediaEncryption mirrors
 * it. livekit-server 1.13.5 answers an updated trunk or rule with `media: {}` where the created
 * one had none.
 */
function upgradeMedia(t: { media?: SIPMediaConfig; mediaEncryption: SIPMediaEncryption }): void {
  const media = t.media ?? new SIPMediaConfig();
  if (
    media.encryption === undefined &&
    t.mediaEncryption !== SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE
  ) {
    media.encryption = t.mediaEncryption;
  }
  t.media = media;
  t.mediaEncryption = media.encryption ?? SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE;
}

/** Applies an "update fields" request to a copy of the trunk, then validates the result. */
export function applyInboundUpdate(
  info: SIPInboundTrunkInfo,
  u: SIPInboundTrunkUpdate,
): { trunk: SIPInboundTrunkInfo } | { problem: Problem } {
  const t = info.clone();
  t.numbers = applyListUpdate(t.numbers, u.numbers);
  t.allowedAddresses = applyListUpdate(t.allowedAddresses, u.allowedAddresses);
  t.allowedNumbers = applyListUpdate(t.allowedNumbers, u.allowedNumbers);
  if (u.authUsername !== undefined) t.authUsername = u.authUsername;
  if (u.authPassword !== undefined) t.authPassword = u.authPassword;
  if (u.authRealm !== undefined) t.authRealm = u.authRealm;
  if (u.name !== undefined) t.name = u.name;
  if (u.metadata !== undefined) t.metadata = u.metadata;
  if (u.media !== undefined) t.media = u.media;
  if (u.mediaEncryption !== undefined) t.mediaEncryption = u.mediaEncryption;
  upgradeMedia(t);
  const problem = inboundTrunkProblem(t);
  return problem ? { problem } : { trunk: t };
}

export function applyOutboundUpdate(
  info: SIPOutboundTrunkInfo,
  u: SIPOutboundTrunkUpdate,
): { trunk: SIPOutboundTrunkInfo } | { problem: Problem } {
  const t = info.clone();
  if (u.address !== undefined) t.address = u.address;
  if (u.transport !== undefined) t.transport = u.transport;
  if (u.destinationCountry !== undefined) t.destinationCountry = u.destinationCountry;
  t.numbers = applyListUpdate(t.numbers, u.numbers);
  if (u.authUsername !== undefined) t.authUsername = u.authUsername;
  if (u.authPassword !== undefined) t.authPassword = u.authPassword;
  if (u.name !== undefined) t.name = u.name;
  if (u.metadata !== undefined) t.metadata = u.metadata;
  if (u.fromHost !== undefined) t.fromHost = u.fromHost;
  if (u.media !== undefined) t.media = u.media;
  if (u.mediaEncryption !== undefined) t.mediaEncryption = u.mediaEncryption;
  upgradeMedia(t);
  const problem = outboundTrunkProblem(t);
  return problem ? { problem } : { trunk: t };
}

function printID(id: string): string {
  return id === "" ? "<new>" : id;
}

function printNumbers(numbers: string[]): string {
  return numbers.length === 0 ? "<any>" : `[${numbers.map(q).join(" ")}]`;
}

/**
 * LiveKit's inbound trunk conflict check (sip.ValidateTrunksIter): two trunks that share a
 * (normalised) number, or both have none, conflict unless their AllowedNumbers tell them apart.
 * `trunks` is in store order with a trunk being created last (its id empty).
 */
export function inboundTrunkConflict(trunks: SIPInboundTrunkInfo[]): TwirpError | null {
  const byNumber = new Map<string, Map<string, SIPInboundTrunkInfo>>();
  for (const t of trunks) {
    const keys = t.numbers.length === 0 ? [""] : [...new Set(t.numbers.map(normalizeNumber))];
    for (const key of keys) {
      let byInbound = byNumber.get(key);
      if (!byInbound) byNumber.set(key, byInbound = new Map());
      const err = inboundConflictFor(byInbound, t);
      if (err) return err;
    }
  }
  return null;
}

function inboundConflictFor(
  byInbound: Map<string, SIPInboundTrunkInfo>,
  t: SIPInboundTrunkInfo,
): TwirpError | null {
  if (t.allowedNumbers.length === 0) {
    const t2 = byInbound.get("");
    if (t2 && t2.sipTrunkId !== t.sipTrunkId) {
      return new TwirpError(
        "invalid_argument",
        `Conflicting inbound SIP Trunks: ${q(printID(t.sipTrunkId))} and ${
          q(printID(t2.sipTrunkId))
        }, ` +
          `using the same number(s) ${printNumbers(t.numbers)} without AllowedNumbers set`,
      );
    }
    byInbound.set("", t);
    return null;
  }
  const seen = new Set<string>();
  for (const num of t.allowedNumbers) {
    const key = normalizeNumber(num);
    if (seen.has(key)) continue;
    seen.add(key);
    const t2 = byInbound.get(key);
    if (t2 && t2.sipTrunkId !== t.sipTrunkId) {
      return new TwirpError(
        "invalid_argument",
        `Conflicting inbound SIP Trunks: ${q(printID(t.sipTrunkId))} and ${
          q(printID(t2.sipTrunkId))
        }, ` +
          `using the same number(s) ${printNumbers(t.numbers)} and AllowedNumber ${q(num)}`,
      );
    }
    byInbound.set(key, t);
  }
  return null;
}

/** ListSIPInboundTrunkRequest.Filter on the numbers field (ids are filtered separately). */
export function inboundMatchesNumbers(t: SIPInboundTrunkInfo, numbers: string[]): boolean {
  if (numbers.length === 0 || t.numbers.length === 0) return true;
  const wanted = new Set(numbers.map(normalizeNumber));
  return t.numbers.some((n) => numbers.includes(n) || wanted.has(normalizeNumber(n)));
}

/** ListSIPOutboundTrunkRequest.Filter on numbers: exact match only, as in LiveKit. */
export function outboundMatchesNumbers(t: SIPOutboundTrunkInfo, numbers: string[]): boolean {
  if (numbers.length === 0 || t.numbers.length === 0) return true;
  return t.numbers.some((n) => numbers.includes(n));
}

// ---------------------------------------------------------------------------------------------
// Dispatch rules

export function dispatchRuleProblem(r: SIPDispatchRuleInfo): string | null {
  if (!r.rule) return "missing rule";
  return mediaProblem(r.media);
}

export function dispatchRuleUpdateProblem(u: SIPDispatchRuleUpdate): string | null {
  return listUpdateProblem(u.trunkIds) ?? mediaProblem(u.media);
}

export function applyDispatchRuleUpdate(
  info: SIPDispatchRuleInfo,
  u: SIPDispatchRuleUpdate,
): { rule: SIPDispatchRuleInfo } | { problem: string } {
  const r = info.clone();
  r.trunkIds = applyListUpdate(r.trunkIds, u.trunkIds);
  if (u.rule !== undefined) r.rule = u.rule;
  if (u.name !== undefined) r.name = u.name;
  if (u.metadata !== undefined) r.metadata = u.metadata;
  for (const [k, v] of Object.entries(u.attributes)) {
    if (v !== "") r.attributes[k] = v;
    else delete r.attributes[k];
  }
  if (u.media !== undefined) r.media = u.media;
  if (u.mediaEncryption !== undefined) r.mediaEncryption = u.mediaEncryption;
  upgradeMedia(r);
  const problem = dispatchRuleProblem(r);
  return problem ? { problem } : { rule: r };
}

function pinOf(r: SIPDispatchRuleInfo): string | TwirpError {
  const rule = r.rule?.rule;
  if (!rule || rule.case === undefined) {
    return new TwirpError("invalid_argument", "unsupported SIP Dispatch Rule: <nil>");
  }
  return rule.value.pin;
}

/**
 * LiveKit's dispatch rule conflict check (sip.ValidateDispatchRulesIter): no two rules may
 * cover the same trunk, inbound number, number and PIN. Rules without trunks/numbers only
 * collide with other such rules.
 */
export function dispatchRuleConflict(rules: SIPDispatchRuleInfo[]): TwirpError | null {
  const byKey = new Map<string, SIPDispatchRuleInfo>();
  for (const r of rules) {
    const pin = pinOf(r);
    if (pin instanceof TwirpError) return pin;
    const trunks = r.trunkIds.length ? r.trunkIds : [""];
    const inbound = r.inboundNumbers.length ? r.inboundNumbers : [""];
    const numbers = r.numbers.length ? r.numbers : [""];
    for (const trunk of trunks) {
      for (const inb of inbound) {
        for (const num of numbers) {
          const key = JSON.stringify([pin, trunk, normalizeNumber(inb), normalizeNumber(num)]);
          const r2 = byKey.get(key);
          if (r2) {
            return new TwirpError(
              "invalid_argument",
              "Dispatch rule for the same trunk, inbound number, number, and PIN combination already exists " +
                `in dispatch rule ${q(printID(r2.sipDispatchRuleId))} ${
                  q(r2.name === "" ? "<blank name>" : r2.name)
                }`,
            );
          }
          byKey.set(key, r);
        }
      }
    }
  }
  return null;
}

/** ListSIPDispatchRuleRequest.Filter on trunk ids. */
export function ruleMatchesTrunks(r: SIPDispatchRuleInfo, trunkIds: string[]): boolean {
  if (trunkIds.length === 0 || r.trunkIds.length === 0) return true;
  return r.trunkIds.some((id) => trunkIds.includes(id));
}

// ---------------------------------------------------------------------------------------------
// Calls

function outboundConfigProblem(t: SIPOutboundConfig): string | null {
  if (t.hostname === "") return "no outbound hostname specified";
  return hostnameProblem(t.hostname, "trunk hostname") ??
    hostnameProblem(t.fromHost, "from_host") ??
    headerMapProblem(Object.values(t.attributesToHeaders)) ??
    headerMapProblem(Object.keys(t.headersToAttributes));
}

export function createParticipantProblem(req: CreateSIPParticipantRequest): string | null {
  if (req.sipTrunkId === "" && !req.trunk && req.sipNumber === "") {
    return "missing sip trunk id and sip number";
  }
  if (req.trunk) {
    const p = outboundConfigProblem(req.trunk);
    if (p) return p;
  }
  if (req.sipCallTo === "") return "missing sip callee number";
  if (req.sipCallTo.includes("@")) {
    return "SipCallTo should be a phone number or SIP user, not a full SIP URI";
  }
  if (req.toUserOverride !== "") {
    if (req.toUserOverride.includes("@")) {
      return "ToUserOverride should be a phone number or SIP user, not a full SIP URI";
    }
    if (!TOKEN_CHARS.test(req.toUserOverride)) return "ToUserOverride contains invalid characters";
  }
  if (req.roomName === "") return "missing room name";
  if (req.displayName !== undefined && req.displayName.length > 128) {
    return "DisplayName too long (max 128 characters)";
  }
  const d = req.destination;
  if (d) {
    if (d.city !== "" && d.country === "" && d.region === "") {
      return "if city is specified, country or region must also be specified";
    }
    if (d.country !== "" && !/^[A-Z]{2}$/.test(d.country)) {
      return "country must be a valid ISO 3166-1 alpha-2 code (2-letter like 'US', 'IN', 'UK')";
    }
  }
  return headersProblem(req.headers) ?? mediaProblem(req.media);
}

/** The SIP service's request-URI check on the trunk address (livekit/sip buildLegacyURI). */
export function requestUriProblem(address: string): string | null {
  if (address === "") return "invalid request URI: address must be set";
  if (address.startsWith("sip:") || address.startsWith("sips:")) {
    return "invalid request URI: address must be a hostname without 'sip:' prefix";
  }
  if (address.includes("transport=")) {
    return "invalid request URI: legacy address must not contain parameters; use transport field";
  }
  if (/[;=]/.test(address)) {
    return "invalid request URI: legacy address must not contain parameters";
  }
  return null;
}

export function transferProblem(req: TransferSIPParticipantRequest): string | null {
  if (req.roomName === "") return "missing room name";
  if (req.participantIdentity === "") return "missing participant identity";
  if (req.transferTo === "") return "missing transfer to";
  const inner = req.transferTo.startsWith("<") && req.transferTo.endsWith(">")
    ? req.transferTo.slice(1, -1)
    : req.transferTo;
  if (!/^(sip:|sips:|tel:)/.test(inner)) {
    return "transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)";
  }
  return headersProblem(req.headers);
}
