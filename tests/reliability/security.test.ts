// Tenancy, tokens, webhooks, rate limits and secrets: another user's ids are refused by every
// function and every exposed table, bad tokens get 401, webhooks cannot be forged or replayed,
// create-participant is rate-limited per user, and no secret reaches a response or a log line.
import assert from "node:assert/strict";
import * as jose from "jose";
import {
  createAssistant,
  createUser,
  eventually,
  fixture,
  freeNumber,
  functionDeps,
  livekitRequests,
  livekitState,
  outboxDrained,
  signUp,
  sql,
  stack,
  type TestUser,
} from "../helpers/stack.ts";
import { freeNumbers } from "../../stack/fixtures.ts";
import type { Fn } from "../../supabase/functions/_shared/http.ts";
import { handler as createTrunks } from "../../supabase/functions/create-trunks/handler.ts";
import { handler as listTrunks } from "../../supabase/functions/list-trunks/handler.ts";
import { handler as mapNumber } from "../../supabase/functions/map-number/handler.ts";
import { mintUserToken } from "../../stack/supabase/keys.ts";
import {
  addSummary,
  asUser,
  callRecorded,
  type Json,
  postWebhook,
  RESPONSES_FILE,
  tryAsUser,
  userRows,
  webhookToken,
} from "./helpers.ts";

interface Tenant {
  user: TestUser;
  assistantId: string;
  numberId: string;
  e164: string;
  twilioSid: string;
  campaignId: string;
  campaignCallId: string;
  dncId: string;
  callId: string;
  room: string;
}

/** A user with one of everything: assistant, ready number, campaign and its call, do-not-call entry, a finished call and its events. */
async function tenant(label: string, callee: string): Promise<Tenant> {
  const user = await createUser(label);
  const assistantId = await createAssistant(user, `${label} assistant`, `${label}-agent`);
  const e164 = await freeNumber();
  const mapped = await callRecorded("map-number", {
    token: user.token,
    body: { phoneNumber: e164, assistantId },
  });
  assert.equal(mapped.status, 200, JSON.stringify(mapped.body));
  await outboxDrained(e164);
  const [c] = await asUser(
    user,
    (tx) =>
      tx`insert into public.campaigns (name, assistant_id) values (${label}, ${assistantId}) returning id`,
  );
  await asUser(
    user,
    (tx) =>
      tx`select public.add_campaign_calls(${c.id}, ${tx.json([{ phoneNumber: "+13055550123" }])})`,
  );
  const [cc] = await sql`select id from public.campaign_calls where campaign_id = ${c.id}`;
  const [dnc] = await asUser(
    user,
    (tx) => tx`insert into public.do_not_call (e164) values ('+13055550199') returning id`,
  );
  const placed = await callRecorded("create-participant", {
    token: user.token,
    body: { assistantId, phoneNumber: callee },
  });
  assert.equal(placed.status, 200, JSON.stringify(placed.body));
  const callId = placed.body.call.id;
  const ev = await eventually(async () => {
    const [o] = await sql`select status, room_name from public.outbound_calls where id = ${callId}`;
    const [e] =
      await sql`select event_id from public.call_events where call_id = ${callId} limit 1`;
    return o.status === "completed" && e ? { room: o.room_name as string } : null;
  }, `the call of ${label} to complete`);
  return {
    user,
    assistantId,
    numberId: mapped.body.phoneNumber.id,
    e164,
    twilioSid: mapped.body.phoneNumber.twilioSid,
    campaignId: c.id,
    campaignCallId: cc.id,
    dncId: dnc.id,
    callId,
    room: ev.room,
  };
}

let tenants: Promise<[Tenant, Tenant]> | null = null;
function owners() {
  tenants ??=
    (async () =>
      [await tenant("owner", "+13055550905"), await tenant("stranger", "+13055551905")] as [
        Tenant,
        Tenant,
      ])();
  return tenants;
}

async function dialCount() {
  return (await livekitRequests()).filter((r: Json) => r.method === "CreateSIPParticipant").length;
}

Deno.test("every function refuses another user's assistant, number, campaign, job and call room", async () => {
  const [owner, stranger] = await owners();
  const before = await userRows(owner.user.id);
  const dialsBefore = await dialCount();
  const token = stranger.user.token;
  const attempts: [string, string, Record<string, unknown>, number[], string?][] = [
    // Another account's assistant is forbidden (api.md); its numbers are not found.
    ["map-number", "POST", { phoneNumber: await freeNumber(), assistantId: owner.assistantId }, [
      403,
    ]],
    // The number itself belongs to the owner: it cannot be taken, not even with force.
    ["map-number", "POST", { phoneNumber: owner.e164, assistantId: stranger.assistantId }, [409]],
    ["map-number", "POST", {
      phoneNumber: owner.e164,
      assistantId: stranger.assistantId,
      force: true,
    }, [409]],
    ["map-number", "POST", { phoneSid: owner.twilioSid, assistantId: null }, [409]],
    ["create-trunks", "POST", { phoneNumberId: owner.numberId }, [404]],
    ["create-trunks", "POST", { assistantId: owner.assistantId }, [403]],
    ["create-trunks", "POST", { jobId: "1" }, [403]],
    ["create-participant", "POST", {
      assistantId: owner.assistantId,
      phoneNumber: "+13055552905",
    }, [403]],
    // The owner's call room cannot be reused to join (or dial into) the owner's call.
    ["create-participant", "POST", {
      assistantId: stranger.assistantId,
      phoneNumber: "+13055552906",
      roomName: owner.room,
    }, [400]],
    ["list-trunks", "POST", { assistantId: owner.assistantId }, [403]],
    ["list-trunks", "GET", {}, [403], `?assistantId=${owner.assistantId}`],
    ["campaign-tick", "POST", { campaignId: owner.campaignId }, [403]],
  ];
  let denied = 0;
  let allowed = 0;
  for (const [fn, method, body, statuses, query] of attempts) {
    const res = await callRecorded(fn, {
      token,
      method,
      body: method === "GET" ? undefined : body,
      query,
    });
    if (statuses.includes(res.status)) denied++;
    else allowed++;
    assert.ok(
      statuses.includes(res.status),
      `${fn} ${JSON.stringify(body)} answered ${res.status}: ${JSON.stringify(res.body)}`,
    );
    assert.ok(res.body.error?.code, "a JSON error");
  }
  // Unfiltered, the stranger's list holds only the stranger's own trunks.
  const mine = await callRecorded("list-trunks", { token, method: "GET" });
  assert.equal(mine.status, 200);
  const leaked = mine.body.trunks.filter((t: Json) => t.phoneNumberId !== stranger.numberId);
  if (leaked.length > 0) allowed++;
  else denied++;
  assert.deepEqual(leaked, [], "no other user's trunk is listed");

  assert.equal(await dialCount(), dialsBefore, "nothing was dialed");
  assert.deepEqual(await userRows(owner.user.id), before, "the owner's rows are unchanged");
  addSummary({ "cross-tenant attempts denied": denied, "cross-tenant attempts allowed": allowed });
});

Deno.test("under RLS another user's rows in every exposed table read as nothing and cannot be written", async () => {
  const [o, s] = await owners();
  const before = await userRows(o.user.id);
  type Attempt = [string, (tx: Json) => Promise<Json>, "empty" | "refused"];
  const attempts: Attempt[] = [
    // Reads see nothing.
    [
      "read assistant",
      (tx) => tx`select * from public.assistant where id = ${o.assistantId}`,
      "empty",
    ],
    [
      "read phone_number",
      (tx) => tx`select * from public.phone_number where id = ${o.numberId}`,
      "empty",
    ],
    [
      "read campaigns",
      (tx) => tx`select * from public.campaigns where id = ${o.campaignId}`,
      "empty",
    ],
    [
      "read campaign_calls",
      (tx) => tx`select * from public.campaign_calls where campaign_id = ${o.campaignId}`,
      "empty",
    ],
    [
      "read do_not_call",
      (tx) => tx`select * from public.do_not_call where id = ${o.dncId}`,
      "empty",
    ],
    [
      "read outbound_calls",
      (tx) => tx`select * from public.outbound_calls where id = ${o.callId}`,
      "empty",
    ],
    [
      "read call_events",
      (tx) => tx`select * from public.call_events where call_id = ${o.callId}`,
      "empty",
    ],
    [
      "read campaign_progress",
      (tx) => tx`select * from public.campaign_progress where campaign_id = ${o.campaignId}`,
      "empty",
    ],
    ["read all owners' rows", (tx) =>
      tx`
      select owner_id from public.assistant where owner_id = ${o.user.id}
      union all select owner_id from public.phone_number where owner_id = ${o.user.id}
      union all select owner_id from public.campaigns where owner_id = ${o.user.id}
      union all select owner_id from public.outbound_calls where owner_id = ${o.user.id}
      union all select owner_id from public.call_events where owner_id = ${o.user.id}`, "empty"],
    // Updates and deletes touch nothing (or are not granted at all).
    [
      "rename assistant",
      (tx) =>
        tx`update public.assistant set name = 'stolen' where id = ${o.assistantId} returning id`,
      "empty",
    ],
    [
      "delete assistant",
      (tx) => tx`delete from public.assistant where id = ${o.assistantId} returning id`,
      "empty",
    ],
    [
      "move number",
      (tx) =>
        tx`update public.phone_number set assistant_id = ${s.assistantId} where id = ${o.numberId} returning id`,
      "empty",
    ],
    [
      "unassign number",
      (tx) =>
        tx`update public.phone_number set assistant_id = null where id = ${o.numberId} returning id`,
      "empty",
    ],
    [
      "delete number",
      (tx) => tx`delete from public.phone_number where id = ${o.numberId} returning id`,
      "empty",
    ],
    [
      "start campaign",
      (tx) =>
        tx`update public.campaigns set status = 'running' where id = ${o.campaignId} returning id`,
      "empty",
    ],
    [
      "delete campaign",
      (tx) => tx`delete from public.campaigns where id = ${o.campaignId} returning id`,
      "empty",
    ],
    [
      "edit campaign call",
      (tx) =>
        tx`update public.campaign_calls set name = 'x' where id = ${o.campaignCallId} returning id`,
      "empty",
    ],
    [
      "delete campaign call",
      (tx) => tx`delete from public.campaign_calls where id = ${o.campaignCallId} returning id`,
      "empty",
    ],
    [
      "delete do_not_call",
      (tx) => tx`delete from public.do_not_call where id = ${o.dncId} returning id`,
      "empty",
    ],
    [
      "update outbound_calls",
      (tx) =>
        tx`update public.outbound_calls set status = 'failed' where id = ${o.callId} returning id`,
      "refused",
    ],
    [
      "delete outbound_calls",
      (tx) => tx`delete from public.outbound_calls where id = ${o.callId} returning id`,
      "refused",
    ],
    [
      "update call_events",
      (tx) =>
        tx`update public.call_events set event = 'x' where call_id = ${o.callId} returning id`,
      "refused",
    ],
    [
      "delete call_events",
      (tx) => tx`delete from public.call_events where call_id = ${o.callId} returning id`,
      "refused",
    ],
    // Inserts into the owner's account or pointing at the owner's rows are refused.
    [
      "insert assistant as owner",
      (tx) =>
        tx`insert into public.assistant (owner_id, name, agent_name) values (${o.user.id}, 'x', 'x')`,
      "refused",
    ],
    [
      "insert number for owner's assistant",
      (tx) =>
        tx`insert into public.phone_number (e164, assistant_id) values ('+13055553001', ${o.assistantId})`,
      "refused",
    ],
    [
      "insert owner's number",
      (tx) => tx`insert into public.phone_number (e164) values (${o.e164})`,
      "refused",
    ],
    [
      "insert campaign for owner's assistant",
      (tx) => tx`insert into public.campaigns (name, assistant_id) values ('x', ${o.assistantId})`,
      "refused",
    ],
    [
      "insert campaign on owner's number",
      (tx) =>
        tx`insert into public.campaigns (name, assistant_id, phone_number_id) values ('x', ${s.assistantId}, ${o.numberId})`,
      "refused",
    ],
    [
      "insert call into owner's campaign",
      (tx) =>
        tx`insert into public.campaign_calls (campaign_id, e164) values (${o.campaignId}, '+13055553002')`,
      "refused",
    ],
    [
      "insert call owned by owner",
      (tx) =>
        tx`insert into public.campaign_calls (campaign_id, owner_id, e164) values (${o.campaignId}, ${o.user.id}, '+13055553003')`,
      "refused",
    ],
    [
      "insert do_not_call for owner",
      (tx) =>
        tx`insert into public.do_not_call (owner_id, e164) values (${o.user.id}, '+13055553004')`,
      "refused",
    ],
    [
      "insert outbound_calls",
      (tx) =>
        tx`insert into public.outbound_calls (owner_id, from_number, to_number, room_name, participant_identity, outbound_trunk_id) values (${o.user.id}, ${o.e164}, '+13055553005', ${`forged-${crypto.randomUUID()}`}, 'x', 'ST_x')`,
      "refused",
    ],
    [
      "insert call_events",
      (tx) =>
        tx`insert into public.call_events (event_id, owner_id, event, payload, created_at) values (${`EV_forged_${crypto.randomUUID()}`}, ${o.user.id}, 'x', '{}', now())`,
      "refused",
    ],
    [
      "import into owner's campaign",
      (tx) =>
        tx`select public.add_campaign_calls(${o.campaignId}, ${
          tx.json([{ phoneNumber: "+13055553006" }])
        })`,
      "refused",
    ],
    // The private schema and Vault are out of reach.
    ["read provisioning outbox", (tx) => tx`select * from internal.provisioning_job`, "refused"],
    ["read SIP trunk metadata", (tx) => tx`select * from internal.sip_trunk`, "refused"],
    ["read Vault", (tx) => tx`select * from vault.decrypted_secrets`, "refused"],
    [
      "read a secret through internal.secret",
      (tx) => tx`select internal.secret('service_role_key')`,
      "refused",
    ],
    [
      "take the owner's rate limit",
      (tx) => tx`select internal.take_rate_limit(${o.user.id}, 'create-participant', 1)`,
      "refused",
    ],
  ];
  let denied = 0;
  const allowed: string[] = [];
  for (const [what, run, expect] of attempts) {
    const r = await tryAsUser(s.user, run);
    const ok = expect === "empty"
      ? (r.ok && r.value.length === 0) || (!r.ok && /permission denied/.test(r.error))
      : !r.ok;
    if (ok) denied++;
    else allowed.push(`${what}: ${r.ok ? JSON.stringify(r.value).slice(0, 200) : r.error}`);
  }
  addSummary({
    "cross-tenant attempts denied": denied,
    "cross-tenant attempts allowed": allowed.length,
  });
  assert.deepEqual(allowed, [], "every cross-tenant read and write is denied");
  assert.deepEqual(await userRows(o.user.id), before, "the owner's rows are unchanged");
  // The owner still sees everything (the checks above were not vacuous).
  const seen = await asUser(o.user, (tx) =>
    tx`
    select (select count(*) from public.assistant)::int as a, (select count(*) from public.phone_number)::int as p,
      (select count(*) from public.campaign_calls)::int as cc, (select count(*) from public.call_events)::int as e,
      (select count(*) from public.campaign_progress)::int as cp`);
  assert.deepEqual({ ...seen[0], e: seen[0].e > 0 }, { a: 1, p: 1, cc: 1, e: true, cp: 1 });
});

/** Security-definer lookups users may call on purpose (add_campaign_calls runs as the user). */
const USER_CALLABLE_LOOKUPS = [
  "internal.normalise_number(text,text)",
  "internal.number_country(text)",
  "internal.number_timezone(text)",
];

Deno.test("users can call no security-definer function but the read-only number lookups, and anon none", async () => {
  const rows = await sql`
    select p.oid::regprocedure::text as fn, r.rolname, p.provolatile as volatility
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    cross join (values ('anon'), ('authenticated')) r (rolname)
    where n.nspname in ('internal', 'public', 'auth', 'vault', 'net') and p.prosecdef
      and has_function_privilege(r.rolname, p.oid, 'execute')`;
  const unexpected = rows.filter((r) =>
    r.rolname === "anon" || !USER_CALLABLE_LOOKUPS.includes(r.fn) || r.volatility === "v"
  );
  assert.deepEqual(unexpected.map((r) => `${r.rolname}: ${r.fn} (${r.volatility})`), []);
  // And what they can read is reference data, not anyone's rows.
  const looked = await asUser(
    { id: crypto.randomUUID() },
    (tx) => tx`select internal.number_country('+13055550123') as c`,
  );
  assert.equal(looked[0].c, "US");
});

Deno.test("the anon role reads and writes nothing in any exposed table", async () => {
  const tables = [
    "assistant",
    "phone_number",
    "campaigns",
    "campaign_calls",
    "do_not_call",
    "outbound_calls",
    "call_events",
    "campaign_progress",
  ];
  const allowed: string[] = [];
  for (const t of tables) {
    for (const statement of [`select * from public.${t} limit 1`, `delete from public.${t}`]) {
      try {
        await sql.begin(async (tx) => {
          await tx`select set_config('role', 'anon', true)`;
          await tx.unsafe(statement);
        });
        allowed.push(statement);
      } catch (e) {
        if (!/permission denied|cannot delete from view/.test(String(e))) {
          allowed.push(`${statement}: ${e}`);
        }
      }
    }
  }
  addSummary({
    "cross-tenant attempts denied": tables.length * 2 - allowed.length,
    "cross-tenant attempts allowed": allowed.length,
  });
  assert.deepEqual(allowed, []);
});

// Tokens --------------------------------------------------------------------------------------

async function badTokens(user: TestUser): Promise<[string, string][]> {
  const { privateKey } = await jose.generateKeyPair("ES256");
  const forged = await new jose.SignJWT({ role: "authenticated", aud: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: stack.privateJwk.kid })
    .setSubject(user.id).setIssuer(stack.issuer).setExpirationTime("1h").sign(privateKey);
  const b64 = (v: unknown) =>
    btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const claims = {
    sub: user.id,
    role: "authenticated",
    iss: stack.issuer,
    exp: Math.floor(Date.now() / 1000) + 600,
  };
  const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
  const hsForged = await new jose.SignJWT({ role: "authenticated" })
    .setProtectedHeader({ alg: "HS256" }).setSubject(user.id).setIssuer(stack.issuer)
    .setExpirationTime("1h").sign(new TextEncoder().encode("x".repeat(64)));
  // Signed with the project's own key, for another audience (another service's token).
  const foreignAudience = await new jose.SignJWT({ role: "authenticated", aud: "another-app" })
    .setProtectedHeader({ alg: "ES256", kid: stack.privateJwk.kid })
    .setSubject(user.id).setIssuer(stack.issuer).setExpirationTime("1h")
    .sign(await jose.importJWK(stack.privateJwk, "ES256"));
  // A real session token with its payload edited (the signature no longer matches).
  const [h, , sig] = user.token.split(".");
  const edited = `${h}.${b64({ ...claims, sub: crypto.randomUUID() })}.${sig}`;
  return [
    ["forged", forged],
    [
      "expired",
      await mintUserToken(stack, user, { expiresIn: Math.floor(Date.now() / 1000) - 60 }),
    ],
    [
      "wrong issuer",
      await mintUserToken(stack, user, { issuer: "https://evil.example.com/auth/v1" }),
    ],
    ["alg none", none],
    ["HS256 with a guessed secret", hsForged],
    ["edited payload", edited],
    ["not a JWT", "not-a-jwt"],
    ["the anon key", stack.anonKey],
    ["another audience", foreignAudience],
  ];
}

Deno.test("forged, expired, wrong-issuer, unsigned and edited tokens get 401 from every user function", async () => {
  const user = await createUser("tokens");
  const assistantId = await createAssistant(user);
  const requests: [string, string, Record<string, unknown> | undefined][] = [
    ["map-number", "POST", { phoneNumber: "+14156661000", assistantId }],
    ["create-trunks", "POST", { assistantId }],
    ["create-participant", "POST", { assistantId, phoneNumber: "+13055554905" }],
    ["list-trunks", "GET", undefined],
    ["list-trunks", "POST", {}],
  ];
  const before = await userRows(user.id);
  const dialsBefore = await dialCount();
  let refused = 0;
  const accepted: string[] = [];
  for (const [kind, token] of await badTokens(user)) {
    for (const [fn, method, body] of requests) {
      const res = await callRecorded(fn, { token, method, body });
      if (res.status === 401 && res.body.error?.code === "unauthenticated") refused++;
      else accepted.push(`${kind} -> ${fn} ${method}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  }
  addSummary({ "bad tokens refused": refused, "bad tokens accepted": accepted.length });
  assert.deepEqual(accepted, []);
  assert.deepEqual(await userRows(user.id), before);
  assert.equal(await dialCount(), dialsBefore);
});

Deno.test("campaign-tick refuses user tokens, the anon key and a user token claiming the service role", async () => {
  const [owner] = await owners();
  const serviceClaim = await new jose.SignJWT({ role: "service_role" })
    .setProtectedHeader({ alg: "ES256", kid: stack.privateJwk.kid })
    .setSubject(owner.user.id).setIssuer(stack.issuer).setExpirationTime("1h")
    .sign(await jose.importJWK(stack.privateJwk, "ES256"));
  // Signed with the project's legacy secret, but not the configured key (a deactivated or
  // home-made one): only the configured keys are the service.
  const forgedService = await new jose.SignJWT({ role: "service_role" })
    .setProtectedHeader({ alg: "HS256" }).setIssuer("supabase").setExpirationTime("1h")
    .sign(new TextEncoder().encode(stack.jwtSecret));
  const before = await userRows(owner.user.id);
  const cases: [string, string | null, number][] = [
    ["a user's session", owner.user.token, 403],
    ["the anon key", stack.anonKey, 401],
    ["a session token claiming service_role", serviceClaim, 401],
    ["a service_role JWT that is not the configured key", forgedService, 401],
    ["no token", null, 401],
  ];
  for (const [what, token, status] of cases) {
    const res = await callRecorded("campaign-tick", {
      token,
      body: { campaignId: owner.campaignId },
    });
    assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
  }
  // The service key itself works (the refusals above were about the caller).
  const ok = await callRecorded("campaign-tick", {
    token: stack.serviceKey,
    body: { campaignId: owner.campaignId, maxCalls: 1 },
  });
  assert.equal(ok.status, 200);
  assert.deepEqual(await userRows(owner.user.id), before);
});

// Webhooks ------------------------------------------------------------------------------------

/** An open call (ringing, in a room LiveKit no longer has) whose webhooks the test sends itself. */
async function ringingCall(owner: Tenant) {
  const room = `sec-${crypto.randomUUID()}`;
  const [row] =
    await sql`insert into public.outbound_calls (owner_id, assistant_id, phone_number_id, from_number,
      to_number, room_name, participant_identity, outbound_trunk_id, status)
    values (${owner.user.id}, ${owner.assistantId}, ${owner.numberId}, ${owner.e164}, '+13055555905', ${room},
      ${`sip-${room}`}, 'ST_test', 'ringing') returning *`;
  return row;
}

function leftEvent(row: Json, id: string, callStatus = "ringing", reason = "USER_REJECTED") {
  return JSON.stringify({
    event: "participant_left",
    id,
    createdAt: String(Math.floor(Date.now() / 1000)),
    room: { name: row.room_name, sid: "RM_sec" },
    participant: {
      sid: "PA_sec",
      identity: row.participant_identity,
      kind: "SIP",
      state: "DISCONNECTED",
      attributes: { "sip.callStatus": callStatus },
      disconnectReason: reason,
    },
  });
}

async function callState(id: string) {
  const [c] =
    await sql`select status, outcome, updated_at from public.outbound_calls where id = ${id}`;
  const [{ n }] =
    await sql`select count(*)::int as n from public.call_events where call_id = ${id}`;
  return { status: c.status, outcome: c.outcome, updatedAt: c.updated_at.getTime(), events: n };
}

Deno.test("a forged LiveKit webhook changes nothing", async () => {
  const [owner] = await owners();
  const row = await ringingCall(owner);
  const before = await callState(row.id);
  // An attacker marks the call answered and then hung up normally.
  const body = leftEvent(row, `EV_forged_${crypto.randomUUID()}`, "hangup", "CLIENT_INITIATED");
  const forgeries = [
    await webhookToken(body, { secret: "guessed-secret-guessed-secret-xx" }),
    await webhookToken(body, { apiKey: "APIattacker", secret: "attacker-secret-attacker-secret" }),
    await webhookToken(body, { sha: btoa("x".repeat(32)) }),
    `Bearer ${await webhookToken(body, { secret: "guessed-secret-guessed-secret-xx" })}`,
  ];
  for (const token of forgeries) {
    const res = await postWebhook(body, token);
    assert.equal(res.status, 401, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "unauthenticated");
  }
  const unsigned = await postWebhook(body);
  assert.equal(unsigned.status, 401);
  assert.deepEqual(await callState(row.id), before, "the call did not move");
});

Deno.test("a replayed LiveKit webhook is idempotent, and one replayed after its token expired is refused", async () => {
  const [owner] = await owners();
  const row = await ringingCall(owner);
  const body = leftEvent(row, `EV_replay_${crypto.randomUUID()}`);
  const token = await webhookToken(body);
  const first = await postWebhook(body, token);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.duplicate, false);
  // The call's dial is still waiting for its answer: the leave is noted, the dial decides.
  assert.equal(first.body.status, "ringing");
  const once = await callState(row.id);
  for (let i = 0; i < 3; i++) {
    const again = await postWebhook(body, i === 0 ? token : await webhookToken(body));
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
  }
  assert.deepEqual(await callState(row.id), once, "replays changed nothing");

  // A captured webhook replayed once its token expired.
  const later = leftEvent(row, `EV_replay_${crypto.randomUUID()}`, "active", "CLIENT_INITIATED");
  const stale = await postWebhook(
    later,
    await webhookToken(later, { exp: Math.floor(Date.now() / 1000) - 120 }),
  );
  assert.equal(stale.status, 401);
  assert.deepEqual(await callState(row.id), once);
});

// Rate limit ----------------------------------------------------------------------------------

Deno.test("create-participant allows 30 calls a minute per user: the 31st is 429 and another user is unaffected", async () => {
  const [, other] = await owners();
  // Fixed one-minute windows: a run that straddles a minute boundary proves nothing and is
  // repeated with a fresh user (at most twice).
  for (let run = 0; run < 3; run++) {
    const user = await createUser("rate");
    const assistantId = await createAssistant(user, "Rate", "rate-agent");
    const e164 = await freeNumber();
    const mapped = await callRecorded("map-number", {
      token: user.token,
      body: { phoneNumber: e164, assistantId },
    });
    assert.equal(mapped.status, 200);
    await outboxDrained(e164);
    const [{ m: startMinute }] = await sql`select date_trunc('minute', now()) as m`;
    const answers: { status: number; body: Json }[] = [];
    for (let i = 0; i < 31; i++) {
      answers.push(
        await callRecorded("create-participant", {
          token: user.token,
          body: { assistantId, phoneNumber: `+1305556${String(i).padStart(2, "0")}01` },
        }),
      );
    }
    const [{ m: endMinute }] = await sql`select date_trunc('minute', now()) as m`;
    if (startMinute.getTime() !== endMinute.getTime()) continue;

    const statuses = answers.map((a) => a.status);
    assert.deepEqual(
      statuses.slice(0, 30),
      Array(30).fill(200),
      JSON.stringify(answers.find((a) => a.status !== 200)?.body),
    );
    assert.equal(statuses[30], 429, JSON.stringify(answers[30].body));
    assert.equal(answers[30].body.error.code, "rate_limited");
    assert.ok(answers[30].body.error.details.retryAfterSec >= 1);
    const [{ n }] =
      await sql`select count(*)::int as n from public.outbound_calls where owner_id = ${user.id}`;
    assert.equal(n, 30, "the refused call was never recorded or dialed");
    const unaffected = await callRecorded("create-participant", {
      token: other.user.token,
      body: { assistantId: other.assistantId, phoneNumber: "+13055557901" },
    });
    assert.equal(unaffected.status, 200, JSON.stringify(unaffected.body));
    return;
  }
  throw new Error("three runs in a row straddled a minute boundary");
});

// Secrets -------------------------------------------------------------------------------------

/** Every secret the stack holds: SIP passwords (LiveKit's trunks and Vault), webhook signing secrets, API secrets, keys. */
async function secrets(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const t of (await livekitState()).outboundTrunks) {
    if (t.authPassword) out.set(t.authPassword, `SIP password of ${t.sipTrunkId}`);
  }
  for (
    const r of await sql`select name, decrypted_secret from vault.decrypted_secrets
        where name like 'sip_password:%' or name like 'webhook_secret:%'`
  ) {
    const what = r.name.startsWith("sip_password:") ? "SIP password" : "webhook signing secret";
    out.set(r.decrypted_secret, `${what} in Vault (${r.name})`);
  }
  out.set(stack.livekit.apiSecret, "LiveKit API secret");
  if (stack.twilio) out.set(stack.twilio.authToken, "Twilio auth token");
  out.set(stack.jwtSecret, "JWT secret");
  return out;
}

function findSecrets(text: string, secretList: Map<string, string>): string[] {
  return [...secretList].filter(([s]) => s.length >= 8 && text.includes(s)).map(([, what]) => what);
}

Deno.test("no response of this suite and no function log line contains a SIP password, API secret, auth token, service key or JWT secret", async () => {
  const [owner] = await owners();
  // Responses most likely to carry credentials if anything did: provisioning and listings.
  await callRecorded("create-trunks", {
    token: owner.user.token,
    body: { phoneNumberId: owner.numberId },
  });
  await callRecorded("create-trunks", {
    token: stack.serviceKey,
    body: { assistantId: owner.assistantId },
  });
  await callRecorded("list-trunks", { token: owner.user.token, method: "GET" });
  await callRecorded("map-number", {
    token: owner.user.token,
    body: { phoneNumber: owner.e164, assistantId: owner.assistantId },
  });

  const list = await secrets();
  assert.ok(
    [...list.values()].some((v) => v.startsWith("SIP password")),
    "the stack holds SIP passwords to look for",
  );
  // The scanner finds what it looks for.
  assert.equal(findSecrets(`x${[...list.keys()][0]}x`, list).length, 1);

  const responses = Deno.readTextFileSync(RESPONSES_FILE).split("\n").filter(Boolean);
  const inResponses: string[] = [];
  for (const line of responses) {
    const { source, body } = JSON.parse(line);
    for (const what of findSecrets(body, list)) inResponses.push(`${source}: ${what}`);
    if (body.includes(stack.serviceKey)) inResponses.push(`${source}: service role key`);
  }
  const logLines = Deno.readTextFileSync(stack.logFile).split("\n").filter(Boolean);
  const inLogs: string[] = [];
  for (const line of logLines) {
    for (const what of findSecrets(line, list)) inLogs.push(what);
    if (line.includes(stack.serviceKey)) inLogs.push("service role key");
  }
  console.log(
    `scanned ${responses.length} responses and ${logLines.length} log lines for ${
      list.size + 1
    } secrets`,
  );
  addSummary({
    "responses scanned for secrets": responses.length,
    "log lines scanned for secrets": logLines.length,
    "secrets found in responses and logs": inResponses.length + inLogs.length,
  });
  assert.ok(responses.length >= 20 && logLines.length >= 20, "there was something to scan");
  assert.deepEqual(inResponses, [], "no secret in any response");
  assert.deepEqual(inLogs, [], "no secret in any log line");
});

Deno.test("numbers cannot be created or claimed through the REST API, only through map-number", async () => {
  const squatter = await signUp("squatter");
  const victim = await createUser("squatted");
  const wanted = await freeNumbers(fixture, 3);
  // One request used to take many numbers, the account's or not.
  const { error } = await squatter.client.from("phone_number").insert(
    wanted.map((e164) => ({ e164, assistant_id: null })),
  );
  assert.equal(error?.code, "42501", JSON.stringify(error));
  const [{ n }] =
    await sql`select count(*)::int as n from public.phone_number where e164 = any(${wanted})`;
  assert.equal(n, 0, "no row was made");
  addSummary({ "cross-tenant attempts denied": 1 });
  // The number is still free for whoever owns it in the carrier account.
  const victimAssistant = await createAssistant(victim, "Mine", "mine-agent");
  const res = await callRecorded("map-number", {
    token: victim.token,
    body: { phoneNumber: wanted[0], assistantId: victimAssistant },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
});

Deno.test("map-number and every function reaching Twilio or LiveKit for a user is rate-limited per tenant", async () => {
  const deps = functionDeps({
    PROVISIONING_PER_MINUTE_PER_USER: "3",
    LIVEKIT_REQUESTS_PER_MINUTE_PER_USER: "2",
  });
  const user = await createUser("rate-provisioning");
  const other = await createUser("rate-other");
  const assistantId = await createAssistant(user, "Rate", "rate-agent");
  const e164 = await freeNumber();
  const post = (fn: Fn, token: string, body: unknown, method = "POST") =>
    fn(deps)(
      new Request("http://functions.local/", {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: method === "POST" ? JSON.stringify(body) : undefined,
      }),
    );
  // Assign and unassign in a loop, as the attack did: the fourth request in the minute is a 429.
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await post(mapNumber, user.token, {
      phoneNumber: e164,
      assistantId: i % 2 === 0 ? assistantId : null,
    });
    statuses.push(res.status);
    if (res.status === 429) {
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      assert.equal((await res.json()).error.code, "rate_limited");
    } else await res.body?.cancel();
  }
  assert.deepEqual(statuses.slice(3), [429, 429, 429], statuses.join(","));
  const trunks = await post(createTrunks, user.token, { assistantId });
  assert.equal(trunks.status, 429, "create-trunks shares the provisioning budget");
  await trunks.body?.cancel();
  // Another tenant's budget is its own.
  const theirs = await post(listTrunks, other.token, {});
  assert.equal(theirs.status, 200);
  await theirs.body?.cancel();
  const listed = [await post(listTrunks, user.token, {}), await post(listTrunks, user.token, {})];
  for (const r of listed) await r.body?.cancel();
  const third = await post(listTrunks, user.token, {});
  assert.equal(third.status, 429);
  await third.body?.cancel();
  addSummary({ "rate-limited requests refused": 5 });
  await sql`update public.phone_number set assistant_id = null where e164 = ${e164}`;
  await outboxDrained(e164);
});
