// Customer event webhooks, the pure half: endpoint secrets, which URLs may receive
// (https only; never an address inside a private network, so a customer cannot point our
// servers at internal services), the Standard Webhooks body and signature, and what an
// answer means.
import { lookup } from "node:dns/promises";
import { Webhook } from "standardwebhooks";

/** No answer within this long is a failed attempt (api.md). */
export const DELIVERY_TIMEOUT_MS = 10_000;

/** A signing secret as Standard Webhooks shows it: `whsec_` + base64 of 32 random bytes. */
export function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

// Addresses ------------------------------------------------------------------------------------

function ipv4(text: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail included), or null. */
function ipv6(text: string): number[] | null {
  let s = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  if (!s.includes(":")) return null;
  const tail = /:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
  if (tail) {
    const v4 = ipv4(tail[1]);
    if (!v4) return null;
    s = s.slice(0, -tail[1].length) +
      `${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parse = (h: string) => (h === "" ? [] : h.split(":"));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

function inV4(a: number[], base: [number, number, number, number], bits: number): boolean {
  const n = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
  const b = ((base[0] << 24) | (base[1] << 16) | (base[2] << 8) | base[3]) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((n & mask) >>> 0) === ((b & mask) >>> 0);
}

const V4_BLOCKS: [[number, number, number, number], number, string][] = [
  [[0, 0, 0, 0], 8, "this network"],
  [[10, 0, 0, 0], 8, "private"],
  [[100, 64, 0, 0], 10, "shared (carrier-grade NAT)"],
  [[127, 0, 0, 0], 8, "loopback"],
  [[169, 254, 0, 0], 16, "link-local (cloud metadata)"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 0, 0, 0], 24, "reserved"],
  [[192, 0, 2, 0], 24, "documentation"],
  [[192, 88, 99, 0], 24, "reserved"],
  [[192, 168, 0, 0], 16, "private"],
  [[198, 18, 0, 0], 15, "benchmarking"],
  [[198, 51, 100, 0], 24, "documentation"],
  [[203, 0, 113, 0], 24, "documentation"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[240, 0, 0, 0], 4, "reserved"],
];

/** Why an address must not receive webhooks (loopback, private, link-local, ...), or null. */
export function nonPublicReason(address: string): string | null {
  const v4 = ipv4(address);
  if (v4) return V4_BLOCKS.find(([base, bits]) => inV4(v4, base, bits))?.[2] ?? null;
  const g = ipv6(address);
  if (!g) return "not an IP address";
  const embedded = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255];
  if (g.every((x) => x === 0)) return "unspecified";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback";
  // IPv4-mapped, IPv4-compatible and NAT64 addresses reach the IPv4 address inside.
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0)) {
    return nonPublicReason(embedded(g[6], g[7]).join("."));
  }
  // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765).
  if (g.slice(0, 4).every((x) => x === 0) && g[4] === 0xffff && g[5] === 0) {
    return nonPublicReason(embedded(g[6], g[7]).join("."));
  }
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) {
    return nonPublicReason(embedded(g[6], g[7]).join("."));
  }
  // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): translated inside the operator's own network.
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return "local-use NAT64";
  if (g[0] === 0x2002) return nonPublicReason(embedded(g[1], g[2]).join("."));
  if ((g[0] & 0xfe00) === 0xfc00) return "unique local (private)";
  if ((g[0] & 0xffc0) === 0xfe80) return "link-local";
  if ((g[0] & 0xffc0) === 0xfec0) return "site-local (private)";
  if ((g[0] & 0xff00) === 0xff00) return "multicast";
  if (g[0] === 0x2001 && g[1] === 0x0db8) return "documentation";
  if (g[0] === 0x2001 && g[1] < 0x0200) return "reserved (IETF protocol assignments, Teredo)";
  if (g[0] === 0x0100 && g.slice(1, 4).every((x) => x === 0)) return "discard";
  return null;
}

/** The host's IPv4 and IPv6 addresses (empty when it does not resolve). */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * DNS answers (A and AAAA); where the runtime offers no Deno.resolveDns, the system resolver
 * (node:dns lookup). A name that does not exist resolves to nothing.
 */
export const resolveWithDns: Resolver = async (host) => {
  try {
    const signal = AbortSignal.timeout(3_000);
    const lookups = await Promise.allSettled([
      Deno.resolveDns(host, "A", { signal }),
      Deno.resolveDns(host, "AAAA", { signal }),
    ]);
    const found = lookups.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
    const absent = lookups.every((r) =>
      r.status === "rejected" && r.reason instanceof Deno.errors.NotFound
    );
    if (found.length > 0 || absent) return found;
  } catch {
    // no Deno.resolveDns here: ask the system resolver
  }
  const all = await lookup(host, { all: true, verbatim: true });
  return all.map((a) => a.address);
};

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v4 = ipv4(h);
  if (v4) return v4[0] === 127;
  const g = ipv6(h);
  return !!g && g.slice(0, 7).every((x) => x === 0) && g[7] === 1;
}

export type UrlCheck =
  /** `addresses`: the ones checked, IPv4 first; a delivery connects to these and nothing else. */
  | { ok: true; url: string; addresses: string[] }
  | { ok: false; reason: string; retryable: boolean };

/** Unique, IPv4 before IPv6, otherwise in the order given. */
function orderAddresses(addresses: string[]): string[] {
  const unique = [...new Set(addresses.map((a) => a.replace(/^\[|\]$/g, "")))];
  return [...unique.filter((a) => ipv4(a)), ...unique.filter((a) => !ipv4(a))];
}

/**
 * Whether a URL may receive webhooks. Production: https, and the host (an IP literal or every
 * address it resolves to) must be public. `allowLocalhost` (the local stack) also lets
 * http(s)://localhost and 127.0.0.1 through. `retryable` marks a DNS failure, which at delivery
 * time is a failed attempt like any other. An accepted URL comes with the addresses that were
 * checked: a delivery connects to one of them and never resolves the name again (a second
 * answer could be an internal address: DNS rebinding).
 */
export async function checkWebhookUrl(
  raw: string,
  opts: { allowLocalhost: boolean; resolve: Resolver },
): Promise<UrlCheck> {
  const no = (reason: string, retryable = false): UrlCheck => ({ ok: false, reason, retryable });
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return no("is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return no("must be an https:// URL");
  if (url.username || url.password) {
    return no("must not carry a user name or password (anyone reading the endpoint would see it)");
  }
  url.hash = "";
  const href = url.href;
  if (href.length > 2048) return no("is longer than 2048 characters");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (opts.allowLocalhost && isLoopbackHost(host)) {
    // A loopback literal is itself; a localhost name is loopback by definition (RFC 6761), so
    // it is not looked up.
    const literal = ipv4(host) || ipv6(host) ? [host] : ["127.0.0.1", "::1"];
    return { ok: true, url: href, addresses: literal };
  }
  if (url.protocol !== "https:") return no("must be an https:// URL");
  const literal = ipv4(host) ?? ipv6(host);
  if (literal) {
    const why = nonPublicReason(host);
    return why
      ? no(`points at a ${why} address (${host}); webhooks go to public addresses only`)
      : { ok: true, url: href, addresses: [host] };
  }
  const name = host.toLowerCase().replace(/\.$/, "");
  if (
    name === "localhost" || /\.(localhost|local|localdomain|internal|home\.arpa)$/.test(name) ||
    !name.includes(".")
  ) {
    return no(`names a local host (${name}); webhooks go to public addresses only`);
  }
  let addresses: string[];
  try {
    addresses = await opts.resolve(name);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) return no(`has a host that does not resolve (${name})`, true);
  for (const address of addresses) {
    const why = nonPublicReason(address);
    if (why) {
      return no(
        `resolves to a ${why} address (${name} is ${address}); webhooks go to public addresses only`,
      );
    }
  }
  return { ok: true, url: href, addresses: orderAddresses(addresses) };
}

// Deliveries ------------------------------------------------------------------------------------

/** The body Standard Webhooks receivers expect; built from stored values, so byte-identical on every attempt. */
export function deliveryBody(type: string, timestamp: string, data: unknown): string {
  return JSON.stringify({ type, timestamp, data });
}

/** The three Standard Webhooks headers for one attempt (the signature covers id, time and body). */
export function signedHeaders(
  secret: string,
  id: string,
  at: Date,
  body: string,
): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  };
}

export interface Answer {
  /** 2xx: delivered. 3xx counts as a failure (Standard Webhooks); redirects are never followed. */
  ok: boolean;
  /** 410 Gone: the receiver asks us to stop; the endpoint is disabled. */
  gone: boolean;
  /** The receiver's Retry-After, in seconds, when it sent one. */
  retryAfterSec: number | null;
}

export function classifyAnswer(
  status: number,
  retryAfter: string | null,
  now: number,
): Answer {
  let wait: number | null = null;
  if (retryAfter !== null && retryAfter.trim() !== "") {
    const text = retryAfter.trim();
    if (/^\d+$/.test(text)) wait = Number(text);
    else {
      const at = Date.parse(text);
      if (!Number.isNaN(at)) wait = Math.max(0, Math.ceil((at - now) / 1000));
    }
  }
  return { ok: status >= 200 && status < 300, gone: status === 410, retryAfterSec: wait };
}

/** A failed request in a sentence: timed out, or could not connect (the URL left out). */
export function describeSendError(e: unknown): string {
  const name = (e as { name?: string })?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s`;
  }
  const message = e instanceof Error ? e.message : String(e);
  const cleaned = message.replace(/\s*for url \([^)]*\)/gi, "").replace(/https?:\/\/\S+/g, "<url>");
  return `could not deliver: ${cleaned}`.slice(0, 300);
}
