// `deno task doctor` against the test stack as a deployed project: only its URL and service key,
// through the REST API and the functions' endpoints. A healthy stack (after pg_cron and pg_net
// have run) is all ok but the daily jobs; a wrong key, an anon key, a missing cron job, a Vault
// key the functions refuse, unconfigured functions and refused upstream credentials each FAIL
// with what to do; no line ever carries a secret.
import { eventually } from "../../stack/poll.ts";
import assert from "node:assert/strict";
import { type Check, doctor, formatCheck } from "../../tools/doctor.ts";
import type { Handler } from "../../supabase/functions/_shared/http.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { setLogSink } from "../../supabase/functions/_shared/log.ts";
import { call, functionDeps, readyAssistant, sql, stack } from "../helpers/stack.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const FREQUENT_JOBS = ["campaign-tick", "provisioning-sweep", "webhook-deliver"];
const DAILY_JOBS = ["cleanup", "webhook-cleanup"];
const FUNCTIONS = [...Deno.readDirSync(`${ROOT}supabase/functions`)]
  .filter((e) => e.isDirectory && !e.name.startsWith("_")).map((e) => e.name).sort();

const SECRETS = [
  stack.serviceKey,
  stack.jwtSecret,
  stack.livekit.apiSecret,
  stack.twilio?.authToken,
].filter((s): s is string => !!s);

function assertNoSecrets(text: string) {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), "a secret is in the output");
  assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\./, "a JWT is in the output");
}

function byName(checks: Check[]): Map<string, Check> {
  const map = new Map(checks.map((c) => [c.name, c]));
  assert.equal(map.size, checks.length, "one line per check");
  return map;
}

function statuses(checks: Check[]): Record<string, string> {
  return Object.fromEntries(checks.map((c) => [c.name, c.status]));
}

function until<T>(what: string, check: () => Promise<T | null | false>, ms = 90_000) {
  return eventually(check, what, ms, 250);
}

/** The newest pg_net answer's status (null: a transport error or none). */
async function newestNetStatus(): Promise<number | null | undefined> {
  const [row] =
    await sql`select status_code from net._http_response order by created desc, id desc limit 1`;
  return row ? row.status_code : undefined;
}

/** A function call through pg_net, as the jobs make them, whose answer has landed. */
async function netCallAnswered(expected: (status: number | null) => boolean) {
  const [{ id }] = await sql`select internal.call_function('webhook-deliver') as id`;
  await until(`pg_net's answer to request ${id}`, async () => {
    const [row] = await sql`select status_code from net._http_response where id = ${id}`;
    return row !== undefined;
  }, 30_000);
  await until("the newest pg_net answer", async () => expected(await newestNetStatus() ?? null));
}

/** Runs the doctor as a CLI; the key goes by argument or (env) by SUPABASE_SERVICE_ROLE_KEY. */
async function cli(key: string, via: "args" | "env") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tools/doctor.ts", ...(via === "args" ? [stack.supabaseUrl, key] : [])],
    cwd: ROOT,
    env: via === "env" ? { SUPABASE_URL: stack.supabaseUrl, SUPABASE_SERVICE_ROLE_KEY: key } : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Requests to /functions/v1/* answered by the handlers built with a changed environment. */
async function functionsWith(overrides: Record<string, string | undefined>): Promise<typeof fetch> {
  const deps: () => Deps = functionDeps(overrides);
  const handlers = new Map<string, Handler>();
  for (const name of FUNCTIONS) {
    const mod = await import(`../../supabase/functions/${name}/handler.ts`);
    handlers.set(name, mod.handler(deps));
  }
  return (input, init) => {
    const req = new Request(input, init);
    const m = /^\/functions\/v1\/([^/?]+)/.exec(new URL(req.url).pathname);
    const h = m && handlers.get(m[1]);
    return h ? h(req) : fetch(req);
  };
}

// The stack's functions and trunks in use (a number provisioned: LiveKit trunks, the Twilio
// trunk), and pg_cron and pg_net having run at least once (pg_cron 1.4 runs them each minute).
let ready: Promise<{ token: string }> | null = null;
function deployed(): Promise<{ token: string }> {
  return ready ??= (async () => {
    const { user } = await readyAssistant("doctor");
    await until("a successful run of every frequent cron job", async () => {
      const rows = await sql`
        select j.jobname from cron.job j
        where exists (select from cron.job_run_details d where d.jobid = j.jobid and d.status = 'succeeded')`;
      const ran = new Set(rows.map((r) => r.jobname));
      return FREQUENT_JOBS.every((j) => ran.has(j));
    });
    await until("a 2xx pg_net answer as the newest", async () => {
      const status = await newestNetStatus();
      return typeof status === "number" && status >= 200 && status < 300;
    });
    return { token: user.token };
  })();
}

Deno.test("a healthy deployment: every check ok, the daily jobs that have not run yet a warn", async () => {
  await deployed();
  const checks = await doctor({ url: stack.supabaseUrl, serviceKey: stack.serviceKey });
  const lines = checks.map(formatCheck).join("\n");
  assertNoSecrets(lines);
  const c = byName(checks);
  const expected: Record<string, string> = {
    "service key": "ok",
    migrations: "ok",
    extensions: "ok",
    "internal.configure": "ok",
    "pg_net": "ok",
    livekit: "ok",
    twilio: "ok",
  };
  for (const job of FREQUENT_JOBS) expected[`cron ${job}`] = "ok";
  for (const fn of FUNCTIONS) expected[`function ${fn}`] = "ok";
  // Daily at 03:17 and 03:29: not run yet, unless this test runs just then.
  for (const job of DAILY_JOBS) {
    const check = c.get(`cron ${job}`)!;
    assert.ok(check, `cron ${job} is checked`);
    if (check.status === "warn") assert.match(check.found, /not run yet/);
    expected[`cron ${job}`] = check.status === "ok" ? "ok" : "warn";
  }
  assert.deepEqual(statuses(checks), expected, lines);

  const migrations = [...Deno.readDirSync(`${ROOT}supabase/migrations`)]
    .filter((e) => e.name.endsWith(".sql"));
  assert.match(c.get("migrations")!.found, new RegExp(`all ${migrations.length} applied`));
  assert.match(c.get("internal.configure")!.found, /project_url .*service_role_key/);
  assert.match(c.get("cron campaign-tick")!.found, /last run succeeded/);
  assert.match(c.get("pg_net")!.found, /^reaches the functions: latest answer [2-4]\d\d/);
  assert.match(c.get("function campaign-tick")!.found, /CORS preflight 204.*400 invalid_request/);
  assert.match(c.get("function map-number")!.found, /403 forbidden/);
  assert.match(c.get("function livekit-webhook")!.found, /401 unauthenticated/);
  assert.match(c.get("livekit")!.found, /[1-9]\d* inbound and [1-9]\d* outbound SIP trunks/);
  assert.match(c.get("twilio")!.found, /trunk TK\w+ \(voice-ai-\w+\.pstn\.twilio\.com\)/);
});

Deno.test("the command prints one line per check and exits 0 when nothing fails (key from the environment)", async () => {
  await deployed();
  const run = await cli(stack.serviceKey, "env");
  assertNoSecrets(run.stdout + run.stderr);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const lines = run.stdout.trim().split("\n");
  assert.match(lines.at(-1)!, /^\d+ ok, \d+ warn, 0 FAIL$/);
  for (const line of lines.slice(0, -1)) assert.match(line, /^(ok {2}|warn|FAIL) {2}[^:]+: /);
  assert.ok(lines.some((l) => l.startsWith("ok    cron campaign-tick: ")), run.stdout);
});

Deno.test("a wrong key fails clearly at once, exit 1; an anon key is named as not the service role's", async () => {
  const wrong = `not-the-key-${crypto.randomUUID()}`;
  const run = await cli(wrong, "args");
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.ok(!run.stdout.includes(wrong) && !run.stderr.includes(wrong), "the key is not printed");
  assert.match(run.stdout, /^FAIL {2}service key: the REST API refuses it \(401/m);
  assert.match(run.stdout, /Fix: pass the project's service_role key/);
  assert.match(run.stdout, /0 ok, 0 warn, 1 FAIL/);

  const anon = await doctor({ url: stack.supabaseUrl, serviceKey: stack.anonKey });
  assert.deepEqual(statuses(anon), { "service key": "FAIL" });
  assert.match(anon[0].found, /not the service role's/);
  assert.ok(!formatCheck(anon[0]).includes(stack.anonKey));
});

Deno.test("migrations: a version not recorded fails; without the CLI's history the objects decide (restored after)", async () => {
  await deployed();
  const check = async () =>
    byName(await doctor({ url: stack.supabaseUrl, serviceKey: stack.serviceKey })).get(
      "migrations",
    )!;
  const [row] = await sql`
    delete from supabase_migrations.schema_migrations where version = '20261202001000' returning *`;
  try {
    const m = await check();
    assert.equal(m.status, "FAIL");
    assert.equal(m.found, "not applied: 20261202001000_leases");
    assert.match(m.fix!, /supabase db push/);
  } finally {
    await sql`insert into supabase_migrations.schema_migrations ${sql(row)}`;
  }
  await sql`alter table supabase_migrations.schema_migrations rename to schema_migrations_away`;
  try {
    const m = await check();
    assert.equal(m.status, "ok", formatCheck(m));
    assert.match(m.found, /all \d+ present by their objects .*no CLI history/);
    await sql`alter function public.add_campaign_calls(uuid, jsonb) rename to add_campaign_calls_away`;
    try {
      const gone = await check();
      assert.equal(gone.status, "FAIL");
      assert.equal(
        gone.found,
        "20261202000300_campaigns is not (fully) applied: function public.add_campaign_calls is missing",
      );
    } finally {
      await sql`alter function public.add_campaign_calls_away(uuid, jsonb) rename to add_campaign_calls`;
    }
  } finally {
    await sql`alter table supabase_migrations.schema_migrations_away rename to schema_migrations`;
  }
  assert.equal((await check()).status, "ok");
});

Deno.test("a cron job missing fails and says how to schedule it (restored after)", async () => {
  await deployed();
  await sql`select cron.unschedule('webhook-cleanup')`;
  try {
    const c = byName(await doctor({ url: stack.supabaseUrl, serviceKey: stack.serviceKey }));
    const job = c.get("cron webhook-cleanup")!;
    assert.equal(job.status, "FAIL");
    assert.equal(job.found, "not scheduled");
    assert.match(job.fix!, /select internal\.schedule_jobs\(\);/);
    assert.notEqual(c.get("cron campaign-tick")!.status, "FAIL");
  } finally {
    await sql`select internal.schedule_jobs()`;
  }
  const [{ n }] =
    await sql`select count(*)::int as n from cron.job where jobname = 'webhook-cleanup'`;
  assert.equal(n, 1);
});

Deno.test("a Vault key the functions refuse: pg_net FAILs on the 401 and names internal.configure (restored after)", async () => {
  await deployed();
  await sql`select internal.put_secret('service_role_key', ${`wrong-${crypto.randomUUID()}`})`;
  try {
    await netCallAnswered((status) => status === 401);
    const checks = await doctor({ url: stack.supabaseUrl, serviceKey: stack.serviceKey });
    assertNoSecrets(checks.map(formatCheck).join("\n"));
    const c = byName(checks);
    const net = c.get("pg_net")!;
    assert.equal(net.status, "FAIL", formatCheck(net));
    assert.match(net.found, /latest answer 401 unauthenticated/);
    assert.match(net.fix!, /not the functions' service key.*internal\.configure\('http/);
    const configure = c.get("internal.configure")!;
    assert.equal(configure.status, "warn");
    assert.match(configure.found, /service_role_key is not the key given here/);
  } finally {
    await sql`select internal.put_secret('service_role_key', ${stack.serviceKey})`;
  }
  await netCallAnswered((status) => status !== null && status >= 200 && status < 300);
  const after = byName(await doctor({ url: stack.supabaseUrl, serviceKey: stack.serviceKey }));
  assert.equal(after.get("pg_net")!.status, "ok");
  assert.equal(after.get("internal.configure")!.status, "ok");
});

Deno.test("the upstream check is the service's alone", async () => {
  const { token } = await deployed();
  const res = await call("create-trunks", { token, body: { check: true } });
  assert.equal(res.status, 403);
  assert.equal(res.body.error.code, "forbidden");
  const service = await call("create-trunks", { token: stack.serviceKey, body: { check: true } });
  assert.equal(service.status, 200);
  assert.equal(service.body.check.livekit.status, "ok");
  assert.equal(service.body.check.twilio.status, "ok");
  assertNoSecrets(JSON.stringify(service.body));
});

Deno.test("functions not configured and upstream credentials refused: FAIL naming the variables and codes", async () => {
  await deployed();
  // The functions run in this process here: their log lines are checked for secrets too.
  const logged: string[] = [];
  setLogSink((line) => logged.push(line));
  try {
    await misconfigured();
  } finally {
    setLogSink(() => {});
  }
  assert.ok(logged.some((l) => l.includes("not_configured")), "the functions logged their 503s");
  assertNoSecrets(logged.join("\n"));
});

async function misconfigured() {
  // The deployed functions with LIVEKIT_API_SECRET unset and a wrong Twilio auth token.
  const missing = await doctor({
    url: stack.supabaseUrl,
    serviceKey: stack.serviceKey,
    fetch: await functionsWith({
      LIVEKIT_API_SECRET: undefined,
      TWILIO_AUTH_TOKEN: "0".repeat(32),
    }),
  });
  const lines = missing.map(formatCheck).join("\n");
  assertNoSecrets(lines);
  const c = byName(missing);
  const webhook = c.get("function livekit-webhook")!;
  assert.equal(webhook.status, "FAIL", lines);
  assert.match(webhook.found, /not configured \(503 not_configured: .*LIVEKIT_API_SECRET/);
  assert.match(webhook.fix!, /supabase secrets set LIVEKIT_API_SECRET=/);
  assert.equal(c.get("function campaign-tick")!.status, "ok", `the others still answer\n${lines}`);
  assert.equal(c.get("livekit")!.status, "FAIL");
  assert.match(c.get("livekit")!.found, /not configured in the functions: LIVEKIT_API_SECRET/);
  assert.match(c.get("livekit")!.fix!, /LIVEKIT_API_SECRET/);
  const twilio = c.get("twilio")!;
  assert.equal(twilio.status, "FAIL");
  assert.match(twilio.found, /Twilio answered 401 \(20003: Authenticate\)/);
  assert.match(twilio.fix!, /TWILIO_ACCOUNT_SID \/ TWILIO_AUTH_TOKEN are refused/);

  // A LiveKit secret that is not the key's, and no database URL: every function 503.
  const wrong = byName(
    await doctor({
      url: stack.supabaseUrl,
      serviceKey: stack.serviceKey,
      fetch: await functionsWith({ LIVEKIT_API_SECRET: "x".repeat(40) }),
    }),
  );
  assert.equal(wrong.get("livekit")!.status, "FAIL");
  assert.match(wrong.get("livekit")!.found, /LiveKit answered 401/);
  assert.equal(wrong.get("twilio")!.status, "ok");
  const noDb = await doctor({
    url: stack.supabaseUrl,
    serviceKey: stack.serviceKey,
    fetch: await functionsWith({ SUPABASE_DB_URL: undefined }),
  });
  for (const fn of FUNCTIONS) {
    const check = noDb.find((x) => x.name === `function ${fn}`)!;
    assert.equal(check.status, "FAIL", formatCheck(check));
    assert.match(check.found, /SUPABASE_DB_URL/);
  }
}
