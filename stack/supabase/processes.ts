// The processes the local stack runs (Linux): every tool it spawns (initdb, pg_ctl, psql,
// runuser, apt-get) runs in a process group of its own, so a Ctrl-C at the terminal reaches only
// the stack's command, which ends them itself (SIGTERM, then SIGKILL after a bound) when it
// stops. The PostgreSQL postmaster detaches itself (pg_ctl start); postgres.ts stops it.

const running = new Map<number, string>();
const refusals = new Set<AbortSignal>();

/**
 * From when `signal` fires, no tool starts but those marked `stopping` (pg_ctl stop), nor a
 * postmaster: a start interrupted by Ctrl-C lets the tool under way finish (initdb or psql
 * killed midway leaves its own children to init) and goes no further, and a stopping stack
 * starts nothing.
 */
export function refuseToolsAfter(signal: AbortSignal): void {
  refusals.add(signal);
}

/** Throws when a refusal fired (see refuseToolsAfter). */
export function assertMayStart(what: string): void {
  if ([...refusals].some((s) => s.aborted)) {
    throw new Error(`not started (the stack is stopping): ${what}`);
  }
}

/** Runs `argv` in its own process group and collects its output; tracked until it exits. */
export async function runTracked(
  argv: string[],
  opts: {
    env?: Record<string, string>;
    stdout?: "piped" | "null";
    stderr?: "piped" | "null";
    stopping?: boolean;
  } = {},
): Promise<Deno.CommandOutput> {
  if (!opts.stopping) assertMayStart(argv.join(" "));
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    stdin: "null",
    stdout: opts.stdout ?? "piped",
    stderr: opts.stderr ?? "piped",
    detached: true,
  }).spawn();
  running.set(child.pid, argv.map((a) => a.slice(a.lastIndexOf("/") + 1)).slice(0, 4).join(" "));
  try {
    return await child.output();
  } finally {
    running.delete(child.pid);
  }
}

/** The tracked tools still running: pid and a short name. */
export function trackedProcesses(): { pid: number; name: string }[] {
  return [...running].map(([pid, name]) => ({ pid, name }));
}

/** Sends `signal` to a process group (errors, such as an exited group, are ignored). */
function signalGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

/** Sends `signal` to a process (errors, such as an exited process, are ignored). */
export function signalProcess(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Whether `pid` runs and is not a zombie (another user's processes count too). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const fields = statFields(pid);
  return fields !== null && fields[0] !== "Z";
}

/** The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or null. */
function statFields(pid: number): string[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Processes whose command line contains `text` (e.g. a postmaster's `-D <data dir>`). */
export function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(text) && processAlive(Number(e.name))) out.push(Number(e.name));
    } catch {
      // exited while reading
    }
  }
  return out;
}

/** Every live descendant of `pid` (children first), read from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const fields = statFields(Number(e.name));
    if (!fields) continue;
    const ppid = Number(fields[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(e.name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Waits until none of `pids` runs, at most `ms`; true when all are gone. */
export async function waitGone(
  pids: number[],
  ms: number,
  hurry?: AbortSignal,
): Promise<boolean> {
  const until = performance.now() + ms;
  for (;;) {
    if (pids.every((p) => !processAlive(p))) return true;
    if (performance.now() >= until || hurry?.aborted) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Ends the tracked tools: SIGTERM to each one (to the tool under runuser, not runuser: runuser
 * then reaps it and exits by itself, where a signaled runuser would wait 2 s and leave its child
 * to init), then SIGKILL to what is left of their process groups after `graceMs` (or at once
 * when `hurry` fires). Returns the names of those it ended.
 */
export async function endTrackedProcesses(
  graceMs = 1000,
  hurry?: AbortSignal,
): Promise<string[]> {
  const procs = trackedProcesses();
  if (procs.length === 0) return [];
  // Only the members of each tool's own group: a postmaster that `pg_ctl start` launched has
  // left it (setsid) and is stopped by its cluster, the PostgreSQL way.
  const groups = procs.map((p) => ({
    leader: p.pid,
    members: descendants(p.pid).filter((d) => statFields(d)?.[2] === String(p.pid)),
  }));
  for (const g of groups) {
    for (const pid of g.members.length > 0 ? g.members : [g.leader]) signalProcess(pid, "SIGTERM");
  }
  const all = groups.flatMap((g) => [g.leader, ...g.members]);
  if (!await waitGone(all, graceMs, hurry)) {
    for (const g of groups) signalGroup(g.leader, "SIGKILL");
    for (const pid of all) signalProcess(pid, "SIGKILL");
    await waitGone(all, 1000);
  }
  return procs.map((p) => p.name);
}
