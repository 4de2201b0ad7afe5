// Every state machine has one owner: the database. Functions only call its SQL functions
// (campaigns: claim, give back, skip, pause; calls: open, answer, failure, event, reconcile;
// numbers: assign, ready, released, failed; provisioning jobs: claim, done, failed); none
// writes those rows itself.
import assert from "node:assert/strict";

const root = new URL("../../supabase/functions/", import.meta.url);

function* sources(dir: URL): Generator<URL> {
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sources(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

const TABLES = [
  "campaign_calls",
  "campaigns",
  "outbound_calls",
  "phone_number",
  "provisioning_job",
];
const WRITE = new RegExp(
  `\\b(insert\\s+into|update|delete\\s+from)\\s+((public|internal)\\.)?(${TABLES.join("|")})\\b`,
  "gi",
);

Deno.test("campaigns, their calls, outbound calls, numbers and provisioning jobs are written only inside SQL functions, never by a function's TypeScript", () => {
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
  const samples = [
    "await sql`update public.campaign_calls set status = 'queued'`",
    "await tx`update public.outbound_calls set status = ${s}`",
    "await sql`delete from public.outbound_calls where id = ${id}`",
    "await sql`insert into internal.provisioning_job (e164) values (${e})`",
    "await tx`update public.phone_number set assistant_id = ${a}`",
  ];
  for (const sample of samples) assert.equal([...sample.matchAll(WRITE)].length, 1, sample);
});
