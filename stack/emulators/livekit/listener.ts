/**
 * TCP fronts for the emulator's HTTP server. Deno.serve cannot close a request's connection
 * before it has sent a response, so every listener the clients see is a plain TCP listener
 * that pipes each connection to one internal Deno.serve. A handler can then drop the
 * client's connection before any byte of the answer, the way a lost or reset connection
 * looks to a client (a transport error, not an HTTP status). The fronts also tell the
 * handler which listener (region) a request arrived at, and when its bytes did.
 */

interface Pipe {
  client: Deno.Conn;
  upstream: Deno.Conn;
  region: string;
  /** When the latest bytes from the client arrived (ms since the epoch). */
  receivedAt: number;
}

export interface Fronts {
  /** Starts a listener on `port` (0 = any) for `region`; returns its http:// URL. */
  open(region: string, hostname: string, port: number): string;
  /** The region of the connection whose far end the internal server sees at `port`. */
  regionOf(remotePort: number): string | undefined;
  /**
   * When the latest bytes from the client behind `remotePort` arrived: for a request whose
   * body has been read, when the request reached the emulator (clients do not pipeline).
   */
  receivedAt(remotePort: number): number | undefined;
  /** Closes the client connection behind the internal server's peer `remotePort`. */
  drop(remotePort: number): void;
  close(): Promise<void>;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

export function createFronts(upstreamPort: number): Fronts {
  const listeners: Deno.Listener[] = [];
  /** By the local port of the upstream connection, which the internal server sees as the peer. */
  const pipes = new Map<number, Pipe>();
  const running = new Set<Promise<void>>();
  let closed = false;

  async function relay(client: Deno.Conn, region: string): Promise<void> {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
    } catch {
      closeQuietly(client);
      return;
    }
    const key = (upstream.localAddr as Deno.NetAddr).port;
    const pipe: Pipe = { client, upstream, region, receivedAt: Date.now() };
    pipes.set(key, pipe);
    const stamp = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        pipe.receivedAt = Date.now();
        out.enqueue(chunk);
      },
    });
    try {
      await Promise.race([
        client.readable.pipeThrough(stamp).pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(client.writable).catch(() => {}),
      ]);
    } finally {
      pipes.delete(key);
      closeQuietly(client);
      closeQuietly(upstream);
    }
  }

  async function accept(listener: Deno.Listener, region: string): Promise<void> {
    try {
      for await (const client of listener) {
        if (closed) {
          closeQuietly(client);
          continue;
        }
        const p = relay(client, region).finally(() => running.delete(p));
        running.add(p);
      }
    } catch {
      // listener closed
    }
  }

  return {
    open(region, hostname, port) {
      const listener = Deno.listen({ hostname, port });
      listeners.push(listener);
      const p = accept(listener, region).finally(() => running.delete(p));
      running.add(p);
      const addr = listener.addr as Deno.NetAddr;
      return `http://${addr.hostname}:${addr.port}`;
    },
    regionOf: (remotePort) => pipes.get(remotePort)?.region,
    receivedAt: (remotePort) => pipes.get(remotePort)?.receivedAt,
    drop(remotePort) {
      const pipe = pipes.get(remotePort);
      if (!pipe) return;
      pipes.delete(remotePort);
      closeQuietly(pipe.client);
      closeQuietly(pipe.upstream);
    },
    async close() {
      closed = true;
      for (const l of listeners) {
        try {
          l.close();
        } catch {
          // already closed
        }
      }
      for (const pipe of pipes.values()) {
        closeQuietly(pipe.client);
        closeQuietly(pipe.upstream);
      }
      pipes.clear();
      await Promise.allSettled([...running]);
    },
  };
}
