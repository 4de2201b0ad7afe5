// The emulated account: phone numbers, Elastic SIP trunks and SIP credential lists, with the
// rules Twilio applies when they are created, changed, deleted and used for termination.

import {
  ErrorCode,
  isE164,
  isHttpUrl,
  MAX_FRIENDLY_NAME,
  missingParameter,
  newSid,
  parentTrunkDomain,
  parseBool,
  passwordProblem,
  sha256Hex,
  sipNumber,
  terminationDomain,
  trunkDomainProblem,
  TwilioApiError,
  usernameProblem,
} from "./rules.ts";

export interface NumberRecord {
  sid: string;
  phoneNumber: string;
  friendlyName: string;
  trunkSid: string | null;
  voiceUrl: string;
  voiceMethod: string;
  voiceFallbackUrl: string;
  voiceFallbackMethod: string;
  voiceApplicationSid: string;
  voiceCallerIdLookup: boolean;
  smsUrl: string;
  smsMethod: string;
  smsFallbackUrl: string;
  smsFallbackMethod: string;
  smsApplicationSid: string;
  statusCallback: string;
  statusCallbackMethod: string;
  dateCreated: number;
  dateUpdated: number;
}

export interface TrunkRecord {
  sid: string;
  friendlyName: string | null;
  domainName: string | null;
  disasterRecoveryUrl: string | null;
  disasterRecoveryMethod: string | null;
  secure: boolean;
  cnamLookupEnabled: boolean;
  transferMode: string;
  transferCallerId: string;
  /** Attached credential list SIDs, with the time each was attached. */
  credentialLists: Map<string, number>;
  dateCreated: number;
  dateUpdated: number;
}

export interface OriginationUrlRecord {
  sid: string;
  trunkSid: string;
  sipUrl: string;
  priority: number;
  weight: number;
  enabled: boolean;
  friendlyName: string;
  dateCreated: number;
  dateUpdated: number;
}

export interface CredentialRecord {
  sid: string;
  credentialListSid: string;
  username: string;
  /** Only a salted SHA-256 of the password is kept, as Twilio keeps only a hash. */
  salt: string;
  passwordHash: string;
  dateCreated: number;
  dateUpdated: number;
}

export interface CredentialListRecord {
  sid: string;
  friendlyName: string;
  credentials: Map<string, CredentialRecord>;
  dateCreated: number;
  dateUpdated: number;
}

export interface SeedNumber {
  sid: string;
  phoneNumber: string;
  friendlyName: string;
}

export interface TerminationCall {
  address: string;
  username: string;
  password: string;
  fromNumber: string;
  toNumber: string;
  /**
   * When the INVITE arrived (ms since the epoch; default: now). Twilio counts INVITEs as they
   * reach its edge; an emulator that shares a starved process with its caller gets to them
   * later, and its own work on one (hashing the credentials) takes time Twilio's edge does not.
   */
  invitedAt?: number;
}

/** The SIP final response a real termination would give, and Twilio's error code for it. */
export interface TerminationRefusal {
  sipStatusCode: number;
  sipStatus: string;
  /** Twilio's error code for the refusal, where its dictionary has one. */
  errorCode: number | null;
  reason: string;
}

export interface TerminationRecord {
  time: string;
  address: string;
  username: string;
  fromNumber: string;
  toNumber: string;
  trunkSid: string | null;
  outcome: "accepted" | "refused";
  sipStatusCode: number | null;
  reason: string | null;
}

/** Which numbers may be the caller id of a terminated call. */
export type CallerIdPolicy = "account" | "trunk";

export interface StoreOptions {
  seed: SeedNumber[];
  now: () => number;
  callerIdPolicy: CallerIdPolicy;
  /** Calls per second accepted per trunk; 0 turns the limit off. */
  cps: number;
  /** Keep deleted trunk domains reserved, as Twilio does for up to 30 days. */
  domainRetention: boolean;
}

const HTTP_METHODS = new Set(["HEAD", "GET", "POST", "PATCH", "PUT", "DELETE"]);
const TRANSFER_MODES = new Set(["disable-all", "enable-all", "sip-only"]);
const TRANSFER_CALLER_IDS = new Set(["from-transferee", "from-transferor"]);
const MAX_TERMINATION_LOG = 500;

type Form = URLSearchParams;

function param(form: Form, name: string): string | undefined {
  const v = form.get(name);
  return v === null ? undefined : v;
}

function required(form: Form, name: string): string {
  const v = param(form, name);
  if (v === undefined || v.trim() === "") throw missingParameter(name);
  return v;
}

function integerIn(form: Form, name: string, min: number, max: number): number | undefined {
  const raw = param(form, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) {
    throw new TwilioApiError(
      400,
      ErrorCode.trunkValidation,
      `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function bool(form: Form, name: string, code: number): boolean | undefined {
  const raw = param(form, name);
  if (raw === undefined) return undefined;
  const b = parseBool(raw);
  if (b === undefined) {
    throw new TwilioApiError(
      400,
      code,
      `${name} must be true or false, got ${JSON.stringify(raw)}`,
    );
  }
  return b;
}

function friendlyName(form: Form, code: number): string | undefined {
  const v = param(form, "FriendlyName");
  if (v !== undefined && v.length > MAX_FRIENDLY_NAME) {
    throw new TwilioApiError(
      400,
      code,
      `FriendlyName must be ${MAX_FRIENDLY_NAME} characters or less, got ${v.length}`,
    );
  }
  return v;
}

function seedRecord(seed: SeedNumber, now: number): NumberRecord {
  return {
    sid: seed.sid,
    phoneNumber: seed.phoneNumber,
    friendlyName: seed.friendlyName,
    trunkSid: null,
    voiceUrl: "",
    voiceMethod: "POST",
    voiceFallbackUrl: "",
    voiceFallbackMethod: "POST",
    voiceApplicationSid: "",
    voiceCallerIdLookup: false,
    smsUrl: "",
    smsMethod: "POST",
    smsFallbackUrl: "",
    smsFallbackMethod: "POST",
    smsApplicationSid: "",
    statusCallback: "",
    statusCallbackMethod: "POST",
    dateCreated: now,
    dateUpdated: now,
  };
}

export class TwilioStore {
  numbers = new Map<string, NumberRecord>();
  trunks = new Map<string, TrunkRecord>();
  originationUrls = new Map<string, OriginationUrlRecord>();
  credentialLists = new Map<string, CredentialListRecord>();
  terminations: TerminationRecord[] = [];
  private retiredDomains = new Set<string>();
  private acceptedCalls = new Map<string, number[]>();

  constructor(private readonly opts: StoreOptions) {
    this.reset();
  }

  get callerIdPolicy(): CallerIdPolicy {
    return this.opts.callerIdPolicy;
  }

  set callerIdPolicy(policy: CallerIdPolicy) {
    this.opts.callerIdPolicy = policy;
  }

  get cps(): number {
    return this.opts.cps;
  }

  set cps(value: number) {
    this.opts.cps = value;
  }

  /** Adds a number to the account as if it had been there from the start (kept by reset). */
  addNumber(seed: SeedNumber): NumberRecord | null {
    if ([...this.numbers.values()].some((n) => n.phoneNumber === seed.phoneNumber)) return null;
    this.opts.seed.push(seed);
    const record = seedRecord(seed, this.opts.now());
    this.numbers.set(seed.sid, record);
    return record;
  }

  reset(): void {
    const now = this.opts.now();
    this.numbers = new Map(this.opts.seed.map((s) => [s.sid, seedRecord(s, now)]));
    this.trunks.clear();
    this.originationUrls.clear();
    this.credentialLists.clear();
    this.terminations = [];
    this.retiredDomains.clear();
    this.acceptedCalls.clear();
  }

  // ---- Incoming phone numbers ------------------------------------------------------------

  updateNumber(number: NumberRecord, form: Form): NumberRecord {
    const name = friendlyName(form, ErrorCode.invalidParameter);
    const urls: [string, keyof NumberRecord][] = [
      ["VoiceUrl", "voiceUrl"],
      ["VoiceFallbackUrl", "voiceFallbackUrl"],
      ["SmsUrl", "smsUrl"],
      ["SmsFallbackUrl", "smsFallbackUrl"],
      ["StatusCallback", "statusCallback"],
    ];
    const methods: [string, keyof NumberRecord][] = [
      ["VoiceMethod", "voiceMethod"],
      ["VoiceFallbackMethod", "voiceFallbackMethod"],
      ["SmsMethod", "smsMethod"],
      ["SmsFallbackMethod", "smsFallbackMethod"],
      ["StatusCallbackMethod", "statusCallbackMethod"],
    ];
    const changes: Partial<NumberRecord> = {};
    for (const [key, field] of urls) {
      const v = param(form, key);
      if (v === undefined) continue;
      if (v !== "" && !isHttpUrl(v)) {
        throw new TwilioApiError(400, ErrorCode.invalidUrl, `${key} is not valid: ${v}`);
      }
      (changes as Record<string, unknown>)[field] = v;
    }
    for (const [key, field] of methods) {
      const v = param(form, key);
      if (v === undefined) continue;
      if (!HTTP_METHODS.has(v.toUpperCase())) {
        throw new TwilioApiError(400, ErrorCode.invalidMethod, `${key} is not valid: ${v}`);
      }
      (changes as Record<string, unknown>)[field] = v.toUpperCase();
    }
    const lookup = bool(form, "VoiceCallerIdLookup", ErrorCode.invalidParameter);
    if (lookup !== undefined) changes.voiceCallerIdLookup = lookup;
    const voiceApp = param(form, "VoiceApplicationSid");
    const smsApp = param(form, "SmsApplicationSid");
    if (smsApp !== undefined) changes.smsApplicationSid = smsApp;
    const trunkSid = param(form, "TrunkSid");
    if (trunkSid !== undefined && trunkSid !== "" && !this.trunks.has(trunkSid)) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkValidation,
        `TrunkSid ${trunkSid} is not a trunk of this account`,
      );
    }
    if (name !== undefined) changes.friendlyName = name;
    // A number routes through either a trunk or a voice application: setting one clears the other.
    if (trunkSid !== undefined) {
      changes.trunkSid = trunkSid === "" ? null : trunkSid;
      if (trunkSid !== "") changes.voiceApplicationSid = "";
    }
    if (voiceApp !== undefined) {
      changes.voiceApplicationSid = voiceApp;
      if (voiceApp !== "") changes.trunkSid = null;
    }
    Object.assign(number, changes, { dateUpdated: this.opts.now() });
    return number;
  }

  deleteNumber(sid: string): void {
    this.numbers.delete(sid);
  }

  // ---- Trunks ----------------------------------------------------------------------------

  private checkDomain(domain: string, trunkSid: string | null): void {
    const problem = trunkDomainProblem(domain);
    if (problem) throw new TwilioApiError(400, ErrorCode.trunkValidation, problem);
    const taken = [...this.trunks.values()].some((t) =>
      t.domainName === domain && t.sid !== trunkSid
    );
    if (taken || this.retiredDomains.has(domain)) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkDomainTaken,
        `Trunk Domain already taken: ${domain} is not available`,
      );
    }
    const parent = parentTrunkDomain(domain);
    if (parent && ![...this.trunks.values()].some((t) => t.domainName === parent)) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkDependencies,
        `Cannot use ${domain}: its parent domain ${parent} is not a trunk domain of this account`,
      );
    }
  }

  private hasSubdomains(domain: string): boolean {
    return [...this.trunks.values()].some((t) =>
      t.domainName !== null && t.domainName.endsWith(`.${domain}`)
    );
  }

  private retire(domain: string | null): void {
    if (domain && this.opts.domainRetention) this.retiredDomains.add(domain);
  }

  private trunkSettings(form: Form): Partial<TrunkRecord> {
    const changes: Partial<TrunkRecord> = {};
    const name = friendlyName(form, ErrorCode.trunkValidation);
    if (name !== undefined) changes.friendlyName = name;
    const drUrl = param(form, "DisasterRecoveryUrl");
    if (drUrl !== undefined) {
      if (drUrl !== "" && !isHttpUrl(drUrl)) {
        throw new TwilioApiError(
          400,
          ErrorCode.trunkValidation,
          `DisasterRecoveryUrl is not valid: ${drUrl}`,
        );
      }
      changes.disasterRecoveryUrl = drUrl === "" ? null : drUrl;
    }
    const drMethod = param(form, "DisasterRecoveryMethod");
    if (drMethod !== undefined) {
      if (!["GET", "POST"].includes(drMethod.toUpperCase())) {
        throw new TwilioApiError(
          400,
          ErrorCode.trunkValidation,
          `DisasterRecoveryMethod must be GET or POST, got ${drMethod}`,
        );
      }
      changes.disasterRecoveryMethod = drMethod.toUpperCase();
    }
    const transferMode = param(form, "TransferMode");
    if (transferMode !== undefined) {
      if (!TRANSFER_MODES.has(transferMode)) {
        throw new TwilioApiError(
          400,
          ErrorCode.trunkValidation,
          `TransferMode must be one of ${[...TRANSFER_MODES].join(", ")}, got ${transferMode}`,
        );
      }
      changes.transferMode = transferMode;
    }
    const transferCallerId = param(form, "TransferCallerId");
    if (transferCallerId !== undefined) {
      if (!TRANSFER_CALLER_IDS.has(transferCallerId)) {
        throw new TwilioApiError(
          400,
          ErrorCode.trunkValidation,
          `TransferCallerId must be one of ${
            [...TRANSFER_CALLER_IDS].join(", ")
          }, got ${transferCallerId}`,
        );
      }
      changes.transferCallerId = transferCallerId;
    }
    const secure = bool(form, "Secure", ErrorCode.trunkValidation);
    if (secure !== undefined) changes.secure = secure;
    const cnam = bool(form, "CnamLookupEnabled", ErrorCode.trunkValidation);
    if (cnam !== undefined) changes.cnamLookupEnabled = cnam;
    return changes;
  }

  createTrunk(form: Form): TrunkRecord {
    const settings = this.trunkSettings(form);
    const rawDomain = param(form, "DomainName");
    const domain = rawDomain === undefined || rawDomain === "" ? null : rawDomain.toLowerCase();
    if (domain !== null) this.checkDomain(domain, null);
    const now = this.opts.now();
    const trunk: TrunkRecord = {
      sid: newSid("TK"),
      friendlyName: null,
      domainName: domain,
      disasterRecoveryUrl: null,
      disasterRecoveryMethod: "POST",
      secure: false,
      cnamLookupEnabled: false,
      transferMode: "disable-all",
      transferCallerId: "from-transferee",
      credentialLists: new Map(),
      dateCreated: now,
      dateUpdated: now,
      ...settings,
    };
    this.trunks.set(trunk.sid, trunk);
    return trunk;
  }

  updateTrunk(trunk: TrunkRecord, form: Form): TrunkRecord {
    const settings = this.trunkSettings(form);
    const rawDomain = param(form, "DomainName");
    if (rawDomain !== undefined) {
      const domain = rawDomain === "" ? null : rawDomain.toLowerCase();
      if (domain !== trunk.domainName) {
        if (trunk.domainName && this.hasSubdomains(trunk.domainName)) {
          throw new TwilioApiError(
            400,
            ErrorCode.trunkDependencies,
            `Cannot rename ${trunk.domainName} while it has subdomains`,
          );
        }
        if (domain !== null) this.checkDomain(domain, trunk.sid);
        this.retire(trunk.domainName);
        settings.domainName = domain;
      }
    }
    Object.assign(trunk, settings, { dateUpdated: this.opts.now() });
    return trunk;
  }

  deleteTrunk(trunk: TrunkRecord): void {
    if (trunk.domainName && this.hasSubdomains(trunk.domainName)) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkDependencies,
        `Cannot delete trunk ${trunk.sid} while its domain ${trunk.domainName} has subdomains`,
      );
    }
    // The account keeps its numbers; they only stop routing through the trunk.
    for (const number of this.numbers.values()) {
      if (number.trunkSid === trunk.sid) {
        number.trunkSid = null;
        number.dateUpdated = this.opts.now();
      }
    }
    for (const [sid, url] of this.originationUrls) {
      if (url.trunkSid === trunk.sid) this.originationUrls.delete(sid);
    }
    this.retire(trunk.domainName);
    this.acceptedCalls.delete(trunk.sid);
    this.trunks.delete(trunk.sid);
  }

  trunkNumbers(trunkSid: string): NumberRecord[] {
    return [...this.numbers.values()].filter((n) => n.trunkSid === trunkSid);
  }

  trunkOriginationUrls(trunkSid: string): OriginationUrlRecord[] {
    return [...this.originationUrls.values()].filter((u) => u.trunkSid === trunkSid);
  }

  // ---- Origination URLs ------------------------------------------------------------------

  private originationSettings(form: Form): Partial<OriginationUrlRecord> {
    const changes: Partial<OriginationUrlRecord> = {};
    const sipUrl = param(form, "SipUrl");
    if (sipUrl !== undefined) {
      if (!/^sips?:[^\s]+$/i.test(sipUrl)) {
        throw new TwilioApiError(
          400,
          ErrorCode.trunkValidation,
          `SipUrl must be a SIP URI starting with sip:, got ${JSON.stringify(sipUrl)}`,
        );
      }
      changes.sipUrl = sipUrl;
    }
    const priority = integerIn(form, "Priority", 0, 65535);
    if (priority !== undefined) changes.priority = priority;
    const weight = integerIn(form, "Weight", 1, 65535);
    if (weight !== undefined) changes.weight = weight;
    const enabled = bool(form, "Enabled", ErrorCode.trunkValidation);
    if (enabled !== undefined) changes.enabled = enabled;
    const name = friendlyName(form, ErrorCode.trunkValidation);
    if (name !== undefined) changes.friendlyName = name;
    return changes;
  }

  createOriginationUrl(trunk: TrunkRecord, form: Form): OriginationUrlRecord {
    for (const name of ["Weight", "Priority", "Enabled", "FriendlyName", "SipUrl"]) {
      required(form, name);
    }
    const settings = this.originationSettings(form);
    const now = this.opts.now();
    const url: OriginationUrlRecord = {
      sid: newSid("OU"),
      trunkSid: trunk.sid,
      sipUrl: "",
      priority: 10,
      weight: 10,
      enabled: true,
      friendlyName: "",
      dateCreated: now,
      dateUpdated: now,
      ...settings,
    };
    this.originationUrls.set(url.sid, url);
    return url;
  }

  updateOriginationUrl(url: OriginationUrlRecord, form: Form): OriginationUrlRecord {
    Object.assign(url, this.originationSettings(form), { dateUpdated: this.opts.now() });
    return url;
  }

  // ---- Trunk credential lists and phone numbers ------------------------------------------

  attachCredentialList(trunk: TrunkRecord, form: Form): CredentialListRecord {
    const sid = required(form, "CredentialListSid");
    const list = this.credentialLists.get(sid);
    if (!list) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkValidation,
        `CredentialListSid ${sid} is not a credential list of this account`,
      );
    }
    if (trunk.credentialLists.has(sid)) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkValidation,
        `Credential list ${sid} is already associated with trunk ${trunk.sid}`,
      );
    }
    trunk.credentialLists.set(sid, this.opts.now());
    return list;
  }

  attachNumber(trunk: TrunkRecord, form: Form): NumberRecord {
    const sid = required(form, "PhoneNumberSid");
    const number = this.numbers.get(sid);
    if (!number) {
      throw new TwilioApiError(
        400,
        ErrorCode.trunkValidation,
        `PhoneNumberSid ${sid} is not a phone number of this account`,
      );
    }
    number.trunkSid = trunk.sid;
    number.voiceApplicationSid = "";
    number.dateUpdated = this.opts.now();
    return number;
  }

  detachNumber(number: NumberRecord): void {
    number.trunkSid = null;
    number.dateUpdated = this.opts.now();
  }

  // ---- SIP credential lists and credentials ----------------------------------------------

  private credentialListName(form: Form, sid: string | null): string | undefined {
    const name = friendlyName(form, ErrorCode.credentialListValidation);
    if (name === undefined) return undefined;
    if (name.trim() === "") {
      throw new TwilioApiError(
        400,
        ErrorCode.credentialListValidation,
        "A FriendlyName is required",
      );
    }
    const duplicate = [...this.credentialLists.values()].some((l) =>
      l.friendlyName === name && l.sid !== sid
    );
    if (duplicate) {
      throw new TwilioApiError(
        400,
        ErrorCode.credentialListValidation,
        `A Credential List with the FriendlyName ${JSON.stringify(name)} already exists`,
      );
    }
    return name;
  }

  createCredentialList(form: Form): CredentialListRecord {
    const name = this.credentialListName(form, null);
    if (name === undefined) throw missingParameter("FriendlyName");
    const now = this.opts.now();
    const list: CredentialListRecord = {
      sid: newSid("CL"),
      friendlyName: name,
      credentials: new Map(),
      dateCreated: now,
      dateUpdated: now,
    };
    this.credentialLists.set(list.sid, list);
    return list;
  }

  updateCredentialList(list: CredentialListRecord, form: Form): CredentialListRecord {
    const name = this.credentialListName(form, list.sid);
    if (name === undefined) throw missingParameter("FriendlyName");
    list.friendlyName = name;
    list.dateUpdated = this.opts.now();
    return list;
  }

  deleteCredentialList(list: CredentialListRecord): void {
    const users = [...this.trunks.values()].filter((t) => t.credentialLists.has(list.sid));
    if (users.length > 0) {
      throw new TwilioApiError(
        400,
        ErrorCode.credentialListDependencies,
        `Credential List ${list.sid} is still associated with trunk ${
          users.map((t) => t.sid).join(", ")
        }`,
      );
    }
    this.credentialLists.delete(list.sid);
  }

  private async hashPassword(password: string): Promise<{ salt: string; passwordHash: string }> {
    const salt = newSid("");
    return { salt, passwordHash: await sha256Hex(salt + password) };
  }

  async createCredential(list: CredentialListRecord, form: Form): Promise<CredentialRecord> {
    const username = required(form, "Username");
    const password = required(form, "Password");
    const problem = usernameProblem(username) ?? passwordProblem(password);
    if (problem) throw new TwilioApiError(400, ErrorCode.credentialValidation, problem);
    // Hash first so the uniqueness check and the insert happen without an await between them.
    const hashed = await this.hashPassword(password);
    if ([...list.credentials.values()].some((c) => c.username === username)) {
      throw new TwilioApiError(
        400,
        ErrorCode.credentialValidation,
        `Username ${username} already exists in credential list ${list.sid}`,
      );
    }
    const now = this.opts.now();
    const credential: CredentialRecord = {
      sid: newSid("CR"),
      credentialListSid: list.sid,
      username,
      ...hashed,
      dateCreated: now,
      dateUpdated: now,
    };
    list.credentials.set(credential.sid, credential);
    return credential;
  }

  async updateCredential(credential: CredentialRecord, form: Form): Promise<CredentialRecord> {
    const password = param(form, "Password");
    if (password !== undefined) {
      const problem = passwordProblem(password);
      if (problem) throw new TwilioApiError(400, ErrorCode.credentialValidation, problem);
      Object.assign(credential, await this.hashPassword(password));
    }
    credential.dateUpdated = this.opts.now();
    return credential;
  }

  // ---- Termination -----------------------------------------------------------------------

  /** Decides a termination INVITE the way Twilio's edge would; null means accepted. */
  async terminate(call: TerminationCall): Promise<TerminationRefusal | null> {
    const at = call.invitedAt ?? this.opts.now();
    const domain = terminationDomain(call.address);
    const trunk = [...this.trunks.values()].find((t) => t.domainName === domain) ?? null;
    const refusal = await this.decide(call, domain, trunk, at);
    this.terminations.push({
      time: new Date(at).toISOString(),
      address: call.address,
      username: call.username,
      fromNumber: call.fromNumber,
      toNumber: call.toNumber,
      trunkSid: trunk?.sid ?? null,
      outcome: refusal ? "refused" : "accepted",
      sipStatusCode: refusal?.sipStatusCode ?? null,
      reason: refusal?.reason ?? null,
    });
    if (this.terminations.length > MAX_TERMINATION_LOG) this.terminations.shift();
    return refusal;
  }

  private async decide(
    call: TerminationCall,
    domain: string,
    trunk: TrunkRecord | null,
    at: number,
  ): Promise<TerminationRefusal | null> {
    if (!trunk) {
      return {
        sipStatusCode: 404,
        sipStatus: "Not Found",
        errorCode: null,
        reason: `No trunk of this account has the termination domain ${domain}`,
      };
    }
    if (trunk.credentialLists.size === 0) {
      return {
        sipStatusCode: 403,
        sipStatus: "Forbidden",
        errorCode: 32200,
        reason: `Trunk ${trunk.sid} has no credential list, so termination is not authorized`,
      };
    }
    if (call.username === "") {
      return {
        sipStatusCode: 407,
        sipStatus: "Proxy Authentication Required",
        errorCode: null,
        reason: "The INVITE carried no credentials to answer the digest challenge",
      };
    }
    if (!(await this.credentialsMatch(trunk, call.username, call.password))) {
      return {
        sipStatusCode: 403,
        sipStatus: "Forbidden",
        errorCode: 32202,
        reason:
          `Bad user credentials: ${call.username} with this password is in no credential list of trunk ${trunk.sid}`,
      };
    }
    const from = sipNumber(call.fromNumber);
    const owned = [...this.numbers.values()].find((n) => n.phoneNumber === from);
    if (!owned || (this.opts.callerIdPolicy === "trunk" && owned.trunkSid !== trunk.sid)) {
      return {
        sipStatusCode: 403,
        sipStatus: "Forbidden",
        errorCode: 32204,
        reason: this.opts.callerIdPolicy === "trunk"
          ? `Caller id ${from} is not a number attached to trunk ${trunk.sid}`
          : `Caller id ${from} is not a Twilio number of this account`,
      };
    }
    const to = sipNumber(call.toNumber);
    if (!isE164(to)) {
      return {
        sipStatusCode: 484,
        sipStatus: "Address Incomplete",
        errorCode: null,
        reason: `Destination ${call.toNumber} is not an E.164 number`,
      };
    }
    if (!this.withinCps(trunk.sid, at)) {
      // Twilio's reason phrase for error 32001; LiveKit SIP recognises a carrier rate limit by it.
      return {
        sipStatusCode: 503,
        sipStatus: "Trunk CPS limit exceeded",
        errorCode: 32001,
        reason: `Trunk CPS limit exceeded: ${this.opts.cps} call(s) per second on ${trunk.sid}`,
      };
    }
    return null;
  }

  private async credentialsMatch(
    trunk: TrunkRecord,
    username: string,
    password: string,
  ): Promise<boolean> {
    for (const listSid of trunk.credentialLists.keys()) {
      const list = this.credentialLists.get(listSid);
      if (!list) continue;
      for (const credential of list.credentials.values()) {
        if (credential.username !== username) continue;
        if ((await sha256Hex(credential.salt + password)) === credential.passwordHash) return true;
      }
    }
    return false;
  }

  /**
   * Whether an INVITE that arrived at `at` keeps every sliding second around it within the
   * trunk's CPS. INVITEs are decided in the order their checks finish, which need not be the
   * order they arrived in, so accepted ones on both sides of `at` count.
   */
  private withinCps(trunkSid: string, at: number): boolean {
    const cps = this.opts.cps;
    if (cps <= 0) return true;
    const kept = (this.acceptedCalls.get(trunkSid) ?? []).filter((t) => at - t < 2000);
    this.acceptedCalls.set(trunkSid, kept);
    const before = kept.filter((t) => t <= at).sort((a, b) => a - b);
    const times = [...before, at, ...kept.filter((t) => t > at).sort((a, b) => a - b)];
    const self = before.length;
    // Every run of cps + 1 INVITEs that includes this one must span a second or more.
    for (let i = Math.max(0, self - cps); i <= self && i + cps < times.length; i++) {
      if (times[i + cps] - times[i] < 1000) return false;
    }
    kept.push(at);
    return true;
  }
}
