// Product code reads the time and waits only through the deps' clock (`_shared/clock.ts` holds
// the wall clock), so any of it runs on a clock of a test's own and nothing depends on the date.
import assert from "node:assert/strict";
import { callbackProblem, reportBody } from "../../supabase/functions/call-report/reports.ts";

const root = new URL("../../supabase/functions/", import.meta.url);

/** Ways of reading the time or waiting without a clock. */
const TIME_READS = [
  { what: "Date.now()", pattern: /\bDate\.now\(/ },
  { what: "new Date() of now", pattern: /\bnew Date\(\s*\)/ },
  { what: "a timer", pattern: /\bset(Timeout|Interval)\(/ },
  { what: "performance.now() as a time", pattern: /\bperformance\.timeOrigin\b/ },
];

function timeReads(text: string): string[] {
  const out: string[] = [];
  text.split("\n").forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, "");
    for (const { what, pattern } of TIME_READS) {
      if (pattern.test(code)) out.push(`${i + 1}: ${what}`);
    }
  });
  return out;
}

function* sources(dir: URL): Generator<URL> {
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) yield* sources(new URL(`${e.name}/`, dir));
    else if (e.name.endsWith(".ts")) yield new URL(e.name, dir);
  }
}

Deno.test("no product code reads the time or waits except through the deps' clock", () => {
  const found: string[] = [];
  let files = 0;
  for (const file of sources(root)) {
    if (file.pathname.endsWith("/_shared/clock.ts")) continue;
    files++;
    const rel = file.pathname.slice(root.pathname.length);
    for (const p of timeReads(Deno.readTextFileSync(file))) found.push(`${rel}:${p}`);
  }
  assert.ok(files > 40, `scanned ${files} files`);
  assert.deepEqual(found, []);
});

Deno.test("the time check finds each way of reading the time", () => {
  assert.deepEqual(timeReads("const t = Date.now();\nconst d = new Date();"), [
    "1: Date.now()",
    "2: new Date() of now",
  ]);
  assert.deepEqual(timeReads("await new Promise((r) => setTimeout(r, 5));"), ["1: a timer"]);
  assert.deepEqual(timeReads("new Date(clock.now()); // Date.now() in a comment"), []);
});

Deno.test("a callback is judged against the clock it is given, whatever today's date", () => {
  const hour = 3600_000;
  for (
    const now of [Date.parse("2026-12-01T12:00:00Z"), Date.now(), Date.now() + 366 * 24 * hour]
  ) {
    const body = (at: number) =>
      reportBody(now).safeParse({
        disposition: "callback",
        callbackAt: new Date(at).toISOString(),
      });
    assert.ok(body(now + hour).success, "an hour ahead");
    assert.ok(!body(now - 2 * hour).success, "two hours ago");
    assert.equal(callbackProblem(new Date(now - 2 * hour).toISOString(), now), "is in the past");
  }
});

Deno.test("in the year-ahead run, the clock is at least a year ahead", {
  ignore: !Deno.env.get("CLOCK_AHEAD_OF"),
}, () => {
  const ahead = Date.now() - Number(Deno.env.get("CLOCK_AHEAD_OF"));
  assert.ok(ahead >= 365 * 24 * 3600_000, `the clock is ${ahead} ms ahead`);
});
