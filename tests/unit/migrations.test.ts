// One file per feature: every function, view, table, trigger and policy is created by exactly one
// migration, in its final form, and no migration alters, replaces or drops what another one
// created. Read from the SQL itself (comments, string literals and function bodies left out).
import assert from "node:assert/strict";
import { code, creations, type Found, IDENT, NAME, qualify } from "../../tools/sql_objects.ts";

const dir = new URL("../../supabase/migrations/", import.meta.url);

/** Objects a statement changes after their creation: alter table/view/function, drop. */
function changes(file: string, sql: string): Found[] {
  const found: Found[] = [];
  const alter = new RegExp(
    String
      .raw`\balter\s+(table|view|materialized\s+view|function)\s+(?:if\s+exists\s+)?(?:only\s+)?(${NAME})`,
    "gi",
  );
  for (const m of sql.matchAll(alter)) {
    const kind = m[1].toLowerCase() === "function" ? "function" : "relation";
    found.push({ key: `${kind} ${qualify(m[2])}`, replace: false, file });
  }
  const drop = /\bdrop\s+(table|view|materialized\s+view|function|trigger|policy)\s+([^;]*)/gi;
  for (const m of sql.matchAll(drop)) {
    const kind = m[1].toLowerCase().replace(/^materialized\s+/, "");
    const list = m[2].replace(/\([^)]*\)/g, "").replace(/^\s*if\s+exists\s+/i, "")
      .replace(/\s+(cascade|restrict)\s*$/i, "");
    if (kind === "trigger" || kind === "policy") {
      const on = new RegExp(String.raw`^\s*(${IDENT})\s+on\s+(${NAME})`, "i").exec(list);
      if (on) {
        found.push({
          key: `${kind} ${qualify(on[2])}.${qualify(on[1]).split(".")[1]}`,
          replace: false,
          file,
        });
      }
      continue;
    }
    for (const name of list.split(",")) {
      if (name.trim()) {
        found.push({
          key: `${kind === "function" ? "function" : "relation"} ${qualify(name.trim())}`,
          replace: false,
          file,
        });
      }
    }
  }
  return found;
}

/** Every redefinition, and every change of an object another file created. */
export function problems(files: Map<string, string>): string[] {
  const out: string[] = [];
  const creator = new Map<string, string>();
  const names = [...files.keys()].sort();
  for (const file of names) {
    const sql = code(files.get(file)!);
    for (const c of creations(file, sql)) {
      const first = creator.get(c.key);
      if (first !== undefined) {
        out.push(
          `${c.key}: created in ${first}, ${c.replace ? "replaced" : "created again"} in ${file}`,
        );
      } else {
        creator.set(c.key, file);
      }
    }
  }
  for (const file of names) {
    for (const c of changes(file, code(files.get(file)!))) {
      const first = creator.get(c.key);
      if (first !== undefined && first !== file) {
        out.push(`${c.key}: created in ${first}, altered or dropped in ${file}`);
      }
    }
  }
  return out;
}

function migrations(): Map<string, string> {
  const files = new Map<string, string>();
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name.endsWith(".sql")) {
      files.set(e.name, Deno.readTextFileSync(new URL(e.name, dir)));
    }
  }
  return files;
}

Deno.test("every function, view, table, trigger and policy is created by one migration, and only that one changes it", () => {
  const files = migrations();
  const created = [...files].flatMap(([name, sql]) => creations(name, code(sql)));
  const count = (kind: string) => created.filter((c) => c.key.startsWith(`${kind} `)).length;
  assert.ok(files.size >= 5, `read ${files.size} migrations`);
  assert.ok(count("function") > 50, `found ${count("function")} functions`);
  assert.ok(count("relation") > 30, `found ${count("relation")} tables and views`);
  assert.ok(count("trigger") > 20, `found ${count("trigger")} triggers`);
  assert.ok(count("policy") > 10, `found ${count("policy")} policies`);
  assert.deepEqual(problems(files), []);
});

Deno.test("the check finds a redefinition, a replaced function and a change of another file's table", () => {
  const files = new Map([
    [
      "1_a.sql",
      `create table internal.thing (id int primary key);
       create function internal.touch_thing() returns trigger language plpgsql as $$
       begin
         -- create table internal.other (...) in a body or a comment is not a creation
         return new;
       end $$;
       create trigger touch before update on internal.thing for each row execute function internal.touch_thing();
       create policy owner_read on internal.thing for select using (true);
       alter table internal.thing enable row level security;`,
    ],
    [
      "2_b.sql",
      `create table internal.other (id int);
       -- The same trigger and policy names on another table are other objects.
       create trigger touch before update on internal.other for each row execute function internal.touch_thing();
       create policy owner_read on internal.other for select using (true);
       comment on table internal.other is 'create table internal.thing is only text here';
       create or replace function internal.touch_thing() returns trigger language plpgsql as $$ begin return old; end $$;
       alter table internal.thing add column name text;
       create trigger touch before update on internal.thing for each row execute function internal.touch_thing();
       drop policy owner_read on internal.thing;
       drop table internal.other, internal.thing;`,
    ],
  ]);
  assert.deepEqual(problems(files), [
    "function internal.touch_thing: created in 1_a.sql, replaced in 2_b.sql",
    "trigger internal.thing.touch: created in 1_a.sql, created again in 2_b.sql",
    "relation internal.thing: created in 1_a.sql, altered or dropped in 2_b.sql",
    "policy internal.thing.owner_read: created in 1_a.sql, altered or dropped in 2_b.sql",
    "relation internal.thing: created in 1_a.sql, altered or dropped in 2_b.sql",
  ]);
});

Deno.test("the old history (a view and a function replaced, a table altered, a table dropped) fails it", () => {
  const files = new Map([
    ["20261124000000_core.sql", `create table public.phone_number (id uuid primary key);`],
    [
      "20261124000400_campaigns.sql",
      `create table internal.trunk_pacing (phone_number_id uuid primary key);
       create view public.campaign_progress with (security_invoker = true) as select 1 as n;
       create function internal.tick_campaigns() returns bigint language sql as $$ select 1::bigint $$;`,
    ],
    [
      "20261201000000_dialing.sql",
      `alter table public.phone_number add column carrier_trunk text;
       drop table internal.trunk_pacing;
       create or replace view public.campaign_progress with (security_invoker = true) as select 1 as n, 2 as m;
       CREATE OR REPLACE FUNCTION Internal.Tick_Campaigns() RETURNS bigint LANGUAGE sql AS $f$ select 2::bigint $f$;`,
    ],
  ]);
  assert.deepEqual(problems(files), [
    "function internal.tick_campaigns: created in 20261124000400_campaigns.sql, replaced in 20261201000000_dialing.sql",
    "relation public.campaign_progress: created in 20261124000400_campaigns.sql, replaced in 20261201000000_dialing.sql",
    "relation public.phone_number: created in 20261124000000_core.sql, altered or dropped in 20261201000000_dialing.sql",
    "relation internal.trunk_pacing: created in 20261124000400_campaigns.sql, altered or dropped in 20261201000000_dialing.sql",
  ]);
});
