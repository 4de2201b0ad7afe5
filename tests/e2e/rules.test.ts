// Rules that both languages must know are stated once in the database; where TypeScript keeps
// a copy (a type, a request schema), these tests fail when the two differ.
import assert from "node:assert/strict";
import {
  CALL_STATUSES,
  outcomeFromError,
  OUTCOMES,
} from "../../supabase/functions/_shared/outcomes.ts";
import { DISPOSITIONS } from "../../supabase/functions/call-report/reports.ts";
import { EVENT_TYPES } from "../../supabase/functions/_shared/event_types.ts";
import {
  CALL_DURATION_SEC,
  DEFAULT_ALLOWED_COUNTRIES,
  RINGING_TIMEOUT_SEC,
} from "../../supabase/functions/_shared/schemas.ts";
import { sql } from "../helpers/stack.ts";

Deno.test("the call statuses are public.call_status's, in order", async () => {
  const [{ values }] = await sql<{ values: string[] }[]>`
    select enum_range(null::public.call_status)::text[] as values`;
  assert.deepEqual([...CALL_STATUSES], values);
});

Deno.test("the final statuses are internal.call_is_final's: the ones a status can never leave", async () => {
  const rows = await sql<{ status: string; final: boolean }[]>`
    select s::text as status, internal.call_is_final(s) as final
    from unnest(enum_range(null::public.call_status)) s`;
  assert.deepEqual(
    rows.filter((r) => r.final).map((r) => r.status),
    ["completed", "busy", "no_answer", "failed"],
  );
});

Deno.test("every outcome a dial maps to is a row of internal.call_outcome, with the same final status", async () => {
  const table = new Map(
    (await sql<{ outcome: string; call_status: string }[]>`
      select outcome, call_status::text from internal.call_outcome`).map((
      r,
    ) => [r.outcome, r.call_status]),
  );
  for (const o of OUTCOMES) assert.ok(table.has(o), `${o} is not in internal.call_outcome`);
  // Every SIP final answer and every LiveKit error code the dial can see.
  const seen = new Set<string>();
  const codes = [
    "canceled",
    "deadline_exceeded",
    "not_found",
    "unavailable",
    "internal",
    "unknown",
  ];
  const mapped = [
    ...Array.from({ length: 300 }, (_, i) =>
      outcomeFromError({
        code: "failed_precondition",
        status: 412,
        sipStatusCode: 400 + i,
        sipStatus: "",
      })),
    outcomeFromError({
      code: "failed_precondition",
      status: 412,
      sipStatusCode: 503,
      sipStatus: "CPS limit",
    }),
    outcomeFromError({
      code: "permission_denied",
      status: 403,
      sipStatusCode: 603,
      sipStatus: "fraud",
    }),
    ...codes.map((code) => outcomeFromError({ code, status: null, sipStatusCode: null })),
  ];
  for (const m of mapped) {
    seen.add(m.outcome);
    assert.equal(m.status, table.get(m.outcome), `${m.outcome} ends as ${table.get(m.outcome)}`);
  }
  assert.ok(seen.size >= 10, `the mapping reached ${seen.size} outcomes`);
});

Deno.test("the agent's dispositions are internal.call_outcome's reportable ones", async () => {
  const rows = await sql<{ outcome: string }[]>`
    select outcome from internal.call_outcome where reportable order by outcome`;
  assert.deepEqual([...DISPOSITIONS].sort(), rows.map((r) => r.outcome));
});

Deno.test("the webhook event types are internal.webhook_event_types()", async () => {
  const [{ types }] = await sql<
    { types: string[] }[]
  >`select internal.webhook_event_types() as types`;
  assert.deepEqual([...EVENT_TYPES], types);
});

/** A campaigns column's `between a and b` check and its default, as the database holds them. */
async function columnRule(column: string) {
  const [c] = await sql<{ def: string; fallback: string }[]>`
    select pg_get_constraintdef(k.oid) as def, pg_get_expr(d.adbin, d.adrelid) as fallback
    from pg_constraint k
    join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)
    join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where k.conrelid = 'public.campaigns'::regclass and k.contype = 'c' and a.attname = ${column}`;
  const m = /\(\((\w+) >= (\d+)\) AND \(\1 <= (\d+)\)\)/.exec(c.def);
  assert.ok(m, `${column}: ${c.def}`);
  return { min: Number(m[2]), max: Number(m[3]), fallback: Number(c.fallback) };
}

Deno.test("a call's ringing timeout and length have the campaigns' limits and defaults", async () => {
  assert.deepEqual(await columnRule("ringing_timeout_sec"), { ...RINGING_TIMEOUT_SEC });
  assert.deepEqual(await columnRule("max_call_duration_sec"), { ...CALL_DURATION_SEC });
});

Deno.test("the destination countries default to the campaigns' default", async () => {
  const [{ fallback }] = await sql<{ fallback: string[] }[]>`
    select (pg_get_expr(d.adbin, d.adrelid))::text as fallback
    from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
    where d.adrelid = 'public.campaigns'::regclass and a.attname = 'allowed_countries'`;
  assert.equal(fallback, `'{${DEFAULT_ALLOWED_COUNTRIES.join(",")}}'::text[]`);
});
