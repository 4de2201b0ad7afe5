// `deno task bench`: boots an isolated stack (its own cluster, emulators at 1/1000 time),
// runs every benchmark against it and prints one table of ratios measured side by side.
// `deno task bench 2 4` runs only rows 2 and 4 (`1c` is a key of its own: row 1 is 1a and 1b).
import { startStack } from "../stack/stack.ts";
import { type Ctx, fmt, type Row, superuser } from "./lib.ts";
import { coldStart } from "./cold_start.ts";
import { functionOverhead } from "./overhead.ts";
import { pacing } from "./pacing.ts";
import { sameWork } from "./same_work.ts";
import { tenants } from "./tenants.ts";
import { overload } from "./overload.ts";
import { hostedLimits } from "./hosted.ts";
import { scale } from "./scale.ts";

// In this order: row 2 runs campaigns the product's way (cron and webhooks on), so it goes
// after the rows that dial quietly.
const ROWS: [string, (ctx: Ctx) => Promise<Row[]>][] = [
  ["1", sameWork],
  ["1c", tenants],
  ["3", overload],
  ["4", functionOverhead],
  ["5", hostedLimits],
  ["6", scale],
  ["2", pacing],
  ["7", coldStart],
];
const byKey = new Map(ROWS);

const wanted = Deno.args.length ? Deno.args : ROWS.map(([k]) => k);
const started = performance.now();
const say = (line: string) => console.log(line);
const meminfo = Deno.readTextFileSync("/proc/meminfo");
const gib = (field: string) =>
  fmt(Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(meminfo)?.[1]) / 2 ** 20, 1);
say(
  `machine: ${navigator.hardwareConcurrency} cores, ${gib("MemTotal")} GiB memory (${
    gib("MemAvailable")
  } GiB available), deno ${Deno.version.deno}, ${new Date().toISOString()}, load average ${
    Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
  }`,
);
// The carrier's own check stays above any budget a row measures (rows set theirs in SQL).
const stack = await startStack({
  name: "bench",
  forceEmulators: true,
  timeScale: 0.001,
  carrierCps: 1000, // the most CARRIER_CPS allows; the emulated carrier enforces it too
  // Fixtures map many numbers per user at once.
  functionSettings: { PROVISIONING_PER_MINUTE_PER_USER: "10000" },
});
const sql = superuser(stack.info);
const ctx: Ctx = { stack, info: stack.info, sql, say };
// Number health judges a number by its ended calls. In the quiet rows answered calls never
// end (no webhooks), so only failures would end and every number would be rested: its
// rules are off for this cluster (a sample no number reaches, no short-call rule).
if ((await sql`select to_regclass('internal.number_health_settings') as t`)[0].t) {
  await sql`update internal.number_health_settings set min_sample = 1000000, short_call_sec = 0`;
}
const rows: Row[] = [];
try {
  for (const key of wanted) {
    const run = byKey.get(key);
    if (!run) throw new Error(`no benchmark row ${key} (rows: ${[...byKey.keys()].join(", ")})`);
    say(`row ${key} ...`);
    const t = performance.now();
    try {
      rows.push(...await run(ctx));
    } catch (e) {
      rows.push({
        id: key,
        what: "(did not run)",
        ratio: null,
        target: "",
        pass: false,
        note: e instanceof Error ? e.message.split("\n")[0] : String(e),
      });
    }
    say(`row ${key} took ${fmt((performance.now() - t) / 1000, 1)} s`);
  }
} finally {
  await sql.end();
  await stack.stop();
}

const header = ["row", "measure", "ratio", "target", "result", "note"];
const cells = rows.map((r) => [
  r.id,
  r.what,
  r.ratio === null ? "-" : fmt(r.ratio),
  r.target,
  r.pass === null ? "info" : r.pass ? "pass" : "FAIL",
  r.note,
]);
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
const line = (c: string[]) => "| " + c.map((x, i) => x.padEnd(widths[i])).join(" | ") + " |";
console.log("");
console.log(line(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const c of cells) console.log(line(c));
console.log(
  `\n${rows.filter((r) => r.pass === true).length} passed, ${
    rows.filter((r) => r.pass === false).length
  } missed; ${fmt((performance.now() - started) / 1000, 0)} s; load average at the end ${
    Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
  }`,
);
