// Prepares the platform as the superuser (`supabase_admin`: platform.sql, then the login roles'
// passwords), then, as the project's `postgres` role (not a superuser, as on Supabase), applies
// supabase/migrations in order (recorded like the Supabase CLI records them), the phone metadata
// (supabase/data/phone_metadata.sql, an idempotent load) and supabase/seed.sql.
import { type Cluster, LOGIN_ROLES, psql } from "./postgres.ts";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;

export async function applyMigrations(
  cluster: Pick<Cluster, "url" | "adminUrl" | "passwords">,
  log: (line: string) => void = () => {},
) {
  const admin = { url: cluster.adminUrl };
  await psql(admin, { file: `${ROOT}/stack/supabase/platform.sql` }, ["--single-transaction"]);
  await psql(admin, {
    sql: LOGIN_ROLES.map((r) => `alter role ${r} password ${literal(cluster.passwords[r])};`)
      .join("\n"),
  });

  // Everything below is what `supabase db push` and the README's psql line do on a project.
  const project = { url: cluster.url };
  await psql(project, {
    sql: `create schema if not exists supabase_migrations;
          create table if not exists supabase_migrations.schema_migrations
            (version text primary key, name text, statements text[]);`,
  });
  const files = [];
  for await (const e of Deno.readDir(`${ROOT}/supabase/migrations`)) {
    if (e.isFile && e.name.endsWith(".sql")) files.push(e.name);
  }
  files.sort();
  for (const name of files) {
    const [version, ...rest] = name.replace(/\.sql$/, "").split("_");
    const done = await psql(project, {
      sql: `select 1 from supabase_migrations.schema_migrations where version = '${version}'`,
    }, ["-t", "-A"]);
    if (done.trim() === "1") continue;
    await psql(project, { file: `${ROOT}/supabase/migrations/${name}` }, [
      "--single-transaction",
    ]);
    await psql(project, {
      sql:
        `insert into supabase_migrations.schema_migrations (version, name) values ('${version}', '${
          rest.join("_")
        }')`,
    });
    log(`applied ${name}`);
  }
  await psql(project, { file: `${ROOT}/supabase/data/phone_metadata.sql` }, [
    "--single-transaction",
  ]);
  await psql(project, { file: `${ROOT}/supabase/seed.sql` });
}
