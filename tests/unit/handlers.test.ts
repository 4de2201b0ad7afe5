// Every function is thin and built from what it is given: its handler parses, authenticates,
// calls one domain function and answers (under 60 lines, no SQL, no globals), and its index.ts
// only wires the platform's deps to it.
import assert from "node:assert/strict";

const root = new URL("../../supabase/functions/", import.meta.url);

const functions = [...Deno.readDirSync(root)]
  .filter((e) => e.isDirectory && !e.name.startsWith("_"))
  .map((e) => e.name)
  .sort();

/** What a handler must not do: run SQL, or reach for the environment or a shared client. */
const REACHES = [
  { what: "SQL", pattern: /\b(sql|tx)\s*(<[^>]*>)?\s*`/ },
  { what: "a database pool", pattern: /\bdb\(/ },
  { what: "a LiveKit client of its own", pattern: /\bliveKit\(/ },
  { what: "the environment", pattern: /\bDeno\.env\b/ },
  { what: "the wall clock", pattern: /\bDate\.now\(/ },
];

/** What a handler does wrong, one line each. */
function problems(text: string): string[] {
  const out: string[] = [];
  const lines = text.split("\n").length;
  if (lines >= 60) out.push(`${lines} lines`);
  for (const { what, pattern } of REACHES) if (pattern.test(text)) out.push(what);
  return out;
}

Deno.test("every handler is under 60 lines and holds no SQL, env, pool, client or clock", () => {
  assert.ok(functions.length >= 11, `found ${functions.length} functions`);
  const found: string[] = [];
  for (const name of functions) {
    const text = Deno.readTextFileSync(new URL(`${name}/handler.ts`, root));
    for (const p of problems(text)) found.push(`${name}: ${p}`);
  }
  assert.deepEqual(found, []);
});

Deno.test("every index.ts only serves its handler built from the platform's deps", () => {
  const expected = 'import { platformDeps } from "../_shared/deps.ts";\n' +
    'import { handler } from "./handler.ts";\n\nDeno.serve(handler(platformDeps));\n';
  for (const name of functions) {
    assert.equal(Deno.readTextFileSync(new URL(`${name}/index.ts`, root)), expected, name);
  }
});

Deno.test("the handler check finds SQL, globals and length when they are there", () => {
  assert.deepEqual(problems("const [a] = await sql`select 1`;"), ["SQL"]);
  assert.deepEqual(problems("await tx<{ id: string }[]>`select id from x`;"), ["SQL"]);
  assert.deepEqual(problems("const s = db(config.dbUrl); Deno.env.get('X');"), [
    "a database pool",
    "the environment",
  ]);
  assert.deepEqual(problems("liveKit(config); Date.now();"), [
    "a LiveKit client of its own",
    "the wall clock",
  ]);
  assert.deepEqual(problems("x\n".repeat(60)), ["61 lines"]);
  assert.deepEqual(problems("return await tick(ctx, body);"), []);
});
