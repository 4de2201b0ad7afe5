// The campaign state machine has one owner: the database. Functions only call its SQL
// functions (claim, give back, answered, finished, skip, pause); none writes the rows itself.
import assert from "node:assert/strict";

const root = new URL("../../supabase/functions/", import.meta.url);

function* sources(dir: URL): Generator<URL> {
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sources(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

const WRITE = /\b(insert\s+into|update|delete\s+from)\s+(public\.)?(campaign_calls|campaigns)\b/gi;

Deno.test("campaigns and campaign_calls are written only inside SQL functions, never by a function's TypeScript", () => {
  const writes: string[] = [];
  let files = 0;
  for (const file of sources(root)) {
    files++;
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(WRITE)) {
      const line = text.slice(0, m.index).split("\n").length;
      writes.push(`${file.pathname.split("/functions/")[1]}:${line}: ${m[0]}`);
    }
  }
  assert.ok(files > 20, `read ${files} files`);
  assert.deepEqual(writes, []);
});

Deno.test("the scan finds a direct write when there is one", () => {
  const sample = "await sql`update public.campaign_calls set status = 'queued'`";
  assert.equal([...sample.matchAll(WRITE)].length, 1);
});
