// "A user with an assistant and ready numbers", set up one way for the demo, the tests and the
// benchmarks: the user and assistant as rows, each number through the product's own path
// (map-number provisions the LiveKit trunks and the Twilio side), then its outbox job drained so
// nothing provisions it again behind the caller's back.
import { eventually } from "./poll.ts";
import type postgres from "postgres";
import { mintUserToken } from "./supabase/keys.ts";
import type { StackInfo } from "./stack.ts";

export interface Fixture {
  info: Pick<StackInfo, "supabaseUrl" | "numbers" | "issuer" | "privateJwk">;
  /** The project's connection to the stack's database (the `postgres` role, not a superuser). */
  sql: postgres.Sql;
}

export interface FixtureUser {
  id: string;
  email: string;
  /** A session token for the user, as Auth would sign it. */
  token: string;
}

export interface ReadyNumber {
  id: string;
  e164: string;
  inboundTrunkId: string;
  dispatchRuleId: string;
  outboundTrunkId: string;
}

export async function createUser(f: Fixture, label: string): Promise<FixtureUser> {
  const email = `${label}-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const [{ id }] = await f.sql<{ id: string }[]>`
    insert into auth.users (email) values (${email}) returning id`;
  return { id, email, token: await mintUserToken(f.info, { id, email }) };
}

export async function createAssistant(
  f: Fixture,
  user: Pick<FixtureUser, "id">,
  agentName: string,
  name = agentName,
): Promise<string> {
  const [a] = await f.sql<{ id: string }[]>`
    insert into public.assistant (owner_id, name, agent_name)
    values (${user.id}, ${name}, ${agentName}) returning id`;
  return a.id;
}

/** Seeded numbers of the Twilio emulator that nothing has taken yet. */
export async function freeNumbers(f: Fixture, count: number): Promise<string[]> {
  const rows = await f.sql<{ n: string }[]>`
    select n from unnest(${f.info.numbers}::text[]) n
    where not exists (select from public.phone_number p where p.e164 = n)
      and not exists (select from internal.provisioning_job j where j.e164 = n)
    order by random() limit ${count}`;
  if (rows.length < count) throw new Error(`only ${rows.length} free seeded numbers left`);
  return rows.map((r) => r.n);
}

/** Waits until no provisioning job is open for these numbers (bounded). */
export async function outboxDrained(f: Fixture, e164s: string[], timeoutMs = 30_000) {
  await eventually(
    async () => {
      const [j] = await f.sql<{ open: number }[]>`
        select count(*)::int as open from internal.provisioning_job
        where e164 = any(${e164s}::text[]) and status in ('pending', 'running')`;
      return j.open === 0;
    },
    `the provisioning outbox of ${e164s.join(", ")} to drain`,
    timeoutMs,
  );
}

/** Assigns the number to the assistant through map-number, ready, with its outbox drained. */
export async function assignNumber(
  f: Fixture,
  token: string,
  assistantId: string,
  e164: string,
  label?: string,
): Promise<ReadyNumber> {
  const res = await fetch(`${f.info.supabaseUrl}/functions/v1/map-number`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ phoneNumber: e164, assistantId, ...(label ? { label } : {}) }),
  });
  const text = await res.text();
  const n = res.status === 200 ? JSON.parse(text).phoneNumber : null;
  if (n?.trunkStatus !== "ready") {
    throw new Error(`map-number ${e164} answered ${res.status}: ${text}`);
  }
  await outboxDrained(f, [e164]);
  return {
    id: n.id,
    e164: n.e164,
    inboundTrunkId: n.inboundTrunkId,
    dispatchRuleId: n.dispatchRuleId,
    outboundTrunkId: n.outboundTrunkId,
  };
}

/** `count` free numbers made ready for the assistant, a few at a time (each provisions under a lock). */
export async function readyNumbers(
  f: Fixture,
  user: FixtureUser,
  assistantId: string,
  count: number,
): Promise<ReadyNumber[]> {
  const free = await freeNumbers(f, count);
  const ready: ReadyNumber[] = [];
  for (let i = 0; i < free.length; i += 4) {
    ready.push(
      ...await Promise.all(
        free.slice(i, i + 4).map((e164) => assignNumber(f, user.token, assistantId, e164)),
      ),
    );
  }
  return ready;
}

/** A new user whose new assistant has one ready number. */
export async function readyAssistant(f: Fixture, label: string) {
  const user = await createUser(f, label);
  const assistantId = await createAssistant(f, user, `${label}-agent`, `${label} assistant`);
  const [number] = await readyNumbers(f, user, assistantId, 1);
  return { user, assistantId, number };
}
