import assert from "node:assert/strict";
import {
  addTwilioNumber,
  asUser,
  call,
  configureLiveKit,
  createAssistant,
  createUser,
  DEFAULT_CARRIER_CPS,
  readyNumber,
  setCarrierCps,
  setNumberHealth,
  sql,
  type TestUser,
  twilioState,
} from "../helpers/stack.ts";
import { settled, startQuietly, tick } from "../helpers/campaigns.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** A number of the Twilio account in `area` that no test has used (the emulator learns it). */
const taken = new Set<string>();
async function numberIn(area: string): Promise<string> {
  for (;;) {
    const e164 = `+1${area}7${String(Math.floor(Math.random() * 1_000_000)).padStart(6, "0")}`;
    if (taken.has(e164)) continue;
    const [used] = await sql`select 1 from public.phone_number where e164 = ${e164}`;
    if (used) continue;
    taken.add(e164);
    await addTwilioNumber(e164);
    return e164;
  }
}

interface Pool {
  user: TestUser;
  assistantId: string;
  /** area code (or label) -> number */
  numbers: Map<string, { e164: string; numberId: string }>;
}

/** A user whose assistant has a ready number in each of `areas`. */
async function pool(label: string, areas: string[]): Promise<Pool> {
  const user = await createUser(label);
  const assistantId = await createAssistant(user, `${label} assistant`, `${label}-agent`);
  const numbers = new Map<string, { e164: string; numberId: string }>();
  for (const area of areas) {
    numbers.set(area, await readyNumber(user, assistantId, await numberIn(area)));
  }
  return { user, assistantId, numbers };
}

/** A campaign over `numberIds`, created by the owner through RLS, with its contacts imported. */
async function campaign(
  p: Pool,
  numberIds: string[],
  contacts: string[],
  settings: Record<string, unknown> = {},
): Promise<string> {
  const row = {
    name: `pool campaign ${crypto.randomUUID().slice(0, 6)}`,
    assistant_id: p.assistantId,
    caller_id_strategy: "local_presence",
    status: "draft",
    window_start: "00:00",
    window_end: "23:59:59",
    weekdays: [1, 2, 3, 4, 5, 6, 7],
    ringing_timeout_sec: 20,
    ...settings,
  };
  const [c] = await asUser(
    p.user,
    (tx) => tx`insert into public.campaigns ${tx(row)} returning id`,
  );
  await asUser(
    p.user,
    (tx) =>
      tx`update public.campaigns set caller_number_ids = ${numberIds}::uuid[] where id = ${c.id}`,
  );
  await asUser(
    p.user,
    (tx) =>
      tx`select public.add_campaign_calls(${c.id}, ${
        tx.json(contacts.map((phoneNumber) => ({ phoneNumber })))
      })`,
  );
  return c.id;
}

/** Every dial of the campaign: callee, caller id, attempt, in order. */
async function dials(campaignId: string) {
  return await sql<{ to: string; from: string; attempt: number; created_at: Date }[]>`
    select to_number as to, from_number as from, attempt, created_at from public.outbound_calls
    where campaign_id = ${campaignId} order by created_at`;
}

/** Callees in `area`, unique in this run, whose last three digits (`talk`) choose the outcome. */
let serial = 0;
function callees(area: string, count: number, talk = "200"): string[] {
  return Array.from({ length: count }, () => {
    serial++;
    const exchange = 700 + (serial % 300);
    const digit = Math.floor(serial / 300) % 10;
    return `+1${area}${exchange}${digit}${talk}`;
  });
}

Deno.test("local presence: each callee is dialed from its area code, else its state, else its country; retries keep the number", async () => {
  const p = await pool("presence", ["212", "415", "512"]);
  const ids = [...p.numbers.values()].map((n) => n.numberId);
  const e = (area: string) => p.numbers.get(area)!.e164;
  const ny = callees("212", 2);
  const sf = callees("415", 2);
  const tx = callees("512", 2);
  const manhattan = callees("646", 2); // New York, like 212
  const denver = callees("303", 2); // Colorado: no number there, the same country
  const [busyManhattan] = callees("646", 1, "486");
  const [busyDenver] = callees("303", 1, "486");
  const all = [...ny, ...sf, ...tx, ...manhattan, ...denver, busyManhattan, busyDenver];
  const id = await campaign(p, ids, all, {
    max_concurrent: 4,
    max_attempts: 3,
    retry_busy_sec: 0,
    retry_backoff: 1,
  });
  await setCarrierCps(DEFAULT_CARRIER_CPS);
  const started = Date.now();
  await startQuietly(id);
  const t = await tick({ campaignId: id, budgetSec: 30 });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  const progress = await settled(id);
  assert.equal(progress.completed, all.length - 2);
  assert.equal(progress.busy, 2);

  const made = await dials(id);
  const from = (to: string) => [...new Set(made.filter((d) => d.to === to).map((d) => d.from))];
  for (const c of ny) assert.deepEqual(from(c), [e("212")], `${c} from the 212 number`);
  for (const c of sf) assert.deepEqual(from(c), [e("415")], `${c} from the 415 number`);
  for (const c of tx) assert.deepEqual(from(c), [e("512")], `${c} from the 512 number`);
  for (const c of [...manhattan, busyManhattan]) {
    assert.deepEqual(from(c), [e("212")], `${c} (New York) from the 212 number`);
  }
  const pooled = new Set([...p.numbers.values()].map((n) => n.e164));
  for (const c of [...denver, busyDenver]) {
    const f = from(c);
    assert.equal(f.length, 1, `${c} always from one number: ${f}`);
    assert.ok(pooled.has(f[0]), `${c} from a number of the pool`);
  }
  // Retries: three attempts each, every one from the number of the first.
  for (const c of [busyManhattan, busyDenver]) {
    assert.equal(made.filter((d) => d.to === c).length, 3, `${c} dialed three times`);
  }
  const recorded =
    await sql`select e164, caller_number_id from public.campaign_calls where campaign_id = ${id}`;
  const byId = new Map([...p.numbers.values()].map((n) => [n.numberId, n.e164]));
  for (const r of recorded) {
    assert.deepEqual(
      [byId.get(r.caller_number_id)],
      from(r.e164),
      "the attempt records its number",
    );
  }
  // What the carrier saw agrees.
  const seen = (await twilioState()).terminations.filter((x: Json) =>
    all.includes(x.toNumber) && Date.parse(x.time) >= started
  );
  for (const x of seen) assert.deepEqual([x.fromNumber], from(x.toNumber));
});

Deno.test("only the owner's ready numbers of the campaign's assistant join a pool; a number leaving drops out", async () => {
  const p = await pool("poolrules", ["212", "415"]);
  const other = await pool("poolstranger", ["512"]);
  const a = p.numbers.get("212")!.numberId;
  const b = p.numbers.get("415")!.numberId;
  const stranger = other.numbers.get("512")!.numberId;
  const id = await campaign(p, [a, b, a], callees("212", 1));
  const [c] = await sql`select caller_number_ids from public.campaigns where id = ${id}`;
  assert.deepEqual(c.caller_number_ids, [a, b], "duplicates dropped, order kept");
  await assert.rejects(
    asUser(
      p.user,
      (tx) =>
        tx`update public.campaigns set caller_number_ids = ${[
          a,
          stranger,
        ]}::uuid[] where id = ${id}`,
    ),
    /caller number/,
    "another owner's number is refused",
  );
  // A second assistant's number is the owner's but not this campaign's assistant's.
  const second = await createAssistant(p.user, "second", "second-agent");
  const elsewhere = await readyNumber(p.user, second, await numberIn("303"));
  await assert.rejects(
    asUser(
      p.user,
      (tx) =>
        tx`update public.campaigns set caller_number_ids = ${[
          a,
          elsewhere.numberId,
        ]}::uuid[] where id = ${id}`,
    ),
    /caller number/,
    "a number of another assistant is refused",
  );
  // Moving 415 to the other assistant drops it from the pool.
  const moved = await call("map-number", {
    token: p.user.token,
    body: { phoneNumber: p.numbers.get("415")!.e164, assistantId: second, force: true },
  });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  const [after] = await sql`select caller_number_ids from public.campaigns where id = ${id}`;
  assert.deepEqual(after.caller_number_ids, [a], "the moved number left the pool");
});

Deno.test("a number whose calls keep ending under 12 s rests after the minimum sample; the campaign goes on from the others; all resting pauses", async () => {
  // Calls last long enough here to tell 5 s from 20 s: a time scale of 0.05 (12 s = 600 ms).
  const scale = 0.05;
  const before = await setNumberHealth({ short_call_sec: 12 * scale, min_answered: 10 });
  await configureLiveKit({ timeScale: scale });
  try {
    const p = await pool("rest", ["212", "415", "512"]);
    const ids = [...p.numbers.values()].map((n) => n.numberId);
    const tired = p.numbers.get("512")!;
    const others = new Set([p.numbers.get("212")!.e164, p.numbers.get("415")!.e164]);
    // Callees in 512 hang up after 5 s; the others talk 20 s.
    const short = callees("512", 12, "905");
    const id = await campaign(p, ids, [...short, ...callees("212", 2), ...callees("415", 2)], {
      max_concurrent: 1,
    });
    await setCarrierCps(DEFAULT_CARRIER_CPS);
    await startQuietly(id);
    assert.equal((await tick({ campaignId: id, budgetSec: 25 })).status, 200);
    await settled(id);

    const [number] =
      await sql`select rest_until, rest_reason from public.phone_number where id = ${tired.numberId}`;
    assert.ok(number.rest_until > new Date(), "the 512 number rests");
    assert.match(number.rest_reason, /10 of its last 10 answered calls ended under 0\.6 s/);
    const made = await dials(id);
    const fromTired = made.filter((d) => d.from === tired.e164);
    assert.equal(fromTired.length, 10, "dialed from until the minimum sample, not after");
    const rerouted = made.filter((d) => short.includes(d.to) && d.from !== tired.e164);
    assert.equal(rerouted.length, 2, "the rest of its callees went out from the others");
    assert.ok(rerouted.every((d) => others.has(d.from)));

    // The owner sees the rest and its measures.
    const [seen] = await asUser(
      p.user,
      (tx) =>
        tx`select p.rest_until, p.rest_reason, h.answered, h.short_calls, h.short_share from public.phone_number p
        join public.phone_number_health h on h.phone_number_id = p.id where p.id = ${tired.numberId}`,
    );
    assert.ok(seen?.rest_until, "the owner sees rest_until");
    assert.equal(seen.short_calls, 10);

    // Every campaign skips it: one that has only this number pauses with the reason.
    const solo = await campaign(p, [tired.numberId], callees("512", 2), {
      caller_id_strategy: "fixed",
    });
    await startQuietly(solo);
    assert.equal((await tick({ campaignId: solo })).status, 200);
    const [paused] =
      await sql`select status, status_reason from public.campaigns where id = ${solo}`;
    assert.equal(paused.status, "paused");
    assert.match(paused.status_reason, /every caller number is resting/);
    assert.match(paused.status_reason, /ended under 0\.6 s/);
    assert.equal((await dials(solo)).length, 0, "nothing dialed from a resting number");

    // The owner clears the rest and resumes: the number dials again.
    await asUser(
      p.user,
      (tx) => tx`update public.phone_number set rest_until = null where id = ${tired.numberId}`,
    );
    const [cleared] =
      await sql`select rest_until, rest_reason from public.phone_number where id = ${tired.numberId}`;
    assert.equal(cleared.rest_until, null);
    assert.equal(cleared.rest_reason, null);
    await startQuietly(solo);
    assert.equal((await tick({ campaignId: solo })).status, 200);
    await settled(solo);
    assert.ok((await dials(solo)).every((d) => d.from === tired.e164));
  } finally {
    await configureLiveKit({ timeScale: 0.001 });
    await setNumberHealth(before);
  }
});

Deno.test("a campaign whose numbers all rest pauses with the reason once the last one rests", async () => {
  const scale = 0.05;
  const before = await setNumberHealth({ short_call_sec: 12 * scale, min_answered: 10 });
  await configureLiveKit({ timeScale: scale });
  try {
    const p = await pool("allrest", ["512"]);
    const only = p.numbers.get("512")!;
    const id = await campaign(p, [only.numberId], callees("512", 13, "903"), {
      max_concurrent: 1,
      caller_id_strategy: "fixed",
    });
    await setCarrierCps(DEFAULT_CARRIER_CPS);
    await startQuietly(id);
    assert.equal((await tick({ campaignId: id, budgetSec: 25 })).status, 200);
    const progress = await settled(id, "paused");
    assert.equal(progress.completed, 10);
    assert.equal(progress.queued, 3);
    assert.match(progress.status_reason, /every caller number is resting \(\+1512/);
  } finally {
    await configureLiveKit({ timeScale: 0.001 });
    await setNumberHealth(before);
  }
});

Deno.test("a pool of 20 numbers on one carrier trunk keeps its 2 cps in every sliding second", async () => {
  const user = await createUser("pool20");
  const assistantId = await createAssistant(user, "pool20 assistant", "pool20-agent");
  const numbers: { e164: string; numberId: string }[] = [];
  for (let i = 0; i < 20; i += 5) {
    numbers.push(
      ...await Promise.all(
        Array.from(
          { length: 5 },
          async () => readyNumber(user, assistantId, await numberIn("415")),
        ),
      ),
    );
  }
  const p: Pool = { user, assistantId, numbers: new Map(numbers.map((n) => [n.e164, n])) };
  const trunks = await sql`select distinct carrier_trunk from public.phone_number
    where id = any(${numbers.map((n) => n.numberId)}::uuid[])`;
  assert.equal(trunks.length, 1, "the 20 numbers share one carrier trunk");
  const contacts = callees("415", 24);
  const id = await campaign(p, numbers.map((n) => n.numberId), contacts, { max_concurrent: 20 });
  const started = Date.now();
  try {
    await setCarrierCps(2);
    await startQuietly(id);
    assert.equal((await tick({ campaignId: id, budgetSec: 60 })).status, 200);
    await settled(id);
  } finally {
    await setCarrierCps(DEFAULT_CARRIER_CPS);
  }
  const invites = (await twilioState()).terminations.filter((t: Json) =>
    contacts.includes(t.toNumber) && Date.parse(t.time) >= started
  );
  assert.ok(
    invites.every((t: Json) => t.outcome === "accepted"),
    `the carrier rejected none: ${JSON.stringify(invites.map((t: Json) => [t.time, t.outcome]))}`,
  );
  assert.equal(invites.length, 24, "every callee dialed once");
  assert.equal(new Set(invites.map((t: Json) => t.fromNumber)).size, 20, "from all 20 numbers");
  const times = invites.map((t: Json) => Date.parse(t.time)).sort((x: number, y: number) => x - y);
  for (let i = 2; i < times.length; i++) {
    assert.ok(times[i] - times[i - 2] >= 1000, `3 INVITEs within one second at ${i}`);
  }
});
