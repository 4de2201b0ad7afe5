// `deno task test`: boots an isolated stack (its own cluster and ports), runs the pgTAP
// files and every Deno test against it, tears it all down, and prints `N passed, N failed`.
import { psql } from "../supabase/postgres.ts";
import { ROOT, startStack } from "../stack.ts";

const filter = Deno.args;
let passed = 0;
let failed = 0;

async function runPgTap(dbUrl: string) {
  const dir = `${ROOT}/supabase/tests/database`;
  const files = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".test.sql")).map((e) =>
    e.name
  ).sort();
  for (const file of files) {
    let out: string;
    try {
      out = await psql({ url: dbUrl }, { file: `${dir}/${file}` }, ["-t", "-A"]);
    } catch (e) {
      failed++;
      console.log(`not ok - ${file} did not run:\n${e instanceof Error ? e.message : e}`);
      continue;
    }
    const lines = out.split("\n");
    const plan = lines.map((l) => /^1\.\.(\d+)$/.exec(l.trim())).find(Boolean);
    const ok = lines.filter((l) => /^ok \d+/.test(l.trim())).length;
    const notOk = lines.filter((l) => /^not ok \d+/.test(l.trim()));
    passed += ok;
    failed += notOk.length;
    const planned = plan ? Number(plan[1]) : NaN;
    if (planned !== ok + notOk.length) {
      failed++;
      console.log(`not ok - ${file}: planned ${planned} tests, ran ${ok + notOk.length}`);
    }
    const status = notOk.length === 0 && planned === ok ? "ok" : "FAILED";
    console.log(`pgtap ${file} ... ${status} (${ok}/${planned})`);
    if (status !== "ok") console.log(lines.filter((l) => /^(not ok|#)/.test(l.trim())).join("\n"));
  }
}

async function runDenoTests(stackFile: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", ...(filter.length ? filter : ["tests/"])],
    cwd: ROOT,
    env: { STACK_FILE: stackFile },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  await countDenoTests(child, "deno test");
}

/** Echoes a `deno test` run and adds its counts (a run that ends without them is a failure). */
async function countDenoTests(child: Deno.ChildProcess, label: string) {
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    await Deno.stdout.write(chunk);
    tail = (tail + text).slice(-4000);
  }
  const status = await child.status;
  const m = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(tail);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  if (!m || (!status.success && Number(m[2]) === 0)) {
    failed++;
    console.log(`not ok - ${label} exited with code ${status.code}`);
  }
}

/** The tests must not depend on today's date: the unit tests run again with the clock a year ahead. */
const AHEAD = "+366d";

async function runUnitTestsAhead() {
  const faketime = "/usr/bin/faketime";
  try {
    await Deno.stat(faketime);
  } catch {
    failed++;
    console.log(
      "not ok - the unit tests could not run a year ahead: faketime is missing. Run: apt-get install -y faketime",
    );
    return;
  }
  console.log(`\nunit tests again with the clock ${AHEAD} ahead (faketime)`);
  const child = new Deno.Command(faketime, {
    args: ["-f", AHEAD, Deno.execPath(), "test", "-A", "--no-check", "tests/unit/"],
    cwd: ROOT,
    // tests/unit/clock.test.ts checks against it that the clock really is ahead.
    env: { CLOCK_AHEAD_OF: String(Date.now()) },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  await countDenoTests(child, "unit tests a year ahead");
}

/** Tests append `{"metric": value}` lines to <state>/summary.jsonl; the sums are printed at the end. */
function printSummary(file: string) {
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return;
  }
  const totals = new Map<string, number>();
  for (const line of text.split("\n").filter(Boolean)) {
    for (const [k, v] of Object.entries(JSON.parse(line) as Record<string, number>)) {
      totals.set(k, (totals.get(k) ?? 0) + v);
    }
  }
  console.log("\nreliability and security summary");
  for (const [k, v] of totals) console.log(`  ${k.padEnd(40)} ${v}`);
}

/**
 * The console's browser tests (tests/console/) append `{test, passed, chromium}` per test to
 * <state>/console.jsonl; their line, or null when they did not run.
 */
function consoleLine(file: string): string | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return null;
  }
  const results = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const passed = results.filter((r) => r.passed).length;
  const version = results.find((r) => r.chromium)?.chromium ?? "(did not start)";
  return `console: ${passed} browser tests passed in chromium ${version}`;
}

const started = performance.now();
const stack = await startStack({
  name: `test-${Deno.pid}`,
  forceEmulators: true,
  timeScale: 0.001,
  // Tests that measure pacing lower it (tests/helpers/stack.ts setCarrierCps).
  carrierCps: 50,
  reconcileEverySec: 1,
  agentJoinTimeoutSec: 1,
  functionSettings: {
    // The transfer tests' PBX; and limits no test's own fixtures reach (tests that check the
    // limits run the functions with low ones).
    TRANSFER_SIP_HOSTS: "pbx.example.com",
    PROVISIONING_PER_MINUTE_PER_USER: "10000",
    LIVEKIT_REQUESTS_PER_MINUTE_PER_USER: "10000",
  },
});
let interrupted = false;
const onSignal = () => {
  interrupted = true;
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);
try {
  if (filter.length === 0) await runPgTap(stack.info.dbUrl);
  if (!interrupted) await runDenoTests(`${stack.info.stateDir}/stack.json`);
  if (!interrupted && filter.length === 0) await runUnitTestsAhead();
} catch (e) {
  failed++;
  console.log(`not ok - test run aborted: ${e instanceof Error ? e.stack : e}`);
} finally {
  printSummary(`${stack.info.stateDir}/summary.jsonl`);
  const line = consoleLine(`${stack.info.stateDir}/console.jsonl`);
  if (line) console.log(`\n${line}`);
  await stack.stop();
  await Deno.remove(stack.info.stateDir, { recursive: true }).catch(() => {});
}
console.log(`\ntotal time ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 && passed > 0 ? 0 : 1);
