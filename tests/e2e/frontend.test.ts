// A frontend with @supabase/supabase-js alone: the README's "Using it from a frontend" flow
// end to end (sign up, assistant, number, campaign, contacts, progress), the Auth stand-in's
// session lifecycle as auth-js sees it, and a double-clicked first map-number.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import {
  eventually,
  freeNumber,
  frontendClient,
  livekitState,
  outboxDrained,
  signUp,
  sql,
  stack,
} from "../helpers/stack.ts";
import { ok, startCampaign } from "../helpers/frontend.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("the README's frontend flow: sign up, assistant, number, campaign, contacts, start, progress until completed", async () => {
  const supabase = createClient(stack.supabaseUrl, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const email = `me-${Date.now()}@example.com`;
  ok(await supabase.auth.signUp({ email, password: "a-long-password" }));

  const { campaign, imported } = await startCampaign(supabase, await freeNumber(), [
    { phoneNumber: "+1 212 555 0905", name: "Ada" },
    { phoneNumber: "+1 212 555 1910", name: "Grace" },
    { phoneNumber: "+1 312 555 0486", name: "Linus" },
    { phoneNumber: "not a number" },
  ]);
  assert.deepEqual(
    { added: imported.added, duplicates: imported.duplicates, rejected: imported.rejected.length },
    { added: 3, duplicates: 0, rejected: 1 },
  );

  const progress = await eventually(
    async () => {
      const p = ok(
        await supabase.from("campaign_progress").select("*").eq("campaign_id", campaign.id)
          .single(),
      );
      return p.status === "completed" ? p : null;
    },
    "the campaign to complete",
    30_000,
  );
  assert.equal(progress.total, 3);
  assert.equal(progress.completed, 2);
  assert.equal(progress.busy, 1);
  assert.equal(progress.attempts, 3);

  const calls = ok(
    await supabase.from("campaign_calls").select("e164, status, last_outcome")
      .eq("campaign_id", campaign.id).order("e164"),
  );
  assert.deepEqual(calls.map((c: Json) => [c.e164, c.status]), [
    ["+12125550905", "completed"],
    ["+12125551910", "completed"],
    ["+13125550486", "busy"],
  ]);
  const placed = ok(
    await supabase.from("outbound_calls").select("to_number, status", { count: "exact" })
      .eq("campaign_id", campaign.id),
  );
  assert.equal(placed.length, 3);
});

/** The README block that follows `<!-- tests/e2e/frontend.test.ts runs the next block -->`. */
function readmeSnippet(): string {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const marker = readme.indexOf("<!-- tests/e2e/frontend.test.ts runs the next block -->");
  assert.ok(marker >= 0, "the README marks its frontend snippet");
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker));
  assert.ok(m, "a ts block follows the marker");
  return m[1];
}

Deno.test("the README's frontend snippet, saved as frontend.ts, passes fmt and lint and runs to completion", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ prefix: "frontend-snippet-" });
  try {
    await Deno.mkdir(`${dir}/.local/dev`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/.local/dev/stack.json`,
      JSON.stringify({ supabaseUrl: stack.supabaseUrl, anonKey: stack.anonKey }),
    );
    await Deno.writeTextFile(`${dir}/frontend.ts`, readmeSnippet());
    const deno = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [args[0], "--config", `${root}deno.json`, ...args.slice(1)],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    for (const check of [["fmt", "--check", "frontend.ts"], ["lint", "frontend.ts"]]) {
      const r = await deno(check);
      assert.ok(r.success, `deno ${check[0]}: ${text(r.stdout)}${text(r.stderr)}`);
    }
    // The snippet picks a random number of the account: another test may hold it (a 409).
    let out = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await deno(["run", "-A", "frontend.ts"]);
      out = text(r.stdout) + text(r.stderr);
      if (r.success || !/"conflict"/.test(out)) break;
    }
    assert.match(out, /\+1415666\d{4} is ready/);
    assert.match(out, /added: 3/);
    assert.match(out, /added: 1/, "the CSV upload's report");
    assert.match(out, /completed: 3 done, 1 busy/, out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("five concurrent first map-number requests by one user: five 200s, one row, one set of trunks", async () => {
  const me = await signUp("dblclick");
  const assistant = ok(
    await me.client.from("assistant").insert({ name: "Double", agent_name: "double" }).select()
      .single(),
  );
  const phoneNumber = await freeNumber();
  const answers = await Promise.all(
    Array.from({ length: 5 }, () =>
      me.client.functions.invoke("map-number", {
        body: { phoneNumber, assistantId: assistant.id },
      })),
  );
  for (const a of answers) {
    const body = a.error ? await (a.error as { context: Response }).context.json() : null;
    assert.equal(a.error, null, JSON.stringify(body));
  }
  assert.equal(new Set(answers.map((a) => a.data.phoneNumber.id)).size, 1, "one row for all");
  const [{ rows }] = await sql`select count(*)::int as rows from public.phone_number
    where e164 = ${phoneNumber} and owner_id = ${me.id}`;
  assert.equal(rows, 1);
  await outboxDrained(phoneNumber);
  const lk = await livekitState();
  const inbound = lk.inboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(phoneNumber));
  const outbound = lk.outboundTrunks.filter((t: Json) => (t.numbers ?? []).includes(phoneNumber));
  const rules = lk.dispatchRules.filter((r: Json) =>
    (r.trunkIds ?? []).some((id: string) => inbound.some((t: Json) => t.sipTrunkId === id))
  );
  assert.deepEqual([inbound.length, outbound.length, rules.length], [1, 1, 1]);
});

Deno.test("sign-up, sign-in and getClaims give GoTrue's session and claims; passwords are bcrypt", async () => {
  const me = await signUp("claims");
  const [row] = await sql`select encrypted_password, email_confirmed_at from auth.users
    where id = ${me.id}`;
  assert.match(row.encrypted_password, /^\$2[aby]\$10\$/);
  assert.ok(row.email_confirmed_at, "confirmed at once");

  const client = frontendClient();
  const signedIn = ok(
    await client.auth.signInWithPassword({ email: me.email, password: me.password }),
  );
  assert.equal(signedIn.session!.token_type, "bearer");
  assert.equal(signedIn.session!.expires_in, 3600);
  assert.equal(signedIn.user!.email, me.email);
  assert.deepEqual(signedIn.user!.app_metadata, { provider: "email", providers: ["email"] });
  const { claims } = ok(await client.auth.getClaims())!;
  assert.equal(claims.iss, `${stack.supabaseUrl}/auth/v1`);
  assert.equal(claims.sub, me.id);
  assert.equal(claims.aud, "authenticated");
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.aal, "aal1");
  assert.equal(claims.is_anonymous, false);
  assert.equal(claims.email, me.email);
  assert.equal((claims.amr as Json[])[0].method, "password");
  assert.ok(claims.exp - claims.iat === 3600);
  const mine = JSON.parse(atob(me.accessToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  assert.notEqual(claims.session_id, mine.session_id, "each sign-in is a new session");

  const user = ok(await client.auth.getUser()).user;
  assert.equal(user.id, me.id);
  assert.equal(user.identities?.[0]?.provider, "email");
  const updated = ok(await client.auth.updateUser({ data: { plan: "pro" } })).user;
  assert.deepEqual(updated.user_metadata, { plan: "pro" });
});

Deno.test("auth errors carry GoTrue's codes and statuses", async () => {
  const me = await signUp("errors");
  const client = frontendClient();
  const again = await client.auth.signUp({ email: me.email, password: "another-password" });
  assert.equal(again.error?.status, 422);
  assert.equal(again.error?.code, "user_already_exists");
  const wrong = await client.auth.signInWithPassword({ email: me.email, password: "wrong-one" });
  assert.equal(wrong.error?.status, 400);
  assert.equal(wrong.error?.code, "invalid_credentials");
  assert.equal(wrong.error?.message, "Invalid login credentials");
  const weak = await client.auth.signUp({
    email: `weak-${Date.now()}@example.com`,
    password: "123",
  });
  assert.equal(weak.error?.status, 422);
  assert.equal(weak.error?.code, "weak_password");
  assert.deepEqual((weak.error as Json).reasons, ["length"]);
  const invalid = await client.auth.signUp({ email: "not-an-email", password: "long-enough" });
  assert.equal(invalid.error?.status, 400);
  assert.equal(invalid.error?.code, "validation_failed");

  // Without the API version header the body is GoTrue's legacy shape.
  const res = await fetch(`${stack.supabaseUrl}/auth/v1/token?grant_type=password`, {
    method: "POST",
    headers: { apikey: stack.anonKey, "Content-Type": "application/json" },
    body: JSON.stringify({ email: me.email, password: "wrong-one" }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.headers.get("x-sb-error-code"), "invalid_credentials");
  assert.deepEqual(await res.json(), {
    code: 400,
    error_code: "invalid_credentials",
    msg: "Invalid login credentials",
  });
  const noKey = await fetch(`${stack.supabaseUrl}/auth/v1/settings`);
  assert.equal(noKey.status, 401);
  assert.equal((await noKey.json()).message, "No API key found in request");
});

async function refresh(token: string) {
  const res = await fetch(`${stack.supabaseUrl}/auth/v1/token?grant_type=refresh_token`, {
    method: "POST",
    headers: {
      apikey: stack.anonKey,
      "Content-Type": "application/json",
      "X-Supabase-Api-Version": "2024-01-01",
    },
    body: JSON.stringify({ refresh_token: token }),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("refresh tokens rotate; a reused old token revokes the session's tokens; sign-out ends the session", async () => {
  const me = await signUp("rotate");
  const first = me.refreshToken;
  const rotated = ok(await me.client.auth.refreshSession()).session!;
  assert.notEqual(rotated.refresh_token, first, "a new refresh token");
  assert.equal(rotated.user.id, me.id);

  // The answer to the last refresh was lost: the parent gets the current token back.
  const retried = await refresh(first);
  assert.equal(retried.status, 200);
  assert.equal(retried.body.refresh_token, rotated.refresh_token);

  // One more rotation; then, much later, the first token again: that is reuse, so every
  // token of the session is revoked.
  const third = ok(await me.client.auth.refreshSession()).session!;
  assert.notEqual(third.refresh_token, rotated.refresh_token);
  await sql`update auth.refresh_tokens set updated_at = now() - interval '1 minute'
    where token = ${first}`;
  const reused = await refresh(first);
  assert.equal(reused.status, 400);
  assert.equal(reused.body.code, "refresh_token_already_used");
  assert.equal(reused.body.message, "Invalid Refresh Token: Already Used");
  const current = await refresh(third.refresh_token);
  assert.equal(current.status, 400);
  assert.equal(current.body.code, "refresh_token_already_used");

  // Sign out: 204, then the session's refresh token and access token no longer work.
  const other = frontendClient();
  const session = ok(
    await other.auth.signInWithPassword({ email: me.email, password: me.password }),
  ).session!;
  const out = await fetch(`${stack.supabaseUrl}/auth/v1/logout?scope=local`, {
    method: "POST",
    headers: { apikey: stack.anonKey, Authorization: `Bearer ${session.access_token}` },
  });
  assert.equal(out.status, 204);
  const gone = await refresh(session.refresh_token);
  assert.equal(gone.status, 400);
  assert.equal(gone.body.code, "refresh_token_not_found");
  const res = await fetch(`${stack.supabaseUrl}/auth/v1/user`, {
    headers: {
      apikey: stack.anonKey,
      Authorization: `Bearer ${session.access_token}`,
      "X-Supabase-Api-Version": "2024-01-01",
    },
  });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get("x-supabase-api-version"), "2024-01-01");
  assert.equal((await res.json()).code, "session_not_found");
  // auth-js reads session_not_found as "no session".
  const user = await other.auth.getUser(session.access_token);
  assert.equal(user.error?.name, "AuthSessionMissingError");
  // signOut() itself treats an ended session as signed out.
  assert.equal((await other.auth.signOut()).error, null);

  const bad = await refresh("no-such-token");
  assert.equal(bad.body.code, "refresh_token_not_found");
});

Deno.test("an anonymous session reads nothing and does nothing that costs money, unless the operator allows it", async () => {
  const client = frontendClient();
  const { user, session } = ok(await client.auth.signInAnonymously());
  assert.equal(user!.is_anonymous, true);
  assert.equal(user!.role, "authenticated");
  const claims = JSON.parse(
    atob(session!.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")),
  );
  assert.equal(claims.is_anonymous, true);
  assert.equal(claims.role, "authenticated");
  // Tables: nothing is written, nothing is read.
  const planted = await client.from("assistant").insert({ name: "Guest", agent_name: "guest" });
  assert.equal(planted.error?.code, "42501", JSON.stringify(planted.error));
  const me = await signUp("anon-owner");
  const mine = ok(
    await me.client.from("assistant").insert({ name: "Mine", agent_name: "mine" }).select()
      .single(),
  );
  const [{ id: theirs }] = await sql`insert into public.assistant (owner_id, name, agent_name)
    values (${user!.id}, 'Made for the guest', 'guest') returning id`;
  assert.deepEqual(ok(await client.from("assistant").select("id")), [], "not even its own rows");
  // Functions: a 403 saying why, before anything is dialed or provisioned.
  for (
    const [fn, body] of [
      ["map-number", { phoneNumber: await freeNumber(), assistantId: theirs }],
      ["create-participant", { assistantId: theirs, phoneNumber: "+12125550905" }],
      ["list-trunks", {}],
    ] as const
  ) {
    const res = await client.functions.invoke(fn, { body });
    const answer = await (res.error as { context: Response }).context.json();
    assert.equal(answer.error.code, "forbidden", `${fn}: ${JSON.stringify(answer)}`);
    assert.match(answer.error.message, /Anonymous sessions/);
  }
  // The operator's switch makes them tenants like any other, under the same RLS.
  await sql`update internal.platform_settings set allow_anonymous = true`;
  try {
    const a = ok(
      await client.from("assistant").insert({ name: "Guest", agent_name: "guest" }).select()
        .single(),
    );
    assert.equal(a.owner_id, user!.id);
    const listed = await client.functions.invoke("list-trunks", { method: "GET" });
    assert.equal(listed.error, null);
    const seen = ok(await me.client.from("assistant").select("id").eq("id", a.id));
    assert.deepEqual(seen, [], "another user still sees none of it");
    assert.equal(ok(await client.from("assistant").select("id").eq("id", mine.id)).length, 0);
  } finally {
    await sql`update internal.platform_settings set allow_anonymous = false`;
  }
});

Deno.test("a deleted user's session is over: getUser 403 user_not_found, functions 401", async () => {
  const me = await signUp("deleted");
  await sql`delete from auth.users where id = ${me.id}`;
  const user = await me.client.auth.getUser(me.accessToken);
  assert.equal(user.error?.status, 403);
  assert.equal(user.error?.code, "user_not_found");
  const fn = await me.client.functions.invoke("list-trunks", { method: "GET" });
  assert.equal((fn.error as { context: Response }).context.status, 401);
  await (fn.error as { context: Response }).context.body?.cancel();
});
