// The carrier side of a number: the account's Twilio Elastic SIP trunk (termination domain,
// origination to LiveKit, a credential list with a generated username and password kept in
// Vault) and the number attached to it. Or, in static mode, the operator's own SIP provider.
// `twilio` is imported lazily so functions that never provision do not load it.
import { type Config, originationUrl } from "./config.ts";
import type { Sql } from "./db.ts";
import { withLease } from "./lease.ts";
import { NotConfiguredError, NotFoundError, UpstreamError } from "./errors.ts";
import type { Deps } from "./deps.ts";
import type { SipCredentials } from "./trunks.ts";
import type { TwilioClient } from "./twilio_client.ts";

type TwilioConfig = NonNullable<Config["twilio"]>;

/** What the carrier side needs: the configuration and a Twilio client. */
export type Carrier = Pick<Deps, "config" | "twilio">;

/** The carrier's Twilio client: the one given, else the configured account's. */
export function twilioOf(carrier: Carrier): Promise<TwilioClient> {
  return carrier.twilio ? carrier.twilio() : twilioClient(carrier.config);
}

/** The configured account's client (the real `twilio`, imported on first use). */
export async function twilioClient(config: Config): Promise<TwilioClient> {
  if (!config.twilio) {
    throw new NotConfiguredError(config.missing.twilio, "Twilio");
  }
  const t = config.twilio;
  const { createTwilioClient } = await import("./twilio_client.ts");
  return createTwilioClient({
    accountSid: t.accountSid,
    authToken: t.authToken,
    baseUrl: t.baseUrl,
    timeoutMs: 10_000,
  });
}

export function twilioError(action: string, e: unknown): UpstreamError {
  const err = e as { status?: number; code?: number; message?: string; name?: string };
  if (typeof err?.status === "number") {
    return new UpstreamError(
      "twilio",
      `Cannot ${action}: Twilio answered ${err.status} (${err.code ?? "no code"}: ${
        err.message ?? ""
      })`,
      err.code ?? null,
      err.status,
    );
  }
  return new UpstreamError(
    "twilio",
    `Cannot ${action}: Twilio could not be reached`,
    "unreachable",
    null,
  );
}

export interface TwilioNumber {
  sid: string;
  e164: string;
  trunkSid: string | null;
  friendlyName: string | null;
}

/**
 * The one record whose phone_number is exactly `e164`. Twilio's PhoneNumber filter also
 * matches partial numbers (`+1415666100` lists `+14156661000` to `+14156661009`), so a
 * listed record is only taken when it is the number asked for.
 */
export function exactNumber<T extends { phoneNumber: string }>(
  records: T[],
  e164: string,
): T | null {
  return records.find((r) => r.phoneNumber === e164) ?? null;
}

/** Finds a number of the account by E.164 or PN SID; null when the account has no such number. */
export async function findTwilioNumber(
  carrier: Carrier,
  key: { e164: string } | { sid: string },
): Promise<TwilioNumber | null> {
  if (!carrier.config.twilio) return null;
  const tw = await twilioOf(carrier);
  try {
    if ("sid" in key) {
      const n = await tw.incomingPhoneNumbers(key.sid).fetch();
      return {
        sid: n.sid,
        e164: n.phoneNumber,
        trunkSid: n.trunkSid ?? null,
        friendlyName: n.friendlyName ?? null,
      };
    }
    const n = exactNumber(
      await tw.incomingPhoneNumbers.list({ phoneNumber: key.e164, pageSize: 100, limit: 1000 }),
      key.e164,
    );
    return n
      ? {
        sid: n.sid,
        e164: n.phoneNumber,
        trunkSid: n.trunkSid ?? null,
        friendlyName: n.friendlyName ?? null,
      }
      : null;
  } catch (e) {
    if ((e as { status?: number }).status === 404) return null;
    throw twilioError(`look up ${"sid" in key ? key.sid : key.e164} in the Twilio account`, e);
  }
}

/** A password Twilio accepts (>= 12 chars with upper, lower and a digit), from a CSPRNG. */
export function generatePassword(length = 32): string {
  const sets = ["ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789"];
  const all = sets.join("");
  const pick = (set: string) => {
    const limit = 256 - (256 % set.length);
    for (;;) {
      const [b] = crypto.getRandomValues(new Uint8Array(1));
      if (b < limit) return set[b % set.length];
    }
  };
  const chars = [
    ...sets.map(pick),
    ...Array.from({ length: length - sets.length }, () => pick(all)),
  ];
  // Shuffle so the guaranteed classes are not always first.
  for (let i = chars.length - 1; i > 0; i--) {
    const j = crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return chars.join("");
}

/**
 * Twilio's origination URL towards LiveKit. Twilio ignores a number's voice URL once the
 * number is on a trunk: without a valid origination every inbound call is dropped, so
 * Twilio mode refuses to provision without it.
 */
export function requireOrigination(config: Config): string {
  const lk = config.livekit;
  if (!lk) {
    throw new NotConfiguredError(config.missing.livekit, "LiveKit");
  }
  if (lk.sipHostProblem) {
    throw new OriginationNotConfiguredError(
      `LIVEKIT_SIP_HOST is invalid: ${lk.sipHostProblem}. Twilio's trunk sends inbound calls there.`,
    );
  }
  if (!lk.sipHost) {
    throw new OriginationNotConfiguredError(
      "Inbound calls through Twilio are not configured: set LIVEKIT_SIP_HOST to LiveKit's SIP " +
        "host (<project id>.sip.livekit.cloud). Without it the Twilio trunk has no origination " +
        "URL and drops every inbound call.",
    );
  }
  return originationUrl(lk.sipHost);
}

/** A 503 not_configured naming LIVEKIT_SIP_HOST, with a message that says what is wrong. */
export class OriginationNotConfiguredError extends NotConfiguredError {
  constructor(message: string) {
    super(["LIVEKIT_SIP_HOST"], "Inbound calls through Twilio");
    this.message = message;
  }
}

export function trunkDomain(t: TwilioConfig): string {
  return `${t.trunkName}-${t.accountSid.slice(-8).toLowerCase()}.pstn.twilio.com`;
}

const ORIGINATION_NAME = "LiveKit";

interface SipTrunkRow {
  account_sid: string;
  trunk_sid: string | null;
  domain_name: string | null;
  credential_list_sid: string | null;
  origination_url_sid: string | null;
  sip_username: string | null;
  password_secret_id: string | null;
}

/**
 * The credentials LiveKit's outbound trunk uses. Static mode: from env. Twilio: ensures the
 * account's trunk step by step (each step finds before it creates) under a lock.
 */
export async function sipCredentials(
  carrier: Carrier & Pick<Deps, "clock">,
  sql: Sql,
): Promise<SipCredentials> {
  const config = carrier.config;
  const base = { transport: config.sipTransport, destinationCountry: config.destinationCountry };
  if (config.staticSip) {
    return { ...base, ...config.staticSip };
  }
  if (!config.twilio) {
    throw new NotConfiguredError(
      ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"],
      "Outbound calling (or SIP_PROVIDER_ADDRESS for another SIP provider)",
    );
  }
  const t = config.twilio;
  // Checked before anything is made: a number on a trunk without origination is unreachable.
  const sipUrl = requireOrigination(config);
  const tw = await twilioOf(carrier);
  return await withLease(
    { sql, clock: carrier.clock },
    `sip_trunk:${t.accountSid}`,
    () => ensureCarrierTrunk(config, t, sipUrl, tw, sql),
  );
}

/** The account's Elastic SIP trunk with this domain (the deployment's own), or null. */
export async function findAccountTrunk(tw: TwilioClient, domain: string) {
  return (await tw.trunking.v1.trunks.list()).find((x) => x.domainName === domain) ?? null;
}

/** The account's trunk, origination and credential, each found before it is made (under the lease). */
async function ensureCarrierTrunk(
  config: Config,
  t: TwilioConfig,
  sipUrl: string,
  tw: TwilioClient,
  sql: Sql,
): Promise<SipCredentials> {
  const base = { transport: config.sipTransport, destinationCountry: config.destinationCountry };
  await sql`insert into internal.sip_trunk (account_sid) values (${t.accountSid}) on conflict do nothing`;
  const [row] = await sql<
    SipTrunkRow[]
  >`select * from internal.sip_trunk where account_sid = ${t.accountSid}`;
  const save = (fields: Partial<SipTrunkRow>) =>
    sql`update internal.sip_trunk set ${sql(fields as Record<string, unknown>)}, updated_at = now()
       where account_sid = ${t.accountSid}`;
  const call = async <T>(action: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw twilioError(action, e);
    }
  };

  // 1. The trunk, found by its domain.
  const domain = trunkDomain(t);
  let trunkSid = row.trunk_sid;
  if (trunkSid) {
    const exists = await tw.trunking.v1.trunks(trunkSid).fetch().then(() => true, (e) => {
      if (e?.status === 404) return false;
      throw twilioError("fetch the SIP trunk", e);
    });
    if (!exists) trunkSid = null;
  }
  if (!trunkSid) {
    trunkSid = (await call("list SIP trunks", () => findAccountTrunk(tw, domain)))?.sid ??
      (await call(
        "create the SIP trunk",
        () =>
          tw.trunking.v1.trunks.create({
            friendlyName: `${t.trunkName} (LiveKit)`,
            domainName: domain,
          }),
      )).sid;
    await save({ trunk_sid: trunkSid, domain_name: domain });
  }
  const trunk = tw.trunking.v1.trunks(trunkSid);

  // 2. Origination: inbound calls go to LiveKit's SIP host. The trunk is this deployment's
  // own, so a URL that points elsewhere (an old host, a mangled paste) is corrected: ours is
  // updated in place or created, and any other is disabled (kept, so nothing is lost).
  const urls = await call("list origination URLs", () => trunk.originationUrls.list());
  const target = urls.find((u) => u.sipUrl === sipUrl) ??
    urls.find((u) => u.sid === row.origination_url_sid) ??
    urls.find((u) => u.friendlyName === ORIGINATION_NAME);
  let originationSid: string;
  if (!target) {
    originationSid = (await call(
      "create the origination URL",
      () =>
        trunk.originationUrls.create({
          sipUrl,
          priority: 10,
          weight: 10,
          enabled: true,
          friendlyName: ORIGINATION_NAME,
        }),
    )).sid;
  } else {
    originationSid = target.sid;
    if (target.sipUrl !== sipUrl || !target.enabled) {
      await call(
        "correct the origination URL",
        () => trunk.originationUrls(target.sid).update({ sipUrl, enabled: true }),
      );
    }
  }
  for (const u of urls) {
    if (u.sid !== originationSid && u.enabled && u.sipUrl !== sipUrl) {
      await call(
        "disable an origination URL that points elsewhere",
        () => trunk.originationUrls(u.sid).update({ enabled: false }),
      );
    }
  }
  if (originationSid !== row.origination_url_sid) {
    await save({ origination_url_sid: originationSid });
  }

  // 3. The credential list and its one credential (password only in Vault).
  const listName = `${t.trunkName}-livekit`;
  let listSid = row.credential_list_sid;
  if (listSid) {
    const exists = await tw.sip.credentialLists(listSid).fetch().then(() => true, (e) => {
      if (e?.status === 404) return false;
      throw twilioError("fetch the credential list", e);
    });
    if (!exists) listSid = null;
  }
  if (!listSid) {
    const lists = await call("list credential lists", () => tw.sip.credentialLists.list());
    listSid = lists.find((l) => l.friendlyName === listName)?.sid ??
      (await call(
        "create the credential list",
        () => tw.sip.credentialLists.create({ friendlyName: listName }),
      )).sid;
    await save({ credential_list_sid: listSid });
  }
  const credentials = await call(
    "list credentials",
    () => tw.sip.credentialLists(listSid!).credentials.list(),
  );
  let username = row.sip_username;
  let password = row.password_secret_id
    ? (await sql<{ v: string | null }[]>`select internal.secret(${
      "sip_password:" + t.accountSid
    }) as v`)[0].v
    : null;
  const onTwilio = credentials.some((c) => c.username === username);
  const removeAll = async () => {
    for (const c of credentials) {
      await call(
        "replace the SIP credential",
        () => tw.sip.credentialLists(listSid!).credentials(c.sid).remove(),
      );
    }
  };
  if (username && password && !onTwilio) {
    // Deleted on Twilio (say, in the console) while Vault still holds it: restore the same
    // pair, so every outbound trunk that carries it keeps working.
    await removeAll();
    await call(
      "restore the SIP credential",
      () =>
        tw.sip.credentialLists(listSid!).credentials.create({
          username: username!,
          password: password!,
        }),
    );
  } else if (!username || !password) {
    // Twilio keeps only a hash: without our copy of the password a new pair is made, and
    // every assigned number is queued so its outbound trunk gets the new pair too.
    await removeAll();
    username = `lk${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    password = generatePassword();
    const [{ id }] = await sql<{ id: string }[]>`select internal.put_secret(${
      "sip_password:" + t.accountSid
    }, ${password}) as id`;
    await call(
      "create the SIP credential",
      () =>
        tw.sip.credentialLists(listSid!).credentials.create({
          username: username!,
          password: password!,
        }),
    );
    await save({ sip_username: username, password_secret_id: id });
    await sql`select internal.requeue_trunk_numbers()`;
  }

  // 4. Attach the list to the trunk's termination.
  const attached = await call(
    "list the trunk's credential lists",
    () => trunk.credentialsLists.list(),
  );
  if (!attached.some((a) => a.sid === listSid)) {
    await call(
      "attach the credential list",
      () => trunk.credentialsLists.create({ credentialListSid: listSid! }),
    );
  }
  return { ...base, address: domain, username, password };
}

/** The number is not the Twilio account's: no retry can fix that, only its owner can. */
export class NotInAccountError extends NotFoundError {
  readonly final = true;
  constructor(e164: string, staticSip = false) {
    super(
      staticSip
        ? `${e164} is not a number the operator declared for the SIP provider (SIP_PROVIDER_NUMBERS); only declared numbers may be a caller ID.`
        : `${e164} is not a number of the Twilio account; buy or port it into the account, then assign it again.`,
    );
  }
}

/** Puts the number on the account's trunk (Twilio mode); returns its PN SID. */
export async function attachNumber(
  carrier: Carrier,
  sql: Sql,
  e164: string,
): Promise<string | null> {
  const config = carrier.config;
  // Static SIP mode has no inventory to ask: the operator's declaration is it.
  if (config.staticSip && !config.staticSipNumbers.includes(e164)) {
    throw new NotInAccountError(e164, true);
  }
  if (!config.twilio || config.staticSip) return null;
  const n = await findTwilioNumber(carrier, { e164 });
  if (!n) throw new NotInAccountError(e164);
  const [row] = await sql<
    { trunk_sid: string }[]
  >`select trunk_sid from internal.sip_trunk where account_sid = ${config.twilio.accountSid}`;
  if (row?.trunk_sid && n.trunkSid !== row.trunk_sid) {
    const tw = await twilioOf(carrier);
    await tw.trunking.v1.trunks(row.trunk_sid).phoneNumbers.create({ phoneNumberSid: n.sid }).catch(
      (e) => {
        throw twilioError(`attach ${e164} to the SIP trunk`, e);
      },
    );
  }
  return n.sid;
}

/** Takes the number off the account's trunk, if it is on it (Twilio mode). */
export async function detachNumber(carrier: Carrier, sql: Sql, e164: string): Promise<void> {
  const config = carrier.config;
  if (!config.twilio || config.staticSip) return;
  const n = await findTwilioNumber(carrier, { e164 });
  if (!n?.trunkSid) return;
  const [row] = await sql<
    { trunk_sid: string }[]
  >`select trunk_sid from internal.sip_trunk where account_sid = ${config.twilio.accountSid}`;
  if (n.trunkSid !== row?.trunk_sid) return; // on someone else's trunk: not ours to change
  const tw = await twilioOf(carrier);
  await tw.trunking.v1.trunks(n.trunkSid).phoneNumbers(n.sid).remove().catch((e) => {
    if (e?.status !== 404) throw twilioError(`detach ${e164} from the SIP trunk`, e);
  });
}
