// `deno task doctor <SUPABASE_URL> <service key>` (or SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY):
// checks a deployed project from the outside, with only its URL and service key, through what
// supabase-js uses: the REST API (the service-only RPC `public.doctor()`, migration
// 20261202001100_doctor.sql) and the functions' HTTP endpoints. It prints one line per check
// (`ok`, `warn` or `FAIL`: what was found, and what to do) and exits 1 when any check fails.
// What is expected (migrations, their objects, the cron jobs, the functions) is read from this
// checkout. No secret is ever printed: the database compares them and answers yes or no, and
// every line is scrubbed of the key and of anything shaped like a credential.
import { code, creations } from "./sql_objects.ts";

export type Status = "ok" | "warn" | "FAIL";

export interface Check {
  /** What was checked: `migrations`, `cron campaign-tick`, `function map-number`, ... */
  name: string;
  status: Status;
  /** What was found. */
  found: string;
  /** What to do about it (warn and FAIL). */
  fix?: string;
}

export interface DoctorOptions {
  url: string;
  serviceKey: string;
  /** The checkout whose migrations, cron jobs and functions are expected (default: this one). */
  root?: string;
  /** How requests are sent (tests send some elsewhere). */
  fetch?: typeof fetch;
  /** Per request; the upstream check gets three times as long. */
  timeoutMs?: number;
}

const DEFAULT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Functions whose callers sign with something else than Supabase keys (a 401 to the service key is right). */
const SIGNED_BY_OTHERS = new Set(["livekit-webhook"]);

// ---------------------------------------------------------------------------------------------
// What this checkout expects.

export interface Expected {
  migrations: { version: string; file: string; objects: string[] }[];
  jobs: string[];
  functions: string[];
}

/** The functions, tables, views, triggers and policies a migration creates, keyed as public.doctor() lists them. */
export function createdObjects(sql: string): string[] {
  return [...new Set(creations("", code(sql)).map((c) => c.key))].sort();
}

/** Migrations (with their objects), cron job names and function names of a checkout. */
export function expectedOf(root = DEFAULT_ROOT): Expected {
  const dir = `${root}/supabase/migrations`;
  const names = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && e.name.endsWith(".sql")).map((e) => e.name).sort();
  const migrations = [];
  const jobs = new Set<string>();
  for (const file of names) {
    const sql = Deno.readTextFileSync(`${dir}/${file}`);
    migrations.push({ version: file.split("_")[0], file, objects: createdObjects(sql) });
    // Scheduled inside function bodies (internal.schedule_jobs), so read from the raw text.
    for (const m of sql.matchAll(/\bcron\.schedule\(\s*'([^']+)'/g)) jobs.add(m[1]);
  }
  const fnDir = `${root}/supabase/functions`;
  const functions = [...Deno.readDirSync(fnDir)]
    .filter((e) => e.isDirectory && !e.name.startsWith("_") && !e.name.startsWith("."))
    .filter((e) => {
      try {
        return Deno.statSync(`${fnDir}/${e.name}/index.ts`).isFile;
      } catch {
        return false;
      }
    })
    .map((e) => e.name).sort();
  return { migrations, jobs: [...jobs].sort(), functions };
}

// ---------------------------------------------------------------------------------------------
// Talking to the project.

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
  text: string;
}

class Client {
  constructor(
    readonly url: string,
    readonly key: string,
    readonly send: typeof fetch,
    readonly timeoutMs: number,
  ) {}

  async request(
    path: string,
    init: { method?: string; body?: unknown; auth?: boolean; headers?: Record<string, string> },
    timeoutMs = this.timeoutMs,
  ): Promise<Answer> {
    const headers: Record<string, string> = { "X-Client-Info": "voice-lines-doctor" };
    if (init.auth !== false) {
      headers.apikey = this.key;
      headers.Authorization = `Bearer ${this.key}`;
    }
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    Object.assign(headers, init.headers ?? {});
    const res = await this.send(`${this.url}${path}`, {
      method: init.method ?? "POST",
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch { /* not JSON */ }
    return { status: res.status, headers: res.headers, body, text };
  }
}

function reason(e: unknown): string {
  if (e instanceof Error) {
    return e.name === "TimeoutError" ? "no answer in time" : `${e.name}: ${e.message}`;
  }
  return String(e);
}

/** `401 unauthenticated: The token is not a JWT.` from any of the error shapes the API uses. */
function describeAnswer(a: Answer): string {
  const b = a.body;
  const code = b?.error?.code ?? b?.code ?? b?.error_code ?? null;
  const message = b?.error?.message ?? b?.message ?? b?.msg ??
    (typeof b?.error === "string" ? b.error : null) ?? a.text.slice(0, 160);
  return `${a.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`;
}

function age(sec: number): string {
  if (!Number.isFinite(sec)) return "?";
  const s = Math.max(0, Math.round(sec));
  if (s < 120) return `${s} s`;
  if (s < 7_200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3_600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `supabase secrets set A=... B=...` for variables as the functions name them ("LIVEKIT_HOST (or LIVEKIT_URL)"). */
function secretsSet(variables: unknown): string {
  const vars = Array.isArray(variables) ? variables.map((v) => String(v).split(" ")[0]) : [];
  return `supabase secrets set ${
    vars.length ? vars.map((v) => `${v}=...`).join(" ") : "(see the message)"
  }`;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const CONFIGURE = (url: string) =>
  `run once in the SQL editor: select internal.configure('${url}', '<service role key>');`;

// ---------------------------------------------------------------------------------------------
// The checks.

// deno-lint-ignore no-explicit-any
type Report = any;

function migrationsCheck(report: Report, expected: Expected): Check {
  const name = "migrations";
  const versions: string[] | null = report.migrations;
  const objects: Set<string> | null = Array.isArray(report.objects)
    ? new Set(report.objects)
    : null;
  const notRecorded = versions
    ? expected.migrations.filter((m) => !versions.includes(m.version))
    : [];
  const incomplete = objects
    ? expected.migrations.map((m) => ({ m, missing: m.objects.filter((o) => !objects.has(o)) }))
      .filter((x) => x.missing.length > 0)
    : [];
  const total = expected.migrations.length;
  const latest = expected.migrations.at(-1)?.file.replace(/\.sql$/, "") ?? "none";
  const fix = "apply them: supabase db push (from this checkout)";
  if (notRecorded.length || incomplete.length) {
    const parts = [];
    if (notRecorded.length) {
      parts.push(`not applied: ${notRecorded.map((m) => m.file.replace(/\.sql$/, "")).join(", ")}`);
    }
    for (const { m, missing } of incomplete) {
      if (notRecorded.includes(m)) continue;
      const what = `${missing.slice(0, 5).join(", ")}${
        missing.length > 5 ? ` and ${missing.length - 5} more` : ""
      }`;
      const file = m.file.replace(/\.sql$/, "");
      parts.push(
        versions
          ? `${file} is recorded as applied but ${what} ${
            missing.length === 1 ? "is" : "are"
          } missing`
          : `${file} is not (fully) applied: ${what} ${
            missing.length === 1 ? "is" : "are"
          } missing`,
      );
    }
    return { name, status: "FAIL", found: parts.join("; "), fix };
  }
  if (!objects) {
    return {
      name,
      status: "warn",
      found: `${
        versions?.length ?? 0
      } of ${total} recorded; the schema objects could not be read (${
        report.objectsError ?? "no answer"
      })`,
      fix: "check that public.doctor() is owned by postgres",
    };
  }
  const objectCount = expected.migrations.reduce((n, m) => n + m.objects.length, 0);
  const known = new Set(expected.migrations.map((m) => m.version));
  const extra = (versions ?? []).filter((v) => !known.has(v));
  const history = versions
    ? `all ${total} applied (latest ${latest})`
    : `all ${total} present by their objects (latest ${latest}; no CLI history: supabase_migrations.schema_migrations is absent)`;
  const found =
    `${history}, ${objectCount} functions, tables, views, triggers and policies present`;
  if (extra.length) {
    return {
      name,
      status: "warn",
      found: `${found}; also applied, not in this checkout: ${extra.join(", ")}`,
      fix: "run the doctor from a checkout that has every applied migration (git pull)",
    };
  }
  return { name, status: "ok", found };
}

function extensionsCheck(report: Report): Check {
  const e = report.extensions ?? {};
  const installed: Record<string, string> = e.installed ?? {};
  const missing = [];
  if (!e.cron) missing.push("pg_cron");
  if (!e.net) missing.push("pg_net");
  if (!e.vault) missing.push("Vault");
  const parts = [
    e.cron ? `pg_cron ${installed.pg_cron ?? ""}`.trim() : null,
    e.net ? `pg_net${installed.pg_net ? ` ${installed.pg_net}` : ""}` : null,
    e.vault ? `Vault${installed.supabase_vault ? ` ${installed.supabase_vault}` : ""}` : null,
  ].filter(Boolean);
  if (missing.length) {
    return {
      name: "extensions",
      status: "FAIL",
      found: `missing: ${missing.join(", ")}${
        parts.length ? ` (present: ${parts.join(", ")})` : ""
      }`,
      fix:
        "enable them (Dashboard > Database > Extensions), then supabase db push and internal.configure",
    };
  }
  return { name: "extensions", status: "ok", found: parts.join(", ") };
}

function configureCheck(report: Report, url: string): Check {
  const name = "internal.configure";
  const c = report.configure ?? {};
  if (c.error) {
    return {
      name,
      status: "FAIL",
      found: `Vault could not be read: ${c.error}`,
      fix: "enable Vault (Dashboard > Database > Extensions), then " + CONFIGURE(url),
    };
  }
  const missing = [
    c.projectUrl?.present ? null : "project_url",
    c.serviceRoleKey?.present ? null : "service_role_key",
  ].filter(Boolean);
  if (missing.length) {
    return {
      name,
      status: "FAIL",
      found: `not done: Vault has no ${
        missing.join(" and no ")
      } (the jobs and triggers call nothing)`,
      fix: CONFIGURE(url),
    };
  }
  const differs = [
    c.projectUrl.matches === false ? `project_url is not ${url}` : null,
    c.serviceRoleKey.matches === false ? "service_role_key is not the key given here" : null,
  ].filter(Boolean);
  if (differs.length) {
    return {
      name,
      status: "warn",
      found: `Vault holds project_url and service_role_key, but ${
        differs.join(" and ")
      } (pg_net calls what Vault holds; the pg_net line says whether the functions accept it)`,
      fix: `if that is not intended, ${CONFIGURE(url)}`,
    };
  }
  return {
    name,
    status: "ok",
    found: `done: Vault holds project_url (${url}) and service_role_key (the key given here)`,
  };
}

/** Seconds between runs for frequent schedules; null for daily and other sparse ones. */
function intervalSec(schedule: string): number | null {
  const seconds = /^\s*(\d+)\s+seconds?\s*$/i.exec(schedule);
  if (seconds) return Number(seconds[1]);
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5 || fields.slice(1).some((f) => f !== "*")) return null;
  if (fields[0] === "*") return 60;
  const every = /^\*\/(\d+)$/.exec(fields[0]);
  return every ? Number(every[1]) * 60 : null;
}

function cronChecks(report: Report, expected: Expected, url: string): Check[] {
  if (!Array.isArray(report.cron)) {
    return [{
      name: "cron",
      status: "FAIL",
      found: report.cronError
        ? `cron.job could not be read: ${report.cronError}`
        : "pg_cron is not installed (no cron.job)",
      fix: "enable pg_cron (Dashboard > Database > Extensions), then " + CONFIGURE(url),
    }];
  }
  const now = Date.parse(report.checkedAt);
  const vaultDone = report.configure?.projectUrl?.present &&
    report.configure?.serviceRoleKey?.present;
  const schedule = vaultDone
    ? "run in the SQL editor: select internal.schedule_jobs();"
    : CONFIGURE(url);
  // deno-lint-ignore no-explicit-any
  const byName = new Map<string, any>(report.cron.map((j: any) => [j.name, j]));
  return expected.jobs.map((jobName): Check => {
    const name = `cron ${jobName}`;
    const job = byName.get(jobName);
    if (!job) return { name, status: "FAIL", found: "not scheduled", fix: schedule };
    const every = `'${job.schedule}'`;
    if (!job.active) {
      return {
        name,
        status: "FAIL",
        found: `scheduled ${every} but inactive`,
        fix: `activate it: ${schedule}`,
      };
    }
    const day = `${plural(job.runsDay, "run")} in the last day, ${job.failedDay} failed`;
    if (!job.last) {
      return {
        name,
        status: "warn",
        found: `scheduled ${every}, not run yet${job.running ? ` (${job.running} starting)` : ""}`,
        fix: intervalSec(job.schedule)
          ? "wait for its first run; if none comes, check that pg_cron's scheduler runs (cron.job_run_details)"
          : "nothing to do until its first run",
      };
    }
    const lastAge = (now - Date.parse(job.last.end ?? job.last.start)) / 1000;
    if (job.last.status === "failed") {
      return {
        name,
        status: "FAIL",
        found: `scheduled ${every}; its last run ${age(lastAge)} ago failed: ${
          (job.last.message ?? "").trim() || "no message"
        } (${day})`,
        fix: "see cron.job_run_details for the job; after fixing the cause its next run shows here",
      };
    }
    const interval = intervalSec(job.schedule);
    if (interval !== null && lastAge > Math.max(10 * interval, 300)) {
      return {
        name,
        status: "FAIL",
        found: `scheduled ${every}, but its last run was ${age(lastAge)} ago`,
        fix:
          "pg_cron is not running it: check the scheduler (cron.job_run_details) and the database's load",
      };
    }
    return {
      name,
      status: "ok",
      found: `scheduled ${every}, last run succeeded ${age(lastAge)} ago (${day})`,
    };
  });
}

// deno-lint-ignore no-explicit-any
function netLabel(r: any): string {
  if (r.status === null || r.status === undefined) {
    return r.timedOut ? "timed out" : `error (${r.error ?? "no answer"})`;
  }
  return `${r.status}${r.code ? ` ${r.code}` : ""}`;
}

function netCheck(report: Report, url: string): Check {
  const name = "pg_net";
  const net = report.net;
  if (!net) {
    return {
      name,
      status: "FAIL",
      found: report.netError
        ? `net._http_response could not be read: ${report.netError}`
        : "pg_net is not installed (no net._http_response)",
      fix: "enable pg_net (Dashboard > Database > Extensions)",
    };
  }
  const responses = net.responses ?? [];
  const queued = Number(net.queued ?? 0);
  const queuedNote = queued ? `, ${queued} queued` : "";
  if (responses.length === 0) {
    return {
      name,
      status: "warn",
      found: `no answers in the last hour${queuedNote}`,
      fix: queued
        ? "requests wait but are not sent: check that pg_net's worker runs (select net.worker_restart())"
        : "the cron jobs call the functions through pg_net: see the cron lines; nothing has run yet",
    };
  }
  const now = Date.parse(report.checkedAt);
  const latest = responses[0];
  const counts = new Map<string, number>();
  for (const r of responses) counts.set(netLabel(r), (counts.get(netLabel(r)) ?? 0) + 1);
  const summary = [...counts].map(([k, n]) => `${n} x ${k}`).join(", ");
  const source = latest.fromFunction || latest.status === null || latest.status === undefined
    ? ""
    : " (not from a function: the gateway's or another URL's)";
  const found = `latest answer ${netLabel(latest)}${source} ${
    age((now - Date.parse(latest.created)) / 1000)
  } ago; last ${responses.length} in the hour: ${summary}${queuedNote}`;
  const fail = (fix: string): Check => ({ name, status: "FAIL", found, fix });
  if (latest.status === null || latest.status === undefined) {
    return fail(
      `pg_net cannot reach ${url}/functions/v1: check the project URL in Vault; ${CONFIGURE(url)}`,
    );
  }
  if (latest.status === 401 || latest.status === 403) {
    return fail(
      `the functions refuse the key pg_net sends: the key stored by internal.configure is not the functions' service key (SUPABASE_SERVICE_ROLE_KEY); ${
        CONFIGURE(url)
      }`,
    );
  }
  if (latest.status === 404) {
    return fail(
      "a called function does not exist there: deploy them (supabase functions deploy), or fix the project URL in Vault",
    );
  }
  if (latest.code === "not_configured") {
    return fail(`the functions are not configured: ${secretsSet(latest.variables)}`);
  }
  if (latest.status >= 500 && latest.status !== 502) {
    return fail(
      `the function failed (${
        latest.message ?? "no message"
      }): see its logs (Dashboard > Edge Functions > Logs)`,
    );
  }
  return { name, status: "ok", found: `reaches the functions: ${found}` };
}

async function functionCheck(client: Client, fn: string): Promise<Check> {
  const name = `function ${fn}`;
  const path = `/functions/v1/${fn}`;
  let preflight: Answer;
  try {
    preflight = await client.request(path, {
      method: "OPTIONS",
      auth: false,
      headers: {
        Origin: "https://doctor.invalid",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info",
      },
    });
  } catch (e) {
    return {
      name,
      status: "FAIL",
      found: `${client.url}${path} cannot be reached (${reason(e)})`,
      fix: "check the project URL",
    };
  }
  const deploy = `deploy it: supabase functions deploy ${fn}`;
  if (preflight.status === 404) {
    return { name, status: "FAIL", found: "not deployed (404)", fix: deploy };
  }
  const cors = (preflight.status === 200 || preflight.status === 204) &&
    preflight.headers.get("access-control-allow-origin") !== null;
  const preflightNote = cors
    ? `CORS preflight ${preflight.status}`
    : `CORS preflight answered ${preflight.status} without CORS headers`;
  let probe: Answer;
  try {
    // A JSON array is no function's request: a configured function refuses it (400, or 403
    // for a user-only one) before doing anything; an unconfigured one answers 503.
    probe = await client.request(path, { body: [] });
  } catch (e) {
    return { name, status: "FAIL", found: `a POST got no answer (${reason(e)})`, fix: deploy };
  }
  const said = describeAnswer(probe);
  if (probe.status === 404) {
    return { name, status: "FAIL", found: `not deployed (POST ${said})`, fix: deploy };
  }
  if (probe.status === 503 && probe.body?.error?.code === "not_configured") {
    return {
      name,
      status: "FAIL",
      found: `deployed, but not configured (${said})`,
      fix: secretsSet(probe.body.error.details?.variables),
    };
  }
  if (probe.status === 401 && !SIGNED_BY_OTHERS.has(fn)) {
    return {
      name,
      status: "FAIL",
      found: `refuses the service key (${said})`,
      fix: client.key.startsWith("sb_")
        ? "the functions take as the service only the keys the platform gives them (SUPABASE_SECRET_KEYS, SUPABASE_SERVICE_ROLE_KEY): use one of the project's current secret keys"
        : "run the doctor with a key the functions take as the service: the project's service_role or sb_secret_ key (Dashboard > Settings > API Keys)",
    };
  }
  if (probe.status >= 500) {
    return {
      name,
      status: "FAIL",
      found: `deployed, but a request fails: ${said}`,
      fix: "see its logs (Dashboard > Edge Functions > Logs)",
    };
  }
  const short = `${probe.status}${probe.body?.error?.code ? ` ${probe.body.error.code}` : ""}`;
  return {
    name,
    status: cors ? "ok" : "warn",
    found: `deployed (${preflightNote}), configured (a malformed request gets ${short})`,
    ...(cors ? {} : { fix: "browsers cannot call it: answer OPTIONS with the CORS headers" }),
  };
}

async function upstreamChecks(client: Client): Promise<Check[]> {
  let a: Answer;
  try {
    a = await client.request(
      "/functions/v1/create-trunks",
      { body: { check: true } },
      client.timeoutMs * 3,
    );
  } catch (e) {
    return [{
      name: "upstreams",
      status: "FAIL",
      found: `create-trunks {check: true} got no answer (${reason(e)})`,
      fix: "see the function line above",
    }];
  }
  if (a.status === 400 && a.body?.error?.details?.fields) {
    return [{
      name: "upstreams",
      status: "warn",
      found: `create-trunks does not know {check: true} (${describeAnswer(a)})`,
      fix: "deploy the current functions (supabase functions deploy create-trunks)",
    }];
  }
  if (a.status !== 200 || !a.body?.check) {
    return [{
      name: "upstreams",
      status: "FAIL",
      found: `create-trunks {check: true} answered ${describeAnswer(a)}`,
      fix: a.body?.error?.code === "not_configured"
        ? secretsSet(a.body.error.details?.variables)
        : "see the function line above",
    }];
  }
  const { livekit, twilio } = a.body.check;
  const out: Check[] = [];
  const notConfigured = (name: string, c: Report): Check => ({
    name,
    status: "FAIL",
    found: `not configured in the functions: ${
      c.message ?? `${(c.variables ?? []).join(", ")} missing`
    }`,
    fix: secretsSet(c.variables),
  });
  if (livekit?.status === "ok") {
    out.push({
      name: "livekit",
      status: "ok",
      found:
        `the functions' credentials list ${livekit.inboundTrunks} inbound and ${livekit.outboundTrunks} outbound SIP trunks`,
    });
  } else if (livekit?.status === "not_configured") {
    out.push(notConfigured("livekit", livekit));
  } else {
    out.push({
      name: "livekit",
      status: "FAIL",
      found: livekit?.message ?? "no answer from the check",
      fix: livekit?.httpStatus === 401 || livekit?.httpStatus === 403
        ? "LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not a key pair of this LiveKit project: supabase secrets set them"
        : "check LIVEKIT_URL (wss://<project>.livekit.cloud): supabase secrets set LIVEKIT_URL=...",
    });
  }
  if (twilio?.status === "ok") {
    const trunk = twilio.trunk
      ? `trunk ${twilio.trunk.sid} (${twilio.trunk.domain})${
        twilio.origination === "ok" ? ", origination to LIVEKIT_SIP_HOST" : ""
      }`
      : null;
    if (!trunk) {
      out.push({
        name: "twilio",
        status: "warn",
        found: `the functions' credentials reach the account; no trunk ${twilio.domain} yet`,
        fix: "nothing to do: it is made when the first number is assigned",
      });
    } else if (twilio.origination === "missing") {
      out.push({
        name: "twilio",
        status: "warn",
        found: `${trunk}: its origination does not send calls to LIVEKIT_SIP_HOST`,
        fix:
          "inbound calls miss LiveKit until provisioning corrects it: run create-trunks for a number",
      });
    } else {
      out.push({
        name: "twilio",
        status: "ok",
        found: `the functions' credentials reach the account; ${trunk}`,
      });
    }
  } else if (twilio?.status === "skipped") {
    out.push({ name: "twilio", status: "ok", found: `not used: ${twilio.reason}` });
  } else if (twilio?.status === "not_configured") {
    out.push(notConfigured("twilio", twilio));
  } else {
    out.push({
      name: "twilio",
      status: "FAIL",
      found: twilio?.message ?? "no answer from the check",
      fix: twilio?.httpStatus === 401
        ? "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are refused: supabase secrets set them"
        : "Twilio could not be reached from the functions; try again, or check TWILIO_BASE_URL if set",
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The run.

/** Every check, in order; stops after the first when the key or the URL does not work. */
export async function doctor(
  opts: DoctorOptions,
  expected = expectedOf(opts.root),
): Promise<Check[]> {
  return (await run(opts, expected)).map((c) => scrub(c, opts.serviceKey));
}

async function run(opts: DoctorOptions, expected: Expected): Promise<Check[]> {
  const url = opts.url.replace(/\/+$/, "");
  const client = new Client(url, opts.serviceKey, opts.fetch ?? fetch, opts.timeoutMs ?? 20_000);
  const checks: Check[] = [];
  const schemas = [
    ...new Set(
      expected.migrations.flatMap((m) => m.objects.map((o) => o.split(" ")[1].split(".")[0])),
    ),
  ];
  let rpc: Answer;
  try {
    rpc = await client.request("/rest/v1/rpc/doctor", {
      body: {
        project_url: url,
        service_key_sha256: await sha256Hex(opts.serviceKey),
        schemas: schemas.length ? schemas : ["public"],
      },
    });
  } catch (e) {
    return [{
      name: "project",
      status: "FAIL",
      found: `${url} cannot be reached (${reason(e)})`,
      fix: "check the URL: https://<project ref>.supabase.co",
    }];
  }
  const code = rpc.body?.code;
  if (code === "42501") {
    return [{
      name: "service key",
      status: "FAIL",
      found: `the REST API takes it, but it is not the service role's (${describeAnswer(rpc)})`,
      fix: "pass the service_role key, not the anon key (Dashboard > Settings > API)",
    }];
  }
  if (rpc.status === 401 || rpc.status === 403) {
    return [{
      name: "service key",
      status: "FAIL",
      found: `the REST API refuses it (${describeAnswer(rpc)})`,
      fix:
        "pass the project's service_role key (Dashboard > Settings > API), not another project's",
    }];
  }
  if (rpc.status === 200 && rpc.body && typeof rpc.body === "object") {
    checks.push({
      name: "service key",
      status: "ok",
      found: "the REST API takes it as service_role",
    });
    const report = rpc.body;
    checks.push(migrationsCheck(report, expected));
    checks.push(extensionsCheck(report));
    checks.push(configureCheck(report, url));
    checks.push(...cronChecks(report, expected, url));
    checks.push(netCheck(report, url));
  } else if (rpc.status === 404 || code === "PGRST202") {
    checks.push({ name: "service key", status: "ok", found: "the REST API takes it" });
    checks.push({
      name: "migrations",
      status: "FAIL",
      found: `public.doctor() is not there (${
        describeAnswer(rpc)
      }): at least 20261202001100_doctor is not applied; cron, pg_net and internal.configure cannot be seen`,
      fix: "apply the migrations: supabase db push (from this checkout)",
    });
  } else {
    return [{
      name: "project",
      status: "FAIL",
      found: `the REST API answered ${describeAnswer(rpc)}`,
      fix: "check the URL and that the project is up (Dashboard)",
    }];
  }
  checks.push(...await Promise.all(expected.functions.map((fn) => functionCheck(client, fn))));
  if (expected.functions.includes("create-trunks")) checks.push(...await upstreamChecks(client));
  return checks;
}

const CREDENTIAL =
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|\bsb_secret_[A-Za-z0-9_-]+|\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g;

function scrubText(text: string, key: string): string {
  const plain = key.length >= 8 ? text.split(key).join("[redacted]") : text;
  return plain.replace(CREDENTIAL, "[redacted]");
}

function scrub(c: Check, key: string): Check {
  return {
    ...c,
    found: scrubText(c.found, key),
    ...(c.fix === undefined ? {} : { fix: scrubText(c.fix, key) }),
  };
}

export function formatCheck(c: Check): string {
  const found = c.found.replace(/[.\s]+$/, "");
  return `${c.status.padEnd(4)}  ${c.name}: ${found}${c.fix ? `. Fix: ${c.fix}` : ""}`;
}

export function summary(checks: Check[]): string {
  const n = (s: Status) => checks.filter((c) => c.status === s).length;
  return `${n("ok")} ok, ${n("warn")} warn, ${n("FAIL")} FAIL`;
}

if (import.meta.main) {
  const [argUrl, argKey] = Deno.args.filter((a) => !a.startsWith("-"));
  const url = argUrl ?? Deno.env.get("SUPABASE_URL");
  const serviceKey = argKey ?? Deno.env.get("SUPABASE_SERVICE_ROLE_KEY");
  if (!url || !serviceKey || Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.error(
      "usage: deno task doctor <SUPABASE_URL> <service role key>\n" +
        "   or: SUPABASE_URL=... SUPABASE_SERVICE_ROLE_KEY=... deno task doctor",
    );
    Deno.exit(2);
  }
  const checks = await doctor({ url, serviceKey });
  for (const c of checks) console.log(formatCheck(c));
  console.log(summary(checks));
  Deno.exit(checks.some((c) => c.status === "FAIL") ? 1 : 0);
}
