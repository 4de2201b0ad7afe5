// The local stack runs the project as a Supabase project does: the migrations, the functions'
// database work and the tests connect as `postgres`, which is not a superuser and has the
// attributes, memberships and grants a hosted project gives it; pg_cron, pg_net and Vault belong
// to the platform's superuser (`supabase_admin`) and GoTrue's tables to `supabase_auth_admin`.
// So every test run goes the hosted path; anything that only works as a superuser fails here.
import assert from "node:assert/strict";
import postgres from "postgres";
import { call, sql, stack } from "../helpers/stack.ts";

const HOSTED_MEMBERSHIPS = [
  "anon",
  "authenticated",
  "service_role",
  "pg_read_all_data",
  "pg_signal_backend",
  "pg_monitor",
];

Deno.test("the project's connection is postgres, not a superuser, with the hosted attributes", async () => {
  const [me] = await sql`
    select current_user as name, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
           r.rolbypassrls, r.rolcanlogin, current_setting('is_superuser') as is_superuser
    from pg_roles r where r.rolname = current_user`;
  assert.deepEqual(me, {
    name: "postgres",
    rolsuper: false,
    rolcreatedb: true,
    rolcreaterole: true,
    rolreplication: true,
    rolbypassrls: true,
    rolcanlogin: true,
    is_superuser: "off",
  });
  const memberOf = (await sql`
    select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid
    where m.member = 'postgres'::regrole order by 1`).map((r) => r.rolname);
  assert.deepEqual(memberOf, [...HOSTED_MEMBERSHIPS].sort());
  // Only the platform's superuser is one.
  const superusers = (await sql`select rolname from pg_roles where rolsuper order by 1`)
    .map((r) => r.rolname);
  assert.deepEqual(superusers, ["supabase_admin"]);
});

Deno.test("the migrations ran as postgres: it owns every object they created", async () => {
  const [db] = await sql`select pg_get_userbyid(datdba) as owner from pg_database
    where datname = current_database()`;
  assert.equal(db.owner, "postgres");
  const others = await sql`
    select n.nspname || '.' || c.relname as name, pg_get_userbyid(c.relowner) as owner
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'internal', 'supabase_migrations')
      and pg_get_userbyid(c.relowner) <> 'postgres'
    union all
    select p.oid::regprocedure::text, pg_get_userbyid(p.proowner) from pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'internal'::regnamespace)
      and pg_get_userbyid(p.proowner) <> 'postgres'`;
  assert.deepEqual([...others], []);
  const [{ n }] = await sql`select count(*)::int as n from supabase_migrations.schema_migrations`;
  assert.ok(n > 0, "the migrations are recorded");
  // pg_cron's jobs were scheduled by postgres (internal.configure), and run as it.
  const users = (await sql`select distinct username from cron.job order by 1`).map((r) =>
    r.username
  );
  assert.deepEqual(users, ["postgres"]);
});

Deno.test("pg_cron, pg_net and Vault are the platform's; auth's tables are GoTrue's role's", async () => {
  const owners = await sql`
    select 'extension pg_cron' as what, pg_get_userbyid(extowner) as owner
      from pg_extension where extname = 'pg_cron'
    union all
    select 'schema ' || nspname, pg_get_userbyid(nspowner) from pg_namespace
      where nspname in ('cron', 'net', 'vault', 'auth')
    union all
    select 'table auth.' || relname, pg_get_userbyid(relowner) from pg_class
      where relnamespace = 'auth'::regnamespace and relkind = 'r'
    union all
    select 'function ' || p.oid::regprocedure::text, pg_get_userbyid(proowner) from pg_proc p
      where pronamespace = 'auth'::regnamespace
    order by 1`;
  const byWhat = Object.fromEntries(owners.map((o) => [o.what, o.owner]));
  assert.equal(byWhat["extension pg_cron"], "supabase_admin");
  assert.equal(byWhat["schema cron"], "supabase_admin");
  assert.equal(byWhat["schema net"], "supabase_admin");
  assert.equal(byWhat["schema vault"], "supabase_admin");
  assert.equal(byWhat["schema auth"], "supabase_admin");
  assert.equal(byWhat["table auth.users"], "supabase_auth_admin");
  assert.equal(byWhat["function auth.uid()"], "supabase_auth_admin");
  for (const o of owners) {
    assert.notEqual(o.owner, "postgres", `${o.what} is not the project's`);
  }
});

Deno.test("postgres has the hosted grants on the platform's objects, and no more", async () => {
  const refused = async (what: string, q: (tx: postgres.TransactionSql) => Promise<unknown>) => {
    await assert.rejects(
      sql.begin(q),
      (e: { code?: string }) => e.code === "42501",
      `${what} is refused to postgres`,
    );
  };
  // cron.job is read-only (jobs change through cron.schedule/unschedule), auth takes no new
  // objects, Vault's secrets are written only through its functions, and the platform's roles are not its to change.
  await refused("writing cron.job", (tx) => tx`update cron.job set active = active`);
  await refused(
    "a trigger on cron.job_run_details",
    (tx) =>
      tx`create trigger t after insert on cron.job_run_details
       for each row execute function internal.touch()`,
  );
  await refused("creating in auth", (tx) => tx`create table auth.mine (id int)`);
  await refused(
    "writing vault.secrets but through Vault's functions",
    (tx) => tx`insert into vault.secrets (secret) values ('plain')`,
  );
  await refused("altering the superuser", (tx) => tx`alter role supabase_admin nologin`);
  // ALTER SYSTEM cannot run in a transaction: on its own (refused before it changes anything).
  await assert.rejects(
    sql`alter system set work_mem = '8MB'`,
    (e: { code?: string }) => e.code === "42501",
    "ALTER SYSTEM is refused to postgres",
  );
  // What a hosted project allows: Vault through its functions and view, pg_net, auth's tables,
  // cron's functions and run details.
  await assert.rejects(
    sql.begin(async (tx) => {
      const [{ id }] =
        await tx`select vault.create_secret('s3cret', ${`roles-test-${crypto.randomUUID()}`}) as id`;
      const [v] = await tx`select decrypted_secret from vault.decrypted_secrets where id = ${id}`;
      assert.equal(v.decrypted_secret, "s3cret");
      await tx`delete from vault.secrets where id = ${id}`;
      const [{ rid }] = await tx`select net.http_post('http://127.0.0.1:9/none') as rid`;
      assert.ok(Number(rid) > 0);
      await tx`select count(*) from auth.users`;
      await tx`select count(*) from cron.job_run_details`;
      const [{ jobid }] =
        await tx`select cron.schedule('roles-test', '0 0 1 1 *', 'select 1') as jobid`;
      await tx`select cron.unschedule(${jobid}::bigint)`;
      throw new Error("rolled back");
    }),
    /rolled back/,
  );
});

Deno.test("pg_cron can be dropped once the project's jobs are unscheduled", async () => {
  // On Supabase postgres drops it through supautils, which runs a privileged extension's DROP as
  // supabase_admin; the local stack has no supautils, so the test does what it would do.
  const admin = postgres(stack.adminDbUrl!, { max: 1, onnotice: () => {} });
  try {
    await assert.rejects(
      admin.begin(async (tx) => {
        await tx`select cron.unschedule(jobid) from cron.job`;
        await tx`drop extension pg_cron`;
        const [{ n }] = await tx`select count(*)::int as n from pg_extension
          where extname = 'pg_cron'`;
        assert.equal(n, 0);
        throw new Error("rolled back");
      }),
      /rolled back/,
    );
  } finally {
    await admin.end();
  }
  const [{ n }] = await sql`select count(*)::int as n from cron.job`;
  assert.ok(n > 0, "the jobs are still there");
});

Deno.test("the functions and the API stand-ins connect as their hosted roles", async () => {
  // A function that reads the database (campaign-tick, as pg_cron calls it), a REST read and a
  // sign-in attempt, so that each has a connection open.
  const tick = await call("campaign-tick", { token: stack.serviceKey, body: { maxCalls: 1 } });
  assert.equal(tick.status, 200, JSON.stringify(tick.body));
  const headers = { apikey: stack.anonKey, "Content-Type": "application/json" };
  const rest = await fetch(`${stack.supabaseUrl}/rest/v1/assistant?select=id&limit=1`, {
    headers: { apikey: stack.serviceKey, Authorization: `Bearer ${stack.serviceKey}` },
  });
  assert.equal(rest.status, 200, await rest.text());
  const signIn = await fetch(`${stack.supabaseUrl}/auth/v1/token?grant_type=password`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      email: `nobody-${crypto.randomUUID()}@example.com`,
      password: "x-x-x-x",
    }),
  });
  assert.equal(signIn.status, 400, await signIn.text());
  const rows = await sql`select distinct usename::text as role, application_name as app
    from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and application_name in ('edge-functions', 'auth stand-in', 'rest stand-in', 'pg_net worker')
    order by 2`;
  const roleOf = Object.fromEntries(rows.map((r) => [r.app, r.role]));
  assert.equal(roleOf["edge-functions"], "postgres");
  // No connection of the project's runs as the superuser (pg_net's worker is the platform's).
  const superuserApps = await sql`select distinct application_name as app from pg_stat_activity
    where usename = 'supabase_admin' and backend_type = 'client backend'
      and application_name not in ('pg_net worker', 'psql')`;
  assert.deepEqual([...superuserApps], []);
  assert.equal(roleOf["auth stand-in"], "supabase_auth_admin");
  assert.equal(roleOf["rest stand-in"], "authenticator");
});
