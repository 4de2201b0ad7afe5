// Every function deploys with the Supabase CLI alone: when Docker is not running the CLI has the
// platform bundle the function (server-side bundling), which refuses a function over 5 MB (local
// bundling with Docker allows 20 MB). Each function's index.ts is bundled here with this Deno
// and the import map its config.toml section names, as a deploy resolves it, dynamic imports
// inlined; the sizes are printed.
import assert from "node:assert/strict";

/** Supabase says "5 MB" without saying MiB: the decimal reading is the stricter one. */
const LIMIT = 5_000_000;

const supabaseDir = new URL("../../supabase/", import.meta.url);
const functionsDir = new URL("functions/", supabaseDir);

const functions = [...Deno.readDirSync(functionsDir)]
  .filter((e) => e.isDirectory && !e.name.startsWith("_"))
  .map((e) => e.name)
  .sort();

/** Each `[functions.<name>]` section's `import_map`, as written (relative to supabase/). */
function importMaps(toml: string): Map<string, string | null> {
  const maps = new Map<string, string | null>();
  let current: string | null = null;
  for (const line of toml.split("\n")) {
    const section = line.match(/^\s*\[([^\]]+)\]/);
    if (section) {
      current = section[1].startsWith("functions.") ? section[1].slice("functions.".length) : null;
      if (current) maps.set(current, null);
      continue;
    }
    const value = line.match(/^\s*import_map\s*=\s*"([^"]+)"/);
    if (current && value) maps.set(current, value[1]);
  }
  return maps;
}

/** Bundles the functions in one `deno bundle` run per import map; the bytes of each bundle. */
async function bundleSizes(): Promise<Map<string, number>> {
  const maps = importMaps(Deno.readTextFileSync(new URL("config.toml", supabaseDir)));
  const byMap = new Map<string, string[]>();
  for (const name of functions) {
    const map = maps.get(name);
    assert.ok(map, `supabase/config.toml has no [functions.${name}] with an import_map`);
    byMap.set(map, [...byMap.get(map) ?? [], name]);
  }
  const out = await Deno.makeTempDir({ prefix: "bundles-" });
  try {
    const sizes = new Map<string, number>();
    for (const [map, names] of byMap) {
      const dir = `${out}/${sizes.size}`;
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "bundle",
          "--quiet",
          "--platform=deno",
          `--import-map=${new URL(map, supabaseDir).pathname}`,
          `--outdir=${dir}`,
          ...names.map((n) => new URL(`${n}/index.ts`, functionsDir).pathname),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(run.stderr);
      assert.ok(run.success, `deno bundle failed:\n${stderr}`);
      // One file per function: nothing left out of a bundle in a chunk of its own.
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(files, [...names].sort());
      for (const name of names) {
        const file = `${dir}/${name}/index.js`;
        assert.deepEqual([...Deno.readDirSync(`${dir}/${name}`)].map((e) => e.name), ["index.js"]);
        sizes.set(name, Deno.statSync(file).size);
        if (name === "map-number") {
          // The Twilio client (imported on first use) is in the bundle, not measured away.
          assert.ok(
            Deno.readTextFileSync(file).includes("https://trunking.twilio.com"),
            "map-number's bundle should hold the Twilio client",
          );
        }
      }
    }
    return sizes;
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test("every function bundles to under 5 MB, the limit of Supabase's server-side bundling", async () => {
  assert.ok(functions.length >= 11, `found ${functions.length} functions`);
  const sizes = await bundleSizes();
  assert.deepEqual([...sizes.keys()].sort(), functions);
  const mb = (n: number) => (n / 1_000_000).toFixed(2);
  for (const [name, size] of [...sizes].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${name.padEnd(20)} ${mb(size)} MB (${size} bytes)`);
  }
  const over = [...sizes].filter(([, size]) => size >= LIMIT).map(([name, size]) =>
    `${name}: ${mb(size)} MB`
  );
  assert.deepEqual(over, [], `over ${mb(LIMIT)} MB`);
});
