// The real `twilio` client, built from the library's own parts: its base client and only the
// two domains provisioning calls (Api: numbers and SIP credential lists; Trunking: Elastic SIP
// trunks). The library's root `twilio()` reaches every one of its ~40 domains through
// `require`, which a bundler follows: a function that imported it bundled to ~9.7 MB, over the
// 5 MB that Supabase's server-side bundling allows (`tests/unit/bundles.test.ts` measures it).
//
// Optionally every request goes to another base URL (the local emulator or a proxy).
// Redirection happens in the HTTP client, after the library has built each absolute URL, so it
// covers both domains, raw `client.request()` calls and the absolute next-page URLs that list
// pages carry.

import BaseTwilio from "twilio/lib/base/BaseTwilio.js";
import RequestClient from "twilio/lib/base/RequestClient.js";
import Api from "twilio/lib/rest/Api.js";
import Trunking from "twilio/lib/rest/Trunking.js";
import type { IncomingPhoneNumberListInstance } from "twilio/lib/rest/api/v2010/account/incomingPhoneNumber.js";
import type { SipListInstance } from "twilio/lib/rest/api/v2010/account/sip.js";

export interface TwilioClientOptions {
  accountSid: string;
  authToken: string;
  /** Where to send every request instead of *.twilio.com, e.g. http://127.0.0.1:4010. */
  baseUrl?: string | null;
  /** Per-request timeout; the library's default is 30 s. */
  timeoutMs?: number;
}

/**
 * What the product uses of a Twilio client, named as on the library's full client (`twilio()`),
 * which therefore also fits wherever this type is asked for.
 */
export interface TwilioClient extends Pick<BaseTwilio.Client, "accountSid" | "request"> {
  readonly api: Api;
  readonly trunking: Trunking;
  /** The account's numbers (`api.v2010.account.incomingPhoneNumbers`). */
  readonly incomingPhoneNumbers: IncomingPhoneNumberListInstance;
  /** The account's SIP resources, credential lists among them (`api.v2010.account.sip`). */
  readonly sip: SipListInstance;
}

/** The library's base client with the Api and Trunking domains, made on first use. */
class ProvisioningClient extends BaseTwilio.Client implements TwilioClient {
  #api: Api | undefined;
  #trunking: Trunking | undefined;

  get api(): Api {
    return this.#api ??= new Api(this);
  }

  get trunking(): Trunking {
    return this.#trunking ??= new Trunking(this);
  }

  get incomingPhoneNumbers(): IncomingPhoneNumberListInstance {
    return this.api.v2010.account.incomingPhoneNumbers;
  }

  get sip(): SipListInstance {
    return this.api.v2010.account.sip;
  }
}

type RequestOptions<TData> =
  & Omit<Parameters<RequestClient["request"]>[0], "data">
  & { data?: TData };

function isTwilioHost(hostname: string): boolean {
  return hostname === "twilio.com" || hostname.endsWith(".twilio.com");
}

/** Rewrites `uri` onto `base` when it names a Twilio host; other URIs pass unchanged. */
export function redirectUri(uri: string, base: URL): string {
  const target = new URL(uri);
  if (!isTwilioHost(target.hostname)) return uri;
  const prefix = base.pathname.replace(/\/+$/, "");
  return `${base.origin}${prefix}${target.pathname}${target.search}`;
}

class RedirectingRequestClient extends RequestClient {
  constructor(private readonly base: URL, timeoutMs: number | undefined) {
    super({ timeout: timeoutMs });
  }

  override request<TData>(opts: RequestOptions<TData>) {
    return super.request<TData>({ ...opts, uri: redirectUri(opts.uri, this.base) });
  }
}

function parseBaseUrl(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new Error(`Twilio baseUrl ${JSON.stringify(baseUrl)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`Twilio baseUrl ${JSON.stringify(baseUrl)} must be http or https`);
  }
  return url;
}

/**
 * Creates the real twilio client (its Api and Trunking domains); when baseUrl is given (the
 * emulator, or any proxy), every request is redirected to it.
 */
export function createTwilioClient(opts: TwilioClientOptions): TwilioClient {
  if (!opts.baseUrl) {
    return new ProvisioningClient(opts.accountSid, opts.authToken, { timeout: opts.timeoutMs });
  }
  const base = parseBaseUrl(opts.baseUrl);
  return new ProvisioningClient(opts.accountSid, opts.authToken, {
    httpClient: new RedirectingRequestClient(base, opts.timeoutMs),
    // An edge or region (also read from TWILIO_EDGE / TWILIO_REGION) rewrites hostnames,
    // which would mangle the base URL's host in absolute next-page URLs.
    edge: "",
    region: "",
  });
}
