// STAND-IN for pg_net's background worker: sends the requests `net.http_post` queued,
// once their transaction has committed, and records each response in net._http_response.
// Like pg_net it delivers at most once: a request that fails is recorded, never retried.
import postgres from "postgres";

export interface NetWorker {
  /** Drops the next `n` requests without sending them (fault injection). */
  drop(n: number): void;
  sent(): number;
  dropped(): number;
  close(): Promise<void>;
}

interface Queued {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

export async function startNetWorker(dbUrl: string): Promise<NetWorker> {
  const sql = postgres(dbUrl, {
    max: 2,
    onnotice: () => {},
    connection: { application_name: "pg_net worker" },
  });
  let toDrop = 0;
  let sent = 0;
  let dropped = 0;
  let closed = false;
  let running: Promise<void> | null = null;
  const inflight = new Set<Promise<void>>();
  // Closing aborts the requests in flight: a stopping stack waits for no function's answer.
  const closing = new AbortController();

  async function send(req: Queued) {
    const started = Date.now();
    try {
      const res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body ? new Uint8Array(req.body) : null,
        signal: AbortSignal.any([AbortSignal.timeout(req.timeout_milliseconds), closing.signal]),
      });
      const content = await res.text();
      sent++;
      await sql`insert into net._http_response (id, status_code, content_type, headers, content, timed_out)
        values (${req.id}, ${res.status}, ${res.headers.get("content-type")},
                ${sql.json(Object.fromEntries(res.headers))}, ${content}, false)`;
    } catch (e) {
      if (closed) return;
      const timedOut = Date.now() - started >= req.timeout_milliseconds;
      await sql`insert into net._http_response (id, timed_out, error_msg)
        values (${req.id}, ${timedOut}, ${String(e instanceof Error ? e.message : e)})`.catch(
        () => {},
      );
    }
  }

  async function drain() {
    while (!closed) {
      const batch = await sql<Queued[]>`
        delete from net.http_request_queue
        where id in (select id from net.http_request_queue order by id limit 50 for update skip locked)
        returning id::text, method, url, headers, body, timeout_milliseconds`.catch(() =>
        [] as Queued[]
      );
      if (batch.length === 0) return;
      for (const req of batch) {
        if (toDrop > 0) {
          toDrop--;
          dropped++;
          continue;
        }
        const p = send(req).finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }
  }

  function kick() {
    if (closed || running) return;
    running = drain().finally(() => {
      running = null;
    });
  }

  await sql.listen("net_http_request", () => kick());
  // Notifications are lost while a connection is down: poll too.
  const timer = setInterval(kick, 500);
  kick();
  return {
    drop(n) {
      toDrop += n;
    },
    sent: () => sent,
    dropped: () => dropped,
    async close() {
      closed = true;
      clearInterval(timer);
      closing.abort();
      await running;
      await Promise.allSettled([...inflight]);
      await sql.end({ timeout: 1 });
    },
  };
}
