// Applies Supabase's stand-ins, then supabase/migrations in order (recorded like the
// Supabase CLI records them), then the phone metadata (supabase/data/phone_metadata.sql, an
// idempotent load), then supabase/seed.sql.
import { psql } from "./postgres.ts";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

export async function applyMigrations(dbUrl: string, log: (line: string) => void = () => {}) {
  await psql({ url: dbUrl }, { file: `${ROOT}/stack/supabase/platform.sql` });
  await psql({ url: dbUrl }, {
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
    const done = await psql({ url: dbUrl }, {
      sql: `select 1 from supabase_migrations.schema_migrations where version = '${version}'`,
    }, ["-t", "-A"]);
    if (done.trim() === "1") continue;
    await psql({ url: dbUrl }, { file: `${ROOT}/supabase/migrations/${name}` }, [
      "--single-transaction",
    ]);
    await psql({ url: dbUrl }, {
      sql:
        `insert into supabase_migrations.schema_migrations (version, name) values ('${version}', '${
          rest.join("_")
        }')`,
    });
    log(`applied ${name}`);
  }
  await psql({ url: dbUrl }, { file: `${ROOT}/supabase/data/phone_metadata.sql` }, [
    "--single-transaction",
  ]);
  await psql({ url: dbUrl }, { file: `${ROOT}/supabase/seed.sql` });
}
