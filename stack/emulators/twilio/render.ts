// JSON bodies in Twilio's shapes: snake_case fields, RFC 2822 dates on the 2010-04-01 API,
// ISO 8601 dates and absolute URLs on the v1 trunking API, and each API's list page format.

import { ErrorCode, iso8601, rfc2822, TwilioApiError } from "./rules.ts";
import type {
  CredentialListRecord,
  CredentialRecord,
  NumberRecord,
  OriginationUrlRecord,
  TrunkRecord,
} from "./store.ts";

export interface RenderContext {
  accountSid: string;
  /** Origin the v1 API's absolute URLs point at (the emulator itself). */
  origin: string;
}

type Json = Record<string, unknown>;

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

export function accountPath(ctx: RenderContext): string {
  return `/2010-04-01/Accounts/${ctx.accountSid}`;
}

const CAPABILITIES = { voice: true, sms: true, mms: true, fax: false };

export function incomingPhoneNumber(ctx: RenderContext, n: NumberRecord): Json {
  const uri = `${accountPath(ctx)}/IncomingPhoneNumbers/${n.sid}.json`;
  return {
    account_sid: ctx.accountSid,
    address_requirements: "none",
    address_sid: null,
    api_version: "2010-04-01",
    beta: false,
    bundle_sid: null,
    capabilities: CAPABILITIES,
    date_created: rfc2822(n.dateCreated),
    date_updated: rfc2822(n.dateUpdated),
    emergency_address_sid: null,
    emergency_address_status: "unregistered",
    emergency_status: "Inactive",
    friendly_name: n.friendlyName,
    identity_sid: null,
    origin: "twilio",
    phone_number: n.phoneNumber,
    sid: n.sid,
    sms_application_sid: n.smsApplicationSid,
    sms_fallback_method: n.smsFallbackMethod,
    sms_fallback_url: n.smsFallbackUrl,
    sms_method: n.smsMethod,
    sms_url: n.smsUrl,
    status: "in-use",
    status_callback: n.statusCallback,
    status_callback_method: n.statusCallbackMethod,
    subresource_uris: {
      assigned_add_ons: `${accountPath(ctx)}/IncomingPhoneNumbers/${n.sid}/AssignedAddOns.json`,
    },
    trunk_sid: n.trunkSid,
    type: "local",
    uri,
    voice_application_sid: n.voiceApplicationSid,
    voice_caller_id_lookup: n.voiceCallerIdLookup,
    voice_fallback_method: n.voiceFallbackMethod,
    voice_fallback_url: n.voiceFallbackUrl,
    voice_method: n.voiceMethod,
    voice_receive_mode: "voice",
    voice_url: n.voiceUrl,
  };
}

export function trunkUrl(ctx: RenderContext, trunkSid: string): string {
  return `${ctx.origin}/v1/Trunks/${trunkSid}`;
}

export function trunk(ctx: RenderContext, t: TrunkRecord): Json {
  const url = trunkUrl(ctx, t.sid);
  const authTypes = t.credentialLists.size > 0 ? ["CREDENTIAL_LIST"] : [];
  return {
    account_sid: ctx.accountSid,
    auth_type: authTypes.join(","),
    auth_type_set: authTypes,
    cnam_lookup_enabled: t.cnamLookupEnabled,
    date_created: iso8601(t.dateCreated),
    date_updated: iso8601(t.dateUpdated),
    disaster_recovery_method: t.disasterRecoveryMethod,
    disaster_recovery_url: t.disasterRecoveryUrl,
    domain_name: t.domainName,
    friendly_name: t.friendlyName,
    links: {
      credential_lists: `${url}/CredentialLists`,
      ip_access_control_lists: `${url}/IpAccessControlLists`,
      origination_urls: `${url}/OriginationUrls`,
      phone_numbers: `${url}/PhoneNumbers`,
      recording: `${url}/Recording`,
    },
    recording: { mode: "do-not-record", trim: "do-not-trim" },
    secure: t.secure,
    sid: t.sid,
    symmetric_rtp_enabled: false,
    transfer_caller_id: t.transferCallerId,
    transfer_mode: t.transferMode,
    url,
  };
}

export function originationUrl(ctx: RenderContext, u: OriginationUrlRecord): Json {
  return {
    account_sid: ctx.accountSid,
    date_created: iso8601(u.dateCreated),
    date_updated: iso8601(u.dateUpdated),
    enabled: u.enabled,
    friendly_name: u.friendlyName,
    priority: u.priority,
    sid: u.sid,
    sip_url: u.sipUrl,
    trunk_sid: u.trunkSid,
    url: `${trunkUrl(ctx, u.trunkSid)}/OriginationUrls/${u.sid}`,
    weight: u.weight,
  };
}

export function trunkCredentialList(
  ctx: RenderContext,
  trunkSid: string,
  list: CredentialListRecord,
  attachedAt: number,
): Json {
  return {
    account_sid: ctx.accountSid,
    date_created: iso8601(attachedAt),
    date_updated: iso8601(attachedAt),
    friendly_name: list.friendlyName,
    sid: list.sid,
    trunk_sid: trunkSid,
    url: `${trunkUrl(ctx, trunkSid)}/CredentialLists/${list.sid}`,
  };
}

export function trunkPhoneNumber(ctx: RenderContext, n: NumberRecord): Json {
  const base = incomingPhoneNumber(ctx, n);
  const trunkSid = n.trunkSid ?? "";
  return {
    account_sid: ctx.accountSid,
    address_requirements: base.address_requirements,
    api_version: base.api_version,
    beta: base.beta,
    capabilities: base.capabilities,
    date_created: iso8601(n.dateCreated),
    date_updated: iso8601(n.dateUpdated),
    friendly_name: n.friendlyName,
    links: { phone_number: `${ctx.origin}${base.uri}` },
    phone_number: n.phoneNumber,
    sid: n.sid,
    sms_application_sid: n.smsApplicationSid,
    sms_fallback_method: n.smsFallbackMethod,
    sms_fallback_url: n.smsFallbackUrl,
    sms_method: n.smsMethod,
    sms_url: n.smsUrl,
    status_callback: n.statusCallback,
    status_callback_method: n.statusCallbackMethod,
    trunk_sid: n.trunkSid,
    url: `${trunkUrl(ctx, trunkSid)}/PhoneNumbers/${n.sid}`,
    voice_application_sid: n.voiceApplicationSid,
    voice_caller_id_lookup: n.voiceCallerIdLookup,
    voice_fallback_method: n.voiceFallbackMethod,
    voice_fallback_url: n.voiceFallbackUrl,
    voice_method: n.voiceMethod,
    voice_url: n.voiceUrl,
  };
}

export function credentialList(ctx: RenderContext, l: CredentialListRecord): Json {
  const path = `${accountPath(ctx)}/SIP/CredentialLists/${l.sid}`;
  return {
    account_sid: ctx.accountSid,
    date_created: rfc2822(l.dateCreated),
    date_updated: rfc2822(l.dateUpdated),
    friendly_name: l.friendlyName,
    sid: l.sid,
    subresource_uris: { credentials: `${path}/Credentials.json` },
    uri: `${path}.json`,
  };
}

/** A SIP credential: the username only; Twilio never returns a password. */
export function credential(ctx: RenderContext, c: CredentialRecord): Json {
  return {
    account_sid: ctx.accountSid,
    credential_list_sid: c.credentialListSid,
    date_created: rfc2822(c.dateCreated),
    date_updated: rfc2822(c.dateUpdated),
    sid: c.sid,
    uri: `${accountPath(ctx)}/SIP/CredentialLists/${c.credentialListSid}/Credentials/${c.sid}.json`,
    username: c.username,
  };
}

// ---- Paging -------------------------------------------------------------------------------

export interface Page<T> {
  records: T[];
  page: number;
  pageSize: number;
  start: number;
  nextToken: string | null;
  previousToken: string | null;
}

function nonNegativeInt(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) {
    throw new TwilioApiError(
      400,
      ErrorCode.invalidParameter,
      `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`,
    );
  }
  return Number(raw);
}

/**
 * Cuts one page out of `items`. `PageToken` is `PA<sid>` (records after that sid) or `PB<sid>`
 * (records before it), as in Twilio's next/previous page links; without one, `Page` counts
 * pages from 0.
 */
export function paginate<T extends { sid: string }>(items: T[], query: URLSearchParams): Page<T> {
  const requestedSize = nonNegativeInt(query, "PageSize") ?? DEFAULT_PAGE_SIZE;
  if (requestedSize < 1) {
    throw new TwilioApiError(400, ErrorCode.invalidParameter, "PageSize must be at least 1");
  }
  const pageSize = Math.min(requestedSize, MAX_PAGE_SIZE);
  const page = nonNegativeInt(query, "Page") ?? 0;
  let start = page * pageSize;
  const token = query.get("PageToken");
  if (token !== null && token !== "") {
    const match = /^P([AB])(.+)$/.exec(token);
    if (!match) {
      throw new TwilioApiError(400, ErrorCode.invalidPageToken, `Invalid PageToken ${token}`);
    }
    const index = items.findIndex((r) => r.sid === match[2]);
    if (index >= 0) start = match[1] === "A" ? index + 1 : Math.max(0, index - pageSize);
  }
  const records = items.slice(start, start + pageSize);
  const hasNext = start + records.length < items.length;
  return {
    records,
    page,
    pageSize,
    start,
    nextToken: hasNext && records.length > 0 ? `PA${records[records.length - 1].sid}` : null,
    previousToken: start > 0 && records.length > 0 ? `PB${records[0].sid}` : null,
  };
}

function pageQuery(
  filters: URLSearchParams,
  pageSize: number,
  page: number,
  token: string | null,
): string {
  const q = new URLSearchParams(filters);
  q.set("PageSize", String(pageSize));
  q.set("Page", String(page));
  if (token) q.set("PageToken", token);
  return q.toString();
}

/** The 2010-04-01 API's list body: records under `key`, paging fields beside them. */
export function page2010(
  path: string,
  key: string,
  filters: URLSearchParams,
  p: Page<unknown>,
  records: Json[],
  requestToken: string | null,
): Json {
  return {
    [key]: records,
    end: records.length > 0 ? p.start + records.length - 1 : 0,
    first_page_uri: `${path}?${pageQuery(filters, p.pageSize, 0, null)}`,
    next_page_uri: p.nextToken
      ? `${path}?${pageQuery(filters, p.pageSize, p.page + 1, p.nextToken)}`
      : null,
    page: p.page,
    page_size: p.pageSize,
    previous_page_uri: p.previousToken
      ? `${path}?${pageQuery(filters, p.pageSize, Math.max(0, p.page - 1), p.previousToken)}`
      : null,
    start: p.start,
    uri: `${path}?${pageQuery(filters, p.pageSize, p.page, requestToken)}`,
  };
}

/** The v1 APIs' list body: a `meta` object naming the records' key, with absolute URLs. */
export function pageV1(
  url: string,
  key: string,
  p: Page<unknown>,
  records: Json[],
  requestToken: string | null,
): Json {
  const none = new URLSearchParams();
  return {
    meta: {
      first_page_url: `${url}?${pageQuery(none, p.pageSize, 0, null)}`,
      key,
      next_page_url: p.nextToken
        ? `${url}?${pageQuery(none, p.pageSize, p.page + 1, p.nextToken)}`
        : null,
      page: p.page,
      page_size: p.pageSize,
      previous_page_url: p.previousToken
        ? `${url}?${pageQuery(none, p.pageSize, Math.max(0, p.page - 1), p.previousToken)}`
        : null,
      url: `${url}?${pageQuery(none, p.pageSize, p.page, requestToken)}`,
    },
    [key]: records,
  };
}
