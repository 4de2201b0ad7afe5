// The REST stand-in driven by supabase-js (postgrest-js): RLS on every exposed table and view
// (the owner sees and changes their rows; another user neither sees nor changes them; anon
// sees nothing), the query features postgrest-js sends, and PostgREST's error shapes.
import assert from "node:assert/strict";
import {
  call,
  freeNumber,
  frontendClient,
  type SignedUpUser,
  signUp,
  sql,
  stack,
} from "../helpers/stack.ts";
import { statusFor } from "../../stack/supabase/rest.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

interface Fixture {
  owner: SignedUpUser;
  stranger: SignedUpUser;
  /** The owner's row of each relation, by its key column. */
  rows: Record<string, { key: string; id: string }>;
  assistantId: string;
  campaignId: string;
}

function ok(what: string, r: { data: unknown; error: unknown }): Json {
  if (r.error) throw new Error(`${what}: ${JSON.stringify(r.error)}`);
  return r.data;
}

let fixture: Promise<Fixture> | null = null;
/** One owner with a row in every exposed relation (made once), and a stranger. */
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const owner = await signUp("rls-owner");
    const stranger = await signUp("rls-stranger");
    const db = owner.client;
    const assistant = ok(
      "assistant",
      await db.from("assistant").insert({ name: "Owner's", agent_name: "owner" }).select()
        .single(),
    );
    // Numbers enter through map-number or the service, never a user's insert.
    const [number] = await sql`insert into public.phone_number (owner_id, e164, label)
      values (${owner.id}, ${await freeNumber()}, 'front desk') returning id, e164`;
    const campaign = ok(
      "campaigns",
      await db.from("campaigns").insert({
        name: "Owner's campaign",
        assistant_id: assistant.id,
        phone_number_id: number.id,
      }).select().single(),
    );
    ok(
      "add_campaign_calls",
      await db.rpc("add_campaign_calls", {
        campaign_id: campaign.id,
        contacts: [{ phoneNumber: "+12125550905", name: "Ada" }],
      }),
    );
    const call = ok(
      "campaign_calls",
      await db.from("campaign_calls").select("id").eq("campaign_id", campaign.id).single(),
    );
    const dnc = ok(
      "do_not_call",
      await db.from("do_not_call").insert({ e164: "+13055550977", reason: "asked" }).select()
        .single(),
    );
    // What only the service writes: a call record and one of its events.
    const [outbound] = await sql`
      insert into public.outbound_calls (owner_id, assistant_id, phone_number_id, campaign_id,
        from_number, to_number, room_name, participant_identity, outbound_trunk_id)
      values (${owner.id}, ${assistant.id}, ${number.id}, ${campaign.id}, ${number.e164},
        '+12125550905', ${`rest-${crypto.randomUUID()}`}, 'callee', 'ST_rest')
      returning id`;
    const [event] = await sql`
      insert into public.call_events (event_id, owner_id, call_id, event, payload, created_at)
      values (${crypto.randomUUID()}, ${owner.id}, ${outbound.id}, 'room_started', '{}', now())
      returning id::text`;
    return {
      owner,
      stranger,
      assistantId: assistant.id,
      campaignId: campaign.id,
      rows: {
        assistant: { key: "id", id: assistant.id },
        phone_number: { key: "id", id: number.id },
        campaigns: { key: "id", id: campaign.id },
        campaign_calls: { key: "id", id: call.id },
        do_not_call: { key: "id", id: dnc.id },
        outbound_calls: { key: "id", id: outbound.id },
        call_events: { key: "id", id: event.id },
        campaign_progress: { key: "campaign_id", id: campaign.id },
      },
    };
  })();
  return fixture;
}

/**
 * Every exposed relation of the public schema, with a change a stranger might try (null where
 * users may not update at all) and whether users may delete and insert.
 */
const RELATIONS: Record<
  string,
  {
    update: Record<string, unknown> | null;
    /** For relations users may not update: a change that must be refused. */
    refused?: Record<string, unknown>;
    del: boolean;
    insert: (fx: Fixture) => Json;
  }
> = {
  assistant: {
    update: { name: "Stolen" },
    del: true,
    insert: (fx) => ({ owner_id: fx.owner.id, name: "Planted", agent_name: "planted" }),
  },
  phone_number: {
    update: { label: "stolen" },
    del: true,
    insert: (fx) => ({ owner_id: fx.owner.id, e164: "+14155550123" }),
  },
  campaigns: {
    update: { name: "Stolen" },
    del: true,
    insert: (fx) => ({ owner_id: fx.owner.id, name: "Planted", assistant_id: fx.assistantId }),
  },
  campaign_calls: {
    update: { name: "Stolen" },
    del: true,
    insert: (fx) => ({ owner_id: fx.owner.id, campaign_id: fx.campaignId, e164: "+12125550906" }),
  },
  do_not_call: {
    update: null,
    refused: { reason: "not asked" },
    del: true,
    insert: (fx) => ({ owner_id: fx.owner.id, e164: "+12125550907" }),
  },
  outbound_calls: {
    update: null,
    refused: { status: "completed" },
    del: false,
    insert: (fx) => ({ owner_id: fx.owner.id }),
  },
  call_events: {
    update: null,
    refused: { event: "room_finished" },
    del: false,
    insert: (fx) => ({ owner_id: fx.owner.id }),
  },
  // A grouped view: PostgreSQL refuses writes to it before privileges are looked at.
  campaign_progress: {
    update: null,
    refused: { name: "x" },
    del: false,
    insert: () => ({ name: "x" }),
  },
};

Deno.test("every relation of the public schema is covered here, and each has RLS or is a security-invoker view", async () => {
  const relations = await sql<{ name: string; kind: string; rls: boolean; invoker: boolean }[]>`
    select c.relname as name, c.relkind::text as kind, c.relrowsecurity as rls,
      coalesce('security_invoker=true' = any(c.reloptions), false) as invoker
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'f')
      and (has_table_privilege('authenticated', c.oid, 'select')
        or has_table_privilege('anon', c.oid, 'select'))
    order by 1`;
  for (const r of relations) {
    assert.ok(r.kind === "v" ? r.invoker : r.rls, `${r.name} is protected by RLS`);
  }
  const known = Object.keys(RELATIONS);
  const missing = relations.map((r) => r.name).filter((n) => !known.includes(n));
  // A relation added later still gets the generic checks below; this names it for a full test.
  if (missing.length) console.warn(`relations without a table-specific RLS test: ${missing}`);
  for (const name of known) {
    assert.ok(relations.some((r) => r.name === name), `${name} is exposed`);
  }
});

Deno.test("anon sees nothing in any relation of the public schema (401 from PostgREST's rule)", async () => {
  const relations = await sql<{ name: string }[]>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'f') order by 1`;
  const anon = frontendClient();
  for (const { name } of relations) {
    const r = await anon.from(name).select("*").limit(1);
    if (r.error) {
      assert.equal(r.status, 401, `${name}: ${JSON.stringify(r.error)}`);
      assert.equal(r.error.code, "42501");
    } else {
      assert.deepEqual(r.data, [], `${name} shows anon nothing`);
    }
  }
});

/** Refused by privileges or RLS (42501: 401 for anon, 403 otherwise); views refuse writes first. */
function refusedAs(name: string, r: { status: number; error: Json }, status: number) {
  if (name === "campaign_progress") {
    assert.ok(r.status >= 400, `writes to the view are refused: ${JSON.stringify(r.error)}`);
    return;
  }
  assert.equal(r.status, status, JSON.stringify(r.error));
  assert.equal(r.error?.code, "42501");
}

for (const [name, spec] of Object.entries(RELATIONS)) {
  Deno.test(`RLS through REST on ${name}: the owner's row is the owner's alone`, async () => {
    const fx = await setup();
    const { key, id } = fx.rows[name];
    const mine = ok("owner select", await fx.owner.client.from(name).select("*").eq(key, id));
    assert.equal(mine.length, 1, "the owner sees it");

    const seen = await fx.stranger.client.from(name).select("*", { count: "exact" }).eq(key, id);
    assert.equal(seen.error, null);
    assert.deepEqual(seen.data, [], "another user does not see it");
    assert.equal(seen.count, 0);
    if ("owner_id" in mine[0]) {
      const all = await fx.stranger.client.from(name).select("*", { count: "exact", head: true })
        .eq("owner_id", fx.owner.id);
      assert.equal(all.count, 0, "none of the owner's rows at all");
    }

    const anon = frontendClient();
    const anonRead = await anon.from(name).select("*").eq(key, id);
    assert.equal(anonRead.status, 401);
    assert.equal(anonRead.error?.code, "42501");

    const before = JSON.stringify(mine[0]);
    if (spec.update) {
      const changed = await fx.stranger.client.from(name).update(spec.update).eq(key, id)
        .select();
      assert.equal(changed.error, null, JSON.stringify(changed.error));
      assert.deepEqual(changed.data, [], "another user's update touches nothing");
    } else {
      const refused = await fx.stranger.client.from(name).update(spec.refused!).eq(key, id);
      refusedAs(name, refused, 403);
    }
    const anonUpdate = await anon.from(name).update(spec.update ?? spec.refused!).eq(key, id);
    refusedAs(name, anonUpdate, 401);

    const removed = await fx.stranger.client.from(name).delete().eq(key, id).select();
    if (spec.del) {
      assert.equal(removed.error, null);
      assert.deepEqual(removed.data, [], "another user's delete touches nothing");
    } else {
      refusedAs(name, removed, 403);
    }

    const planted = await fx.stranger.client.from(name).insert(spec.insert(fx));
    refusedAs(name, planted, 403);

    const after = ok("owner select", await fx.owner.client.from(name).select("*").eq(key, id));
    assert.equal(JSON.stringify(after[0]), before, "the row is unchanged");
  });
}

Deno.test("another user cannot take over a row by upserting its key", async () => {
  const fx = await setup();
  const r = await fx.stranger.client.from("assistant").upsert({
    id: fx.assistantId,
    name: "Mine now",
    agent_name: "thief",
  });
  assert.equal(r.status, 403, JSON.stringify(r.error));
  assert.equal(r.error?.code, "42501");
  const [a] = await sql`select name, owner_id from public.assistant where id = ${fx.assistantId}`;
  assert.equal(a.owner_id, fx.owner.id);
  assert.equal(a.name, "Owner's");
});

/** Four assistants of a fresh user, for the query features. */
async function catalogue() {
  const me = await signUp("query");
  const rows = ok(
    "insert",
    await me.client.from("assistant").insert([
      { name: "alpha one", agent_name: "a1" },
      { name: "beta two", agent_name: "b2" },
      { name: "gamma three", agent_name: "g3" },
      { name: "Delta four", agent_name: "d4" },
    ]).select("id, name"),
  );
  return { me, db: me.client, ids: rows.map((r: Json) => r.id as string) };
}

Deno.test("select: columns, aliases, filters, not, or/and, order, limit, range, count", async () => {
  const { db, ids } = await catalogue();
  const names = (r: { data: Json; error: unknown }) => ok("select", r).map((x: Json) => x.name);

  const aliased = ok(
    "alias",
    await db.from("assistant").select("label:name, agent_name").eq("id", ids[0]),
  );
  assert.deepEqual(aliased, [{ label: "alpha one", agent_name: "a1" }]);
  assert.deepEqual(
    names(await db.from("assistant").select("name").neq("name", "alpha one").order("name")),
    ["Delta four", "beta two", "gamma three"],
  );
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").gt("name", "beta").lt("name", "gamma z").order(
        "name",
      ),
    ),
    ["beta two", "gamma three"],
  );
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").gte("name", "gamma three").lte(
        "name",
        "gamma three",
      ),
    ),
    ["gamma three"],
  );
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").in("agent_name", ["a1", "d4", "zz"]).order("name"),
    ),
    ["Delta four", "alpha one"],
  );
  assert.deepEqual(names(await db.from("assistant").select("name").like("name", "%two")), [
    "beta two",
  ]);
  assert.deepEqual(names(await db.from("assistant").select("name").like("name", "*three")), [
    "gamma three",
  ], "* is %");
  assert.deepEqual(names(await db.from("assistant").select("name").ilike("name", "delta%")), [
    "Delta four",
  ]);
  assert.deepEqual(
    names(await db.from("assistant").select("name").not("agent_name", "in", "(a1,b2,g3)")),
    ["Delta four"],
  );
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").or("agent_name.eq.a1,name.ilike.*four").order(
        "agent_name",
      ),
    ),
    ["alpha one", "Delta four"],
  );
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").or(
        "and(agent_name.eq.b2,name.eq.beta two),agent_name.eq.g3",
      ).order("name"),
    ),
    ["beta two", "gamma three"],
  );
  assert.deepEqual(names(await db.from("assistant").select("name").is("name", null)), []);
  assert.deepEqual(
    names(
      await db.from("assistant").select("name").not("name", "is", null).order("created_at").order(
        "name",
        { ascending: false },
      ).limit(2),
    ),
    ["gamma three", "beta two"],
    "one insert, one created_at: the second key decides",
  );
  assert.deepEqual(
    names(await db.from("assistant").select("name").order("name", { ascending: false })),
    ["gamma three", "beta two", "alpha one", "Delta four"],
  );

  const page = await db.from("assistant").select("name", { count: "exact" }).order("name").range(
    1,
    2,
  );
  assert.equal(page.status, 206);
  assert.equal(page.count, 4);
  assert.deepEqual(page.data!.map((x: Json) => x.name), ["alpha one", "beta two"]);
  const all = await db.from("assistant").select("name", { count: "exact" });
  assert.equal(all.status, 200);
  assert.equal(all.count, 4);
  const head = await db.from("assistant").select("*", { count: "exact", head: true });
  assert.equal(head.count, 4);
  assert.equal(head.data, null);
  const past = await db.from("assistant").select("name", { count: "exact" }).range(10, 12);
  assert.equal(past.status, 416);
  assert.equal(past.error?.code, "PGRST103");

  // Typed values: a timestamp and a uuid compared as their own types.
  const since = await db.from("assistant").select("id").gte("created_at", "2000-01-01T00:00:00Z");
  assert.equal(since.data?.length, 4);
  const bad = await db.from("assistant").select("id").eq("id", "not-a-uuid");
  assert.equal(bad.status, 400);
  assert.equal(bad.error?.code, "22P02");
});

Deno.test("single and maybeSingle: one row as an object, else PostgREST's 406 PGRST116", async () => {
  const { db, ids } = await catalogue();
  const one = await db.from("assistant").select("name").eq("id", ids[1]).single();
  assert.deepEqual(one.data, { name: "beta two" });
  const none = await db.from("assistant").select("name").eq("id", crypto.randomUUID()).single();
  assert.equal(none.status, 406);
  assert.equal(none.error?.code, "PGRST116");
  assert.equal(none.error?.details, "The result contains 0 rows");
  const many = await db.from("assistant").select("name").single();
  assert.equal(many.status, 406);
  assert.equal(many.error?.details, "The result contains 4 rows");
  const maybe = await db.from("assistant").select("name").eq("id", crypto.randomUUID())
    .maybeSingle();
  assert.equal(maybe.error, null);
  assert.equal(maybe.data, null);
  const maybeMany = await db.from("assistant").select("name").maybeSingle();
  assert.equal(maybeMany.status, 406);
  assert.equal(maybeMany.error?.code, "PGRST116");
  // A single-object write that would change two rows changes none.
  const two = await db.from("assistant").update({ name: "renamed" }).in("id", ids.slice(0, 2))
    .select().single();
  assert.equal(two.status, 406);
  const kept = ok(
    "names",
    await db.from("assistant").select("name").in("id", ids.slice(0, 2)).order("name"),
  );
  assert.deepEqual(kept.map((x: Json) => x.name), ["alpha one", "beta two"]);
});

Deno.test("insert, update, delete and upsert: statuses, return=minimal|representation, counts", async () => {
  const { db, ids } = await catalogue();
  const minimal = await db.from("assistant").insert({ name: "quiet", agent_name: "q" });
  assert.equal(minimal.status, 201);
  assert.equal(minimal.data, null);
  const many = await db.from("assistant").insert([{ name: "m1", agent_name: "m1" }, {
    name: "m2",
    agent_name: "m2",
  }], { count: "exact" });
  assert.equal(many.status, 201);
  assert.equal(many.count, 2);

  const updated = await db.from("assistant").update({ name: "alpha renamed" }).eq("id", ids[0])
    .select("id, name");
  assert.equal(updated.status, 200);
  assert.deepEqual(updated.data, [{ id: ids[0], name: "alpha renamed" }]);
  const quietUpdate = await db.from("assistant").update({ agent_name: "a1b" }).eq("id", ids[0]);
  assert.equal(quietUpdate.status, 204);

  const deleted = await db.from("assistant").delete({ count: "exact" }).in("name", ["m1", "m2"]);
  assert.equal(deleted.status, 204);
  assert.equal(deleted.count, 2);
  const unfiltered = await db.from("assistant").delete();
  assert.equal(unfiltered.status, 400);
  assert.equal(unfiltered.error?.code, "21000");
  assert.equal(unfiltered.error?.message, "DELETE requires a WHERE clause");

  // Upsert on the primary key: merge updates, ignore leaves the row as it was.
  const merged = await db.from("assistant").upsert({
    id: ids[1],
    name: "beta merged",
    agent_name: "b2",
  }).select("name");
  assert.equal(merged.status, 200, JSON.stringify(merged.error));
  assert.deepEqual(merged.data, [{ name: "beta merged" }]);
  const fresh = crypto.randomUUID();
  const inserted = await db.from("assistant").upsert({
    id: fresh,
    name: "upserted",
    agent_name: "u",
  }).select("id");
  assert.equal(inserted.status, 201);
  assert.deepEqual(inserted.data, [{ id: fresh }]);
  const ignored = await db.from("assistant").upsert({
    id: ids[2],
    name: "ignored",
    agent_name: "g3",
  }, { ignoreDuplicates: true }).select("name");
  assert.equal(ignored.error, null);
  assert.deepEqual(ignored.data, []);
  // on_conflict on a unique key (do_not_call is unique per owner and number).
  await db.from("do_not_call").insert({ e164: "+13125550100", reason: "first" });
  const dup = await db.from("do_not_call").upsert({ e164: "+13125550100", reason: "second" }, {
    onConflict: "owner_id,e164",
    ignoreDuplicates: true,
  });
  assert.equal(dup.error, null);
  const again = await db.from("do_not_call").insert({ e164: "+13125550100" });
  assert.equal(again.status, 409);
  assert.equal(again.error?.code, "23505");
  const [row] = await sql`select reason from public.do_not_call where e164 = '+13125550100'`;
  assert.equal(row.reason, "first");
});

Deno.test("rpc: add_campaign_calls with JSON arguments; unknown functions and bad arguments fail as PostgREST does", async () => {
  const fx = await setup();
  const r = await fx.owner.client.rpc("add_campaign_calls", {
    campaign_id: fx.campaignId,
    contacts: [{ phoneNumber: "212-555-0911", name: "Bob" }, { phoneNumber: "+12125550905" }],
  });
  assert.equal(r.status, 200);
  assert.deepEqual(
    { added: r.data.added, duplicates: r.data.duplicates, rejected: r.data.rejected },
    { added: 1, duplicates: 1, rejected: [] },
  );
  const stranger = await fx.stranger.client.rpc("add_campaign_calls", {
    campaign_id: fx.campaignId,
    contacts: [{ phoneNumber: "+12125550912" }],
  });
  // Another owner's campaign does not exist for them: raise sqlstate 'PT404' is PostgREST's 404,
  // what import-contacts answers for the same mistake.
  assert.equal(stranger.status, 404);
  assert.equal(stranger.error?.code, "PT404");
  assert.match(stranger.error!.message, new RegExp(`campaign ${fx.campaignId} does not exist`));
  assert.ok(stranger.error?.hint, "the hint says what to check");
  const anon = await frontendClient().rpc("add_campaign_calls", {
    campaign_id: fx.campaignId,
    contacts: [],
  });
  assert.equal(anon.status, 401);
  assert.equal(anon.error?.code, "42501");
  const notArray = await fx.owner.client.rpc("add_campaign_calls", {
    campaign_id: fx.campaignId,
    contacts: "x",
  });
  assert.equal(notArray.status, 400);
  assert.equal(notArray.error?.code, "22023");
  const missing = await fx.owner.client.rpc("add_campaign_calls", { campaign_id: fx.campaignId });
  assert.equal(missing.status, 404);
  assert.equal(missing.error?.code, "PGRST202");
  const unknown = await fx.owner.client.rpc("no_such_function");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.error?.code, "PGRST202");
});

Deno.test("errors: PostgREST's shape and codes; unsupported features are a 400 naming them", async () => {
  const fx = await setup();
  const db = fx.owner.client;
  const table = await db.from("no_such_table").select();
  assert.equal(table.status, 404);
  assert.deepEqual(Object.keys(table.error!).sort(), ["code", "details", "hint", "message"]);
  assert.equal(table.error?.code, "PGRST205");
  const column = await db.from("assistant").select("nope");
  assert.equal(column.status, 400);
  assert.equal(column.error?.code, "42703");
  const bodyColumn = await db.from("assistant").insert({ nope: 1 });
  assert.equal(bodyColumn.status, 400);
  assert.equal(bodyColumn.error?.code, "PGRST204");
  const check = await db.from("assistant").insert({ name: "x", agent_name: "has spaces" });
  assert.equal(check.status, 400);
  assert.equal(check.error?.code, "23514");
  const fk = await fx.stranger.client.from("campaigns").insert({
    name: "x",
    assistant_id: fx.assistantId,
  });
  assert.equal(fk.status, 409);
  assert.equal(fk.error?.code, "23503");
  const embedded = await db.from("campaigns").select("*, assistant(*)");
  assert.equal(embedded.status, 400);
  assert.equal(embedded.error?.code, "PGRST100");
  assert.match(embedded.error!.message, /not supported by the local REST stand-in/);
  const fts = await db.from("assistant").select().textSearch("name", "alpha");
  assert.equal(fts.status, 400);
  assert.match(fts.error!.message, /fts/);
  const csv = await db.from("assistant").select().csv();
  assert.equal(csv.status, 400);
  const other = await fetch(`${stack.supabaseUrl}/rest/v1/assistant`, {
    headers: {
      apikey: stack.anonKey,
      Authorization: `Bearer ${fx.owner.accessToken}`,
      "Accept-Profile": "internal",
    },
  });
  assert.equal(other.status, 406);
  assert.equal((await other.json()).code, "PGRST106");
  const forged = await fetch(`${stack.supabaseUrl}/rest/v1/assistant`, {
    headers: { apikey: stack.anonKey, Authorization: `Bearer ${fx.owner.accessToken}x` },
  });
  assert.equal(forged.status, 401);
  assert.equal((await forged.json()).code, "PGRST301");
  const noKey = await fetch(`${stack.supabaseUrl}/rest/v1/assistant`);
  assert.equal(noKey.status, 401);
  await noKey.body?.cancel();
});

Deno.test("names and values cannot inject SQL: names are checked against the catalogue, values bound", async () => {
  const fx = await setup();
  const db = fx.owner.client;
  const evilName = await db.from("assistant").select('id"; drop table public.do_not_call; --');
  assert.ok(evilName.status >= 400 && evilName.status < 500);
  const evilTable = await db.from('assistant"; drop table public.do_not_call; --').select();
  assert.equal(evilTable.status, 404);
  const evilValue = await db.from("assistant").select("id").eq(
    "name",
    "x'); drop table public.do_not_call; --",
  );
  assert.deepEqual(evilValue.data, []);
  const evilOrder = await db.from("assistant").select("id").order(
    "name; drop table public.do_not_call",
  );
  assert.ok(evilOrder.status >= 400 && evilOrder.status < 500);
  const [{ exists }] = await sql`select to_regclass('public.do_not_call') is not null as exists`;
  assert.equal(exists, true);
});

Deno.test("the service key bypasses RLS, as on Supabase", async () => {
  const fx = await setup();
  const service = await fetch(
    `${stack.supabaseUrl}/rest/v1/assistant?select=owner_id&id=eq.${fx.assistantId}`,
    { headers: { apikey: stack.serviceKey, Authorization: `Bearer ${stack.serviceKey}` } },
  );
  assert.equal(service.status, 200);
  assert.deepEqual(await service.json(), [{ owner_id: fx.owner.id }]);
});

Deno.test("rpc: sets, rows, scalars and void come back as PostgREST returns them; GET and stable functions", async () => {
  await sql.unsafe(`
    create function public.rest_test_table(n int, tag text default 'x')
      returns table (i int, label text) language sql stable as
      $$ select g, tag || g from generate_series(1, n) g $$;
    create function public.rest_test_ints(n int) returns setof int language sql as
      $$ select generate_series(1, n) $$;
    create function public.rest_test_scalar(flag boolean, at timestamptz) returns text
      language sql as $$ select flag::text || ' ' || to_char(at at time zone 'UTC', 'YYYY') $$;
    create function public.rest_test_void() returns void language sql as $$ select $$;
    create function public.rest_test_me() returns uuid language sql stable as
      $$ select auth.uid() $$;`);
  try {
    const me = await signUp("rpc-shapes");
    const db = me.client;
    const table = await db.rpc("rest_test_table", { n: 2 });
    assert.deepEqual(table.data, [{ i: 1, label: "x1" }, { i: 2, label: "x2" }]);
    const tagged = await db.rpc("rest_test_table", { n: 1, tag: "t" }, { get: true });
    assert.deepEqual(tagged.data, [{ i: 1, label: "t1" }]);
    const one = await db.rpc("rest_test_table", { n: 1 }).single();
    assert.deepEqual(one.data, { i: 1, label: "x1" });
    const ints = await db.rpc("rest_test_ints", { n: 3 });
    assert.deepEqual(ints.data, [1, 2, 3]);
    const scalar = await db.rpc("rest_test_scalar", { flag: true, at: "2026-12-01T00:00:00Z" });
    assert.equal(scalar.data, "true 2026", "a boolean argument read as a boolean");
    const falsy = await db.rpc("rest_test_scalar", { flag: false, at: "2026-12-01T00:00:00Z" });
    assert.equal(falsy.data, "false 2026");
    const nothing = await db.rpc("rest_test_void");
    assert.equal(nothing.status, 204);
    assert.equal(nothing.error, null);
    const who = await db.rpc("rest_test_me");
    assert.equal(who.data, me.id, "auth.uid() is the caller inside rpc");
    const anonWho = await frontendClient().rpc("rest_test_me");
    assert.equal(anonWho.data, null);
  } finally {
    await sql.unsafe(`
      drop function public.rest_test_table; drop function public.rest_test_ints;
      drop function public.rest_test_scalar; drop function public.rest_test_void;
      drop function public.rest_test_me;`);
  }
});

Deno.test("boolean and numeric filters compare as their types", async () => {
  const fx = await setup();
  const db = fx.owner.client;
  const n = await db.from("campaigns").select("id").eq("max_attempts", 3).eq("id", fx.campaignId);
  assert.equal(n.data?.length, 1);
  const weekdays = await db.from("campaigns").select("id").contains("weekdays", [1, 5]).eq(
    "id",
    fx.campaignId,
  );
  assert.equal(weekdays.data?.length, 1);
  const meta = await db.from("campaign_calls").select("id").eq("campaign_id", fx.campaignId)
    .contains("variables", {});
  assert.ok((meta.data?.length ?? 0) >= 1);
  const rows = await db.from("campaign_progress").select("campaign_id").eq(
    "campaign_id",
    fx.campaignId,
  ).gte("total", 1).isDistinct("status", "completed");
  assert.equal(rows.data?.length, 1, JSON.stringify(rows.error));
});

Deno.test("a campaign that does not exist for the caller is a 404 on every surface", async () => {
  const fx = await setup();
  const contacts = [{ phoneNumber: "+12125550913" }];
  const rpc = await fx.stranger.client.rpc("add_campaign_calls", {
    campaign_id: fx.campaignId,
    contacts,
  });
  const fn = await call("import-contacts", {
    token: fx.stranger.accessToken,
    body: { campaignId: fx.campaignId, contacts },
  });
  assert.equal(rpc.status, 404, JSON.stringify(rpc.error));
  assert.equal(fn.status, 404, JSON.stringify(fn.body));
  assert.equal(fn.body.error.code, "not_found");
  const missing = await fx.owner.client.rpc("add_campaign_calls", {
    campaign_id: crypto.randomUUID(),
    contacts,
  });
  assert.equal(missing.status, 404, "a campaign that exists for nobody too");
  const [{ n }] = await sql`select count(*)::int as n from public.campaign_calls
    where campaign_id = ${fx.campaignId} and e164 = '+12125550913'`;
  assert.equal(n, 0, "nothing was imported");
});

/** PostgREST's mapSQLtoHTTP (src/PostgREST/Error.hs and its "Errors" page), case by case. */
const POSTGREST_STATUS: [code: string, message: string, role: string, status: number][] = [
  ["23503", "fk", "authenticated", 409],
  ["23505", "unique", "authenticated", 409],
  ["23514", "check", "authenticated", 400],
  ["23502", "not null", "authenticated", 400],
  ["22023", "bad value", "authenticated", 400],
  ["22023", 'role "nobody" does not exist', "authenticated", 401],
  ["22P02", "invalid input syntax", "authenticated", 400],
  ["42501", "permission denied", "authenticated", 403],
  ["42501", "permission denied", "service_role", 403],
  ["42501", "permission denied", "anon", 401],
  ["42883", "function f() does not exist", "authenticated", 404],
  ["42883", "function xmlagg(x) does not exist", "authenticated", 406],
  ["42P01", "relation does not exist", "authenticated", 404],
  ["42P17", "infinite recursion", "authenticated", 500],
  ["42703", "column does not exist", "authenticated", 400],
  ["P0001", "raise", "authenticated", 400],
  ["P0002", "no data found", "authenticated", 500],
  ["P0003", "too many rows", "authenticated", 500],
  ["PT404", "not found", "authenticated", 404],
  ["PT402", "payment required", "authenticated", 402],
  ["PTXYZ", "not a number", "authenticated", 500],
  ["21000", "UPDATE requires a WHERE clause", "authenticated", 400],
  ["21000", "more than one row returned by a subquery", "authenticated", 500],
  ["25006", "read-only transaction", "authenticated", 405],
  ["25P02", "in failed transaction", "authenticated", 500],
  ["28000", "invalid authorization", "authenticated", 403],
  ["0L000", "invalid grantor", "authenticated", 403],
  ["0P000", "invalid role specification", "authenticated", 403],
  ["08006", "connection failure", "authenticated", 503],
  ["09000", "triggered action", "authenticated", 500],
  ["2D000", "invalid transaction termination", "authenticated", 500],
  ["38000", "external routine", "authenticated", 500],
  ["39000", "external routine invocation", "authenticated", 500],
  ["3B000", "savepoint", "authenticated", 500],
  ["40001", "serialization failure", "authenticated", 500],
  ["40P01", "deadlock detected", "authenticated", 500],
  ["53400", "configuration limit exceeded", "authenticated", 500],
  ["53100", "disk full", "authenticated", 503],
  ["54000", "program limit exceeded", "authenticated", 500],
  ["55P03", "lock not available", "authenticated", 500],
  ["57P01", "admin shutdown", "authenticated", 503],
  ["57014", "query canceled", "authenticated", 500],
  ["58030", "io error", "authenticated", 500],
  ["F0000", "config file error", "authenticated", 500],
  ["HV000", "fdw error", "authenticated", 500],
  ["XX000", "internal error", "authenticated", 500],
  ["22012", "division by zero", "authenticated", 400],
];

Deno.test("SQLSTATEs map to HTTP statuses as PostgREST's table does", () => {
  for (const [code, message, role, status] of POSTGREST_STATUS) {
    assert.equal(statusFor(code, message, role), status, `${code} (${message}) as ${role}`);
  }
});

Deno.test("rpc: a raised SQLSTATE reaches supabase-js with PostgREST's status and its message, details and hint", async () => {
  await sql.unsafe(`
    create function public.rest_test_raise(state text, msg text default null, det text default null)
      returns void language plpgsql as $$
      begin
        raise exception using errcode = state, message = coalesce(msg, 'raised ' || state),
          detail = coalesce(det, 'the detail'), hint = 'the hint';
      end $$;
    grant execute on function public.rest_test_raise to anon, authenticated;`);
  try {
    const me = await signUp("rpc-raise");
    const raise = (state: string, msg?: string, det?: string, client = me.client) =>
      client.rpc("rest_test_raise", { state, msg, det });
    for (
      const [state, status] of [
        ["PT404", 404],
        ["PT402", 402],
        ["P0001", 400],
        ["P0002", 500],
        ["22023", 400],
        ["23514", 400],
        ["23503", 409],
        ["23505", 409],
        ["42501", 403],
        ["42883", 404],
        ["42P01", 404],
        ["40001", 500],
      ] as const
    ) {
      const r = await raise(state);
      assert.equal(r.status, status, `${state}: ${JSON.stringify(r.error)}`);
      assert.deepEqual(r.error, {
        code: state,
        message: `raised ${state}`,
        details: "the detail",
        hint: "the hint",
      });
    }
    const anon = await raise("42501", undefined, undefined, frontendClient());
    assert.equal(anon.status, 401, "insufficient privilege is 401 for anon");

    // raise sqlstate 'PGRST': the function sets the whole answer, headers included.
    const url = `${stack.supabaseUrl}/rest/v1/rpc/rest_test_raise`;
    const post = (body: unknown) =>
      fetch(url, {
        method: "POST",
        headers: {
          apikey: stack.anonKey,
          Authorization: `Bearer ${me.accessToken}`,
          "Content-Type": "application/json",
        },
        body: JSON.stringify(body),
      });
    const custom = await post({
      state: "PGRST",
      msg: JSON.stringify({ code: "123", message: "Payment Required", details: "Quota exceeded" }),
      det: JSON.stringify({ status: 402, headers: { "X-Powered-By": "Nerd Rage" } }),
    });
    assert.equal(custom.status, 402);
    assert.equal(custom.headers.get("x-powered-by"), "Nerd Rage");
    assert.deepEqual(await custom.json(), {
      code: "123",
      message: "Payment Required",
      details: "Quota exceeded",
      hint: null,
    });
    const unparsable = await post({ state: "PGRST", msg: "not json" });
    assert.equal(unparsable.status, 500);
    assert.equal((await unparsable.json()).code, "PGRST121");
  } finally {
    await sql.unsafe(`drop function public.rest_test_raise;`);
  }
});

Deno.test("a check constraint's refusal names its columns and what is expected, through supabase-js", async () => {
  const fx = await setup();
  const db = fx.owner.client;
  const backwards = await db.from("campaigns").insert({
    name: "Backwards",
    assistant_id: fx.assistantId,
    window_start: "18:00",
    window_end: "09:00",
  });
  assert.equal(backwards.status, 400);
  assert.equal(backwards.error?.code, "23514");
  assert.match(backwards.error!.message, /window_end must be after window_start/);
  const zero = await db.from("campaigns").update({ max_attempts: 0 }).eq("id", fx.campaignId);
  assert.equal(zero.status, 400);
  assert.match(zero.error!.message, /max_attempts must be between 1 and 10/);
  const meta = await db.from("campaign_calls").update({ timezone: "Mars/Olympus" }).eq(
    "campaign_id",
    fx.campaignId,
  );
  assert.equal(meta.status, 400);
  assert.match(meta.error!.message, /timezone must be a time zone name/);
  const state = await db.from("campaigns").update({ status: "completed" }).eq("id", fx.campaignId);
  assert.equal(state.status, 400, "draft cannot go to completed");
  assert.match(state.error!.message, /cannot go from draft to completed/);
  assert.match(state.error!.hint ?? "", /From draft it can go to: scheduled, running, cancelled/);
});
