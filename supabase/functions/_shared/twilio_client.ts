// The real `twilio` client, optionally pointed at another base URL (the local emulator or a
// proxy). Redirection happens in the HTTP client, after the library has built each absolute
// URL, so it covers every domain (api, trunking, ...), raw `client.request()` calls and the
// absolute next-page URLs that list pages carry.

import twilio from "twilio";

export interface TwilioClientOptions {
  accountSid: string;
  authToken: string;
  /** Where to send every request instead of *.twilio.com, e.g. http://127.0.0.1:4010. */
  baseUrl?: string | null;
  /** Per-request timeout; the library's default is 30 s. */
  timeoutMs?: number;
}

type RequestOptions<TData> =
  & Omit<Parameters<InstanceType<typeof twilio.RequestClient>["request"]>[0], "data">
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

class RedirectingRequestClient extends twilio.RequestClient {
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
 * Creates the real twilio client; when baseUrl is given (the emulator, or any proxy), every
 * domain the product uses (api, trunking) is redirected to it.
 */
export function createTwilioClient(opts: TwilioClientOptions): twilio.Twilio {
  if (!opts.baseUrl) {
    return twilio(opts.accountSid, opts.authToken, { timeout: opts.timeoutMs });
  }
  const base = parseBaseUrl(opts.baseUrl);
  return twilio(opts.accountSid, opts.authToken, {
    httpClient: new RedirectingRequestClient(base, opts.timeoutMs),
    // An edge or region (also read from TWILIO_EDGE / TWILIO_REGION) rewrites hostnames,
    // which would mangle the base URL's host in absolute next-page URLs.
    edge: "",
    region: "",
  });
}
