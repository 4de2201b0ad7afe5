// The yardstick for dispatch throughput: graphile-worker's no-op jobs per second on the
// same PostgreSQL, in a fresh process. `graphile_worker.ts <database url> <jobs>` prints
// `start` when the jobs are queued and the worker starts, then
// {"jobs", "ms", "perSecond", "cpuMs"} (this process's CPU while working).
import process from "node:process";
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const [url, count] = Deno.args;
const jobs = Number(count);
const silent = new Logger(() => () => {});

const utils = await makeWorkerUtils({ connectionString: url, logger: silent });
try {
  await utils.migrate();
  // Queued up front in one statement, so only the worker's claiming and completing is timed.
  await utils.withPgClient((client) =>
    client.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select json_populate_record(null::graphile_worker.job_spec,
                  json_build_object('identifier', 'noop', 'payload', '{}'::json))
         from generate_series(1, $1)))`,
      [jobs],
    )
  );
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);
  console.log("start");
  const cpu = process.cpuUsage();
  const started = performance.now();
  const runner = await run({
    connectionString: url,
    concurrency: 10,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: silent,
    crontab: "",
    taskList: {
      noop: () => {
        if (++done === jobs) finish();
        return Promise.resolve();
      },
    },
  });
  await finished;
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({
    jobs,
    ms,
    perSecond: jobs / (ms / 1000),
    cpuMs: (used.user + used.system) / 1000,
  }));
  await runner.stop();
} finally {
  await utils.release();
}
