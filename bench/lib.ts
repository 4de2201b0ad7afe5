// What the benchmarks share: a superuser connection, fixtures made through the product's
// own paths (map-number, the import trigger), bulk queues, a function host in a fresh
// process, and small statistics.
import postgres from "postgres";
import { RoomServiceClient } from "livekit-server-sdk";
import * as fixtures from "../stack/fixtures.ts";
import { freePort } from "../stack/supabase/postgres.ts";
import type { Stack, StackInfo } from "../stack/stack.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

// deno-lint-ignore no-explicit-any
export type Json = any;

export interface Ctx {
  stack: Stack;
  info: StackInfo;
  sql: postgres.Sql;
  say: (line: string) => void;
}

/** One line of the final table. */
export interface Row {
  id: string;
  what: string;
  ratio: number | null;
  target: string;
  pass: boolean | null;
  note: string;
}

export function superuser(info: StackInfo, max = 4): postgres.Sql {
  return postgres(info.adminDbUrl ?? info.dbUrl, { max, onnotice: () => {}, prepare: false });
}

export type User = fixtures.FixtureUser;

export { createAssistant, createUser } from "../stack/fixtures.ts";

/** POSTs to a function through the gateway; status and parsed body. */
export async function callFunction(
  info: StackInfo,
  name: string,
  token: string,
  body: unknown,
  base = `${info.supabaseUrl}/functions/v1`,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}/${name}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

import { eventually } from "../stack/poll.ts";
export { eventually };

export type Line = fixtures.ReadyNumber;

/**
 * Assigns `count` free seeded numbers to the assistant through map-number (the product's
 * path: LiveKit trunks, Twilio trunk), waits for their outbox to drain, sets each budget.
 */
export async function provisionLines(
  ctx: Ctx,
  user: User,
  assistantId: string,
  count: number,
  cps: number,
): Promise<Line[]> {
  const lines: Line[] = await fixtures.readyNumbers(ctx, user, assistantId, count);
  const ids = lines.map((l) => l.id);
  // Budgets belong to the carrier trunk that every number sits on: `cps` per number in all.
  await ctx.sql`insert into internal.carrier_pacing (carrier_trunk, cps)
    select distinct coalesce(carrier_trunk, 'default'), ${cps * lines.length}::numeric
    from public.phone_number where id in ${ctx.sql(ids)}
    on conflict (carrier_trunk) do update set cps = excluded.cps`;
  return lines;
}

export interface CampaignSettings {
  maxConcurrent?: number;
  ringingTimeoutSec?: number;
}

/** A draft campaign that may call at any hour on any day. */
export async function createCampaign(
  ctx: Ctx,
  user: User,
  assistantId: string,
  line: Line,
  name: string,
  s: CampaignSettings = {},
): Promise<string> {
  const row = {
    owner_id: user.id,
    name,
    assistant_id: assistantId,
    phone_number_id: line.id,
    status: "draft",
    window_start: "00:00",
    window_end: "23:59:59",
    weekdays: [1, 2, 3, 4, 5, 6, 7],
    max_concurrent: s.maxConcurrent ?? 1000,
    // The longest the schema allows: at 1/1000 time a ringing timeout is 80 ms of real time,
    // which a loaded event loop must not outlast before the emulated callee answers.
    ringing_timeout_sec: s.ringingTimeoutSec ?? 80,
  };
  const [c] = await ctx.sql<{ id: string }[]>`insert into public.campaigns ${
    ctx.sql(row)
  } returning id`;
  return c.id;
}

/** Callee endings the emulators' outcome table fails (stack/emulators/livekit/call_outcomes.ts). */
export const FAILING_SUFFIXES = ["401", "403", "404", "408", "480", "486", "503", "603"];

/**
 * Queues `count` distinct, valid New York callees that answer (the emulator's outcome table
 * is keyed on the last three digits; the failing ones are left out). `viaTrigger` imports
 * them row by row through the `prepare` trigger, as the product does; otherwise the trigger
 * is disabled for the one insert and its columns are set here (for queues of a million).
 * `from` is where in the area code's sequence of callees they start (0 by default): queues
 * of the same area code starting `count * 1.01 + 21` or more apart share no callee.
 */
export async function queueCalls(
  ctx: Ctx,
  campaignId: string,
  ownerId: string,
  count: number,
  opts: { areaCode?: string; viaTrigger?: boolean; from?: number } = {},
): Promise<void> {
  const area = opts.areaCode ?? "646";
  const from = opts.from ?? 0;
  // <area> 2XX-XXXX upwards: exchanges from 200 keep every number valid for libphonenumber.
  const callees = (q: postgres.Sql | postgres.TransactionSql) =>
    q`
    select '+1' || ${area} || (200 + s / 10000)::text || lpad((s % 10000)::text, 4, '0') as e164
    from generate_series(${from}::int, ${from + Math.ceil(count * 1.01) + 20}::int) s
    where right(lpad((s % 10000)::text, 4, '0'), 3) <> all(${FAILING_SUFFIXES})
    limit ${count}`;
  if (opts.viaTrigger) {
    await ctx.sql`
      insert into public.campaign_calls (campaign_id, owner_id, e164)
      select ${campaignId}, ${ownerId}, n.e164 from (${callees(ctx.sql)}) n`;
    return;
  }
  await ctx.sql.begin(async (tx) => {
    await tx`alter table public.campaign_calls disable trigger prepare`;
    await tx`
      insert into public.campaign_calls (campaign_id, owner_id, e164, status, attempts, timezone, next_attempt_at)
      select ${campaignId}, ${ownerId}, n.e164, 'queued', 0, 'America/New_York',
        now() - interval '1 hour' + row_number() over () * interval '1 millisecond'
      from (${callees(tx)}) n`;
    await tx`alter table public.campaign_calls enable trigger prepare`;
  });
}

export interface EmulatedCall {
  sipCallId: string;
  toNumber: string;
  fromNumber: string;
  startedAt: number;
  endedAt?: number;
  address: string;
  outcome: string;
}

export async function emulatedCalls(info: StackInfo): Promise<EmulatedCall[]> {
  const res = await fetch(`${info.livekit.url}/emulator/state`);
  return (await res.json()).calls;
}

/** LiveKit requests the emulator logged since `sinceMs`, by method. */
export async function livekitRequests(info: StackInfo, sinceMs: number) {
  const res = await fetch(`${info.livekit.url}/emulator/requests`);
  const { requests } = await res.json() as { requests: { ms: number; method: string }[] };
  const by: Record<string, number> = {};
  for (const r of requests) if (r.ms >= sinceMs) by[r.method] = (by[r.method] ?? 0) + 1;
  return by;
}

async function livekitWebhookUrl(ctx: Ctx): Promise<string | null> {
  const res = await fetch(`${ctx.info.livekit.url}/emulator/state`);
  return (await res.json()).knobs.webhookUrl;
}

/**
 * Runs `fn` with only the bench's own ticks dialing: pg_cron's campaign-tick job paused and
 * LiveKit's webhooks off (each finished call would poke another tick and load the same two
 * cores). Calls placed meanwhile stay live in the database. Restores both afterwards.
 */
export async function quietly<T>(ctx: Ctx, fn: () => Promise<T>): Promise<T> {
  const webhookUrl = await livekitWebhookUrl(ctx);
  await ctx.sql`update cron.job set active = false where jobname = 'campaign-tick'`;
  ctx.stack.livekit!.configure({ webhookUrl: null });
  try {
    return await fn();
  } finally {
    await endQuietCalls(ctx);
    ctx.stack.livekit!.configure({ webhookUrl });
    await ctx.sql`update cron.job set active = true where jobname = 'campaign-tick'`;
  }
}

/**
 * The calls a quiet row left live (their webhooks were off) end as reconciliation would end them
 * once their rooms are gone (internal.reconcile_calls), and their rooms are deleted from LiveKit
 * (webhooks still off), so that no later row inherits them: every tick would otherwise check up
 * to 200 of them against LiveKit first, and the emulator would hold thousands of rooms.
 */
async function endQuietCalls(ctx: Ctx) {
  const { url, apiKey, apiSecret } = ctx.info.livekit;
  const rooms = new RoomServiceClient(url, apiKey, apiSecret);
  const names = (await rooms.listRooms()).map((r) => r.name);
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((n) => rooms.deleteRoom(n).catch(() => {})));
  }
  for (let round = 0; round < 200; round++) {
    const live = await ctx.sql<{ id: string }[]>`
      select id from public.outbound_calls where not internal.call_is_final(status) limit 1000`;
    if (live.length === 0) return;
    const seen = live.map((c) => ({ id: c.id, roomExists: false, present: false }));
    await ctx.sql`select count(*) from internal.reconcile_calls(${ctx.sql.json(seen)})`;
  }
}

/**
 * A campaign's finished calls poke campaign-tick through pg_net (debounced by
 * internal.tick_poke); a poke time in the future mutes them, so only the bench's ticks dial.
 */
export async function mutePokes(ctx: Ctx, campaignIds: string[]): Promise<void> {
  await ctx.sql`insert into internal.tick_poke (campaign_id, poked_at)
    select unnest(${campaignIds}::uuid[]), 'infinity'
    on conflict (campaign_id) do update set poked_at = 'infinity'`;
}

/** Status changes without the trigger's poke (starting a campaign would poke a tick). */
export async function setStatusQuietly(
  ctx: Ctx,
  campaignIds: string[],
  status: "running" | "paused" | "cancelled",
): Promise<void> {
  await ctx.sql.begin(async (tx) => {
    await tx`alter table public.campaigns disable trigger changed`;
    await tx`update public.campaigns set status = ${status} where id in ${tx(campaignIds)}
      and status not in ('completed', 'cancelled')`;
    await tx`alter table public.campaigns enable trigger changed`;
  });
}

/**
 * One function served from a fresh Deno process, as the platform runs each function in its
 * own isolate. The environment is the stack's (set on this process by startStack).
 */
export interface FunctionHost {
  url: string;
  pid: number;
  /** Peak resident set size so far (VmHWM), in bytes. */
  peakRss(): number;
  close(): Promise<void>;
}

export async function startFunctionHost(
  ctx: Ctx,
  name: string,
  flags: string[] = [],
  env: Record<string, string> = {},
): Promise<FunctionHost> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, `${ROOT}/bench/fn_host.ts`, name, String(port)],
    cwd: ROOT,
    // The function's own environment, as a deployment's secrets give it.
    env: { ...ctx.stack.functionEnv, ...env },
    stdout: Deno.env.get("BENCH_FN_LOG") ? "inherit" : "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => {
    try {
      const res = await fetch(url, { method: "OPTIONS" });
      await res.body?.cancel();
      return res.status === 204;
    } catch {
      return false;
    }
  }, `${name} to serve in a fresh process`);
  return {
    url,
    pid: child.pid,
    peakRss: () => procStatusKb(child.pid, "VmHWM") * 1024,
    async close() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

export function procStatusKb(pid: number, field: string): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  if (!m) throw new Error(`no ${field} for process ${pid}`);
  return Number(m[1]);
}

/** utime + stime of a process (and, with `children`, of its reaped children), in seconds. */
function cpuOf(pid: number | string, children = false): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  return ticks / 100;
}

export function cpuSeconds(pid: number): number {
  try {
    return cpuOf(pid);
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds the cluster has used so far: every live postgres process, plus what the
 * postmaster has reaped from backends that already exited.
 */
export function postgresCpuSeconds(cluster: { dir: string }): number {
  // A backend that exits mid-reading moves its CPU to the postmaster's reaped children and
  // can be missed or counted twice: three readings, the median.
  return median([0, 1, 2].map(() => postgresCpuOnce(cluster)));
}

function postgresCpuOnce(cluster: { dir: string }): number {
  const postmaster = Number(
    Deno.readTextFileSync(`${cluster.dir}/data/postmaster.pid`).split("\n")[0],
  );
  let total = cpuOf(postmaster, true);
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === postmaster) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) total += cpuOf(e.name);
    } catch { /* exited meanwhile */ }
  }
  return total;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const fmt = (x: number, digits = 2) => Number.isFinite(x) ? x.toFixed(digits) : String(x);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of this process: the LiveKit and Twilio emulators and the gateway run here. */
export const benchCpuSeconds = () => cpuSeconds(Deno.pid);

export interface ChildRun {
  result: Json;
  /** Postgres and this process's (the emulators') CPU seconds between `start` and the result. */
  postgresSec: number;
  emulatorSec: number;
  /** Date.now() when the child printed `start`. */
  startedAt: number;
}

/**
 * Runs a bench script in a fresh process that prints `start` when its measured work begins
 * and one JSON line when it ends; `stdin` is written to it first.
 */
export async function runChild(ctx: Ctx, args: string[], stdin?: string): Promise<ChildRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  let pg0 = NaN, em0 = NaN, startedAt = NaN;
  let out: ChildRun | null = null;
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === "start") {
        startedAt = Date.now();
        pg0 = postgresCpuSeconds(ctx.stack.cluster);
        em0 = benchCpuSeconds();
      } else if (line.startsWith("{")) {
        out = {
          result: JSON.parse(line),
          postgresSec: postgresCpuSeconds(ctx.stack.cluster) - pg0,
          emulatorSec: benchCpuSeconds() - em0,
          startedAt,
        };
      }
    }
  }
  if (!(await child.status).success || !out) throw new Error(`${args[0]} failed`);
  return out;
}

/**
 * Calls of each internal.* function so far, and the time spent in each (ms, including the
 * functions it calls) (pg_stat_user_functions; track_functions is turned on for the bench's
 * own cluster the first time). Statistics reach the view once the backends flush them, at
 * most a second after their transaction.
 */
export interface FunctionStats {
  calls: Record<string, number>;
  ms: Record<string, number>;
}
export async function functionStats(ctx: Ctx): Promise<FunctionStats> {
  const [{ track_functions }] = await ctx.sql<{ track_functions: string }[]>`show track_functions`;
  if (track_functions !== "pl") {
    await ctx.sql`alter system set track_functions = 'pl'`;
    await ctx.sql`select pg_reload_conf()`;
    await sleep(200);
  }
  await sleep(1200);
  const rows = await ctx.sql<{ funcname: string; calls: string; ms: number }[]>`
    select funcname, calls, total_time as ms from pg_stat_user_functions where schemaname = 'internal'`;
  return {
    calls: Object.fromEntries(rows.map((r) => [r.funcname, Number(r.calls)])),
    ms: Object.fromEntries(rows.map((r) => [r.funcname, Number(r.ms)])),
  };
}

/** Sets the carrier trunks' budgets of these numbers to `cps` in all, with no slot taken yet. */
export async function setBudget(ctx: Ctx, lines: Line[], cps: number): Promise<void> {
  const trunks = ctx.sql`select coalesce(carrier_trunk, 'default') from public.phone_number
      where id in ${ctx.sql(lines.map((l) => l.id))}`;
  await ctx.sql`update internal.carrier_pacing set cps = ${cps}, next_slot = 'epoch',
      backoff_level = 0, backoff_until = null
    where carrier_trunk in (${trunks})`;
  await ctx.sql`delete from internal.carrier_plan where carrier_trunk in (${trunks})`;
}

/** Round trips a client makes to PostgreSQL, counted by a proxy in front of it. */
export interface PgCounter {
  url: string;
  /** Sync and simple Query messages: one round trip each. */
  roundTrips(): number;
  /** Round trips by the statement's first words. */
  byStatement(): Map<string, number>;
  reset(): void;
  close(): void;
}

/**
 * A TCP proxy in front of the stack's PostgreSQL that reads the frontend's messages:
 * each Sync (extended protocol), Flush (the client waits for what it asked, such as a
 * statement's description) or Query (simple protocol) is one round trip, and the text of
 * each Parse or Query names the statement.
 */
export function startPgCounter(dbUrl: string): PgCounter {
  const target = new URL(dbUrl);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let trips = 0;
  const statements = new Map<string, number>();
  const name = (text: string) =>
    text.replace(/\s+/g, " ").trim().replace(/\$\d+|'[^']*'/g, "?").slice(0, 70);
  const note = (text: string) => statements.set(text, (statements.get(text) ?? 0) + 1);
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const client of listener) {
      conns.add(client);
      (async () => {
        const server = await Deno.connect({
          hostname: target.hostname,
          port: Number(target.port || 5432),
        });
        conns.add(server);
        server.readable.pipeTo(client.writable).catch(() => {});
        let buf = new Uint8Array(0);
        let startup = true;
        let pending: string | null = null;
        const dec = new TextDecoder();
        const w = server.writable.getWriter();
        try {
          for await (const chunk of client.readable) {
            await w.write(chunk);
            const joined = new Uint8Array(buf.length + chunk.length);
            joined.set(buf);
            joined.set(chunk, buf.length);
            buf = joined;
            for (;;) {
              const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
              if (startup) {
                if (buf.length < 8) break;
                const len = dv.getUint32(0);
                if (buf.length < len) break;
                // An SSLRequest is followed by another untyped startup message.
                startup = dv.getUint32(4) === 80877103;
                buf = buf.slice(len);
                continue;
              }
              if (buf.length < 5) break;
              const len = dv.getUint32(1);
              if (buf.length < len + 1) break;
              const type = String.fromCharCode(buf[0]);
              const body = buf.subarray(5, len + 1);
              if (type === "P") {
                const nameEnd = body.indexOf(0);
                pending = name(
                  dec.decode(body.subarray(nameEnd + 1, body.indexOf(0, nameEnd + 1))),
                );
              } else if (type === "S") {
                trips++;
                note(pending ?? "(sync)");
                pending = null;
              } else if (type === "H") {
                trips++;
                note(`${pending ?? "(statement)"} (described first)`);
              } else if (type === "Q") {
                trips++;
                note(name(dec.decode(body.subarray(0, body.indexOf(0)))));
              }
              buf = buf.slice(len + 1);
            }
          }
        } catch { /* connection closed */ }
        try {
          server.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  const url = new URL(dbUrl);
  url.hostname = "127.0.0.1";
  url.port = String((listener.addr as Deno.NetAddr).port);
  return {
    url: url.toString(),
    roundTrips: () => trips,
    byStatement: () => new Map(statements),
    reset() {
      trips = 0;
      statements.clear();
    },
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}
