import { startStack } from "../stack/stack.ts";
import { run, makeWorkerUtils } from "npm:graphile-worker@0.16.6";
const t0 = performance.now();
const stack = await startStack({ name: "probe", forceEmulators: true, timeScale: 0.001 });
console.log("stack up", performance.now() - t0);
try {
  const url = stack.info.dbUrl;
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  const N = 5000;
  const t1 = performance.now();
  await utils.withPgClient(async (c) => {
    await c.query(`select graphile_worker.add_jobs(array(select row('noop', '{}'::json, null, null, null, null, null, null, null)::graphile_worker.job_spec from generate_series(1,$1)))`, [N]);
  });
  console.log("added", performance.now() - t1);
  let done = 0;
  let resolve!: () => void;
  const finished = new Promise<void>((r) => resolve = r);
  const t2 = performance.now();
  const runner = await run({ connectionString: url, concurrency: 10, noHandleSignals: true, pollInterval: 1000,
    taskList: { noop: async () => { if (++done === N) resolve(); } } });
  await finished;
  const dt = performance.now() - t2;
  console.log("jobs/s", N / dt * 1000);
  await runner.stop();
  await utils.release();
} finally { await stack.stop(); }
