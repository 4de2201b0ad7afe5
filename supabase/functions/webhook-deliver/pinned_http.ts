// One HTTP/1.1 POST to an address chosen in advance. A webhook URL's host is checked (every
// address public) and the request must go to exactly the address that was checked: `fetch`
// would resolve the name again, and a name that answers a public address to the check and an
// internal one to the fetch (DNS rebinding) would reach the internal one. So the TCP
// connection goes to the checked address, TLS (for https) verifies the certificate against the
// URL's name, and only the status line and headers of the answer are read.

/** The status line and headers of an answer. */
export interface PinnedAnswer {
  status: number;
  headers: Headers;
}

export interface PinnedPost {
  /** The URL as checked: its path, query and Host come from here, never its name's DNS. */
  url: string;
  /** The checked addresses, tried in order until one accepts the connection. */
  addresses: string[];
  headers: Record<string, string>;
  body: string;
  /** Aborts the connect, the TLS handshake, the write and the read. */
  signal: AbortSignal;
}

/** Sends a POST to one of the given addresses (the seam tests replace). */
export type PinnedSender = (post: PinnedPost) => Promise<PinnedAnswer>;

export interface PinnedOptions {
  /** Opens the TCP connection (a test may watch where it goes). */
  connect?: (o: { hostname: string; port: number }) => Promise<Deno.Conn>;
  /** Extra trusted roots (tests with their own certificate authority). */
  caCerts?: string[];
}

/** Status line and headers longer than this make the answer malformed. */
export const MAX_HEADER_BYTES = 16 * 1024;

const encoder = new TextEncoder();

/** Thrown for an answer that is not HTTP/1.x or whose head is too long. */
export class MalformedAnswerError extends Error {
  override name = "MalformedAnswerError";
}

/** Runs `op`, giving up (and closing the connection) as soon as the signal aborts. */
function abortable<T>(signal: AbortSignal, op: Promise<T>, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    op.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const stop = () => {
      onAbort();
      reject(signal.reason);
    };
    signal.addEventListener("abort", stop, { once: true });
    op.then(
      (v) => {
        signal.removeEventListener("abort", stop);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", stop);
        reject(signal.aborted ? signal.reason : e);
      },
    );
  });
}

function closeQuietly(conn: Deno.Conn | null) {
  try {
    conn?.close();
  } catch {
    // already closed
  }
}

function requestHead(url: URL, headers: Record<string, string>, length: number): string {
  const lines = [
    `POST ${url.pathname || "/"}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    `Content-Length: ${length}`,
    "Connection: close",
  ];
  for (const line of lines) {
    if (/[\r\n\0]/.test(line)) throw new Error("a request header carries a line break");
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Index just past the first blank line (CRLF CRLF, or LF LF), or -1. */
function headEnd(buf: Uint8Array, len: number): number {
  for (let i = 0; i + 1 < len; i++) {
    if (buf[i] !== 10) continue;
    if (buf[i + 1] === 10) return i + 2;
    if (buf[i + 1] === 13 && i + 2 < len && buf[i + 2] === 10) return i + 3;
  }
  return -1;
}

/** Parses one head (status line and headers). */
function parseHead(text: string): PinnedAnswer {
  const lines = text.replace(/\r?\n\r?\n$/, "").split(/\r?\n/);
  const m = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(lines[0] ?? "");
  if (!m) throw new MalformedAnswerError("the answer is not HTTP/1.x");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!h) throw new MalformedAnswerError("the answer has a malformed header");
    try {
      headers.append(h[1], h[2]);
    } catch {
      throw new MalformedAnswerError("the answer has a malformed header");
    }
  }
  return { status: Number(m[1]), headers };
}

/** Reads heads until a final one (1xx interim answers skipped), within MAX_HEADER_BYTES. */
async function readAnswer(conn: Deno.Conn): Promise<PinnedAnswer> {
  const buf = new Uint8Array(MAX_HEADER_BYTES);
  let len = 0;
  for (;;) {
    const end = headEnd(buf, len);
    if (end >= 0) {
      const answer = parseHead(new TextDecoder().decode(buf.subarray(0, end)));
      if (answer.status >= 200 || answer.status === 101) return answer;
      buf.copyWithin(0, end, len); // an interim 1xx: the final answer follows
      len -= end;
      continue;
    }
    if (len === buf.length) {
      throw new MalformedAnswerError(`the answer's headers exceed ${MAX_HEADER_BYTES} bytes`);
    }
    const n = await conn.read(buf.subarray(len));
    if (n === null) throw new MalformedAnswerError("the connection closed before an answer");
    len += n;
  }
}

/**
 * POSTs to the first of `addresses` that accepts a connection, never resolving the URL's name:
 * for https the certificate is verified against that name over the connection to the address.
 * Reads the status and headers, then closes.
 */
export async function postPinned(
  post: PinnedPost,
  opts: PinnedOptions = {},
): Promise<PinnedAnswer> {
  const url = new URL(post.url);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`unsupported protocol ${url.protocol}`);
  }
  if (post.addresses.length === 0) throw new Error("no address to connect to");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  const body = encoder.encode(post.body);
  const head = encoder.encode(requestHead(url, post.headers, body.length));
  const connect = opts.connect ?? ((o) => Deno.connect(o));
  let conn: Deno.Conn | null = null;
  const close = () => closeQuietly(conn);
  try {
    let lastError: unknown = null;
    for (const address of post.addresses) {
      const attempt = connect({ hostname: address.replace(/^\[|\]$/g, ""), port });
      // A connection that arrives after the abort is closed at once.
      attempt.then((c) => post.signal.aborted && closeQuietly(c), () => {});
      try {
        conn = await abortable(post.signal, attempt, close);
        break;
      } catch (e) {
        if (post.signal.aborted) throw e;
        lastError = e;
      }
    }
    if (!conn) throw lastError;
    if (url.protocol === "https:") {
      const tcp: Deno.Conn = conn;
      const handshake = Deno.startTls(tcp as Deno.TcpConn, {
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        alpnProtocols: ["http/1.1"],
        ...(opts.caCerts ? { caCerts: opts.caCerts } : {}),
      });
      handshake.then((c) => post.signal.aborted && closeQuietly(c), () => {});
      conn = await abortable(post.signal, handshake, () => closeQuietly(tcp));
    }
    const c: Deno.Conn = conn;
    const request = new Uint8Array(head.length + body.length);
    request.set(head);
    request.set(body, head.length);
    await abortable(post.signal, writeAll(c, request), close);
    return await abortable(post.signal, readAnswer(c), close);
  } finally {
    close();
  }
}
