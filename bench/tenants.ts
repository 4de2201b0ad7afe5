// Row 1c: row 1a's same-work comparison with many tenants at once. 20 users, each with its own
// assistant and one number, one campaign each with 1,000 calls queued: the campaign tick (one
// request per campaign at once, in a fresh process) against the graphile-worker dialer (one job
// per contact, in a fresh process) over the same numbers and callees at a budget neither
// reaches. 20,000 calls would take each dialer about 100 s, so each run dials for the same
// window and is then stopped: the tick's requests stop claiming after it (`budgetSec`) and
// finish the dials they claimed; the queue dialer stops taking jobs after it and lets the
// running ones finish. Calls per second and CPU per call over the whole run, as in row 1a.
import {
  createAssistant,
  createCampaign,
  createUser,
  type Ctx,
  fmt,
  type Line,
  mutePokes,
  provisionLines,
  queueCalls,
  type Row,
  type User,
} from "./lib.ts";
import {
  AGENT,
  AREAS,
  CONCURRENCY,
  cpuTotal,
  describe,
  HIGH_CPS,
  mean,
  type Measured,
  queueOver,
  tickOver,
} from "./same_work.ts";

/** Users, each with an assistant, one number and one campaign. */
const TENANTS = 20;
/** Calls queued per campaign for every run. */
const QUEUED = 1000;
/** How long each run dials before it is stopped, in seconds. */
const WINDOW_SEC = 12;
/** Where each area code's callees of the next tenant start: no two queues of a run share one. */
const CALLEE_STRIDE = 1100;

interface Tenant {
  user: User;
  assistantId: string;
  line: Line;
}

/** The tenants, made once: users, assistants and numbers through the product's own paths. */
async function tenantFixture(ctx: Ctx): Promise<Tenant[]> {
  const tenants: Tenant[] = [];
  // One after another: two tenants drawing a free number at once could draw the same one.
  for (let i = 0; i < TENANTS; i++) {
    const user = await createUser(ctx, `bench-tenant-${i}`);
    const assistantId = await createAssistant(ctx, user, AGENT);
    const [line] = await provisionLines(ctx, user, assistantId, 1, 100);
    tenants.push({ user, assistantId, line });
  }
  return tenants;
}

/** One campaign per tenant, QUEUED callees each, the same callees for every run. */
async function campaigns(ctx: Ctx, tenants: Tenant[], label: string): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, t] of tenants.entries()) {
    const id = await createCampaign(ctx, t.user, t.assistantId, t.line, `${label} ${i}`);
    await queueCalls(ctx, id, t.user.id, QUEUED, {
      areaCode: AREAS[i % AREAS.length],
      from: Math.floor(i / AREAS.length) * CALLEE_STRIDE,
    });
    ids.push(id);
  }
  await mutePokes(ctx, ids);
  return ids;
}

async function tick(ctx: Ctx, tenants: Tenant[]): Promise<Measured> {
  const ids = await campaigns(ctx, tenants, "tenants tick");
  const m = await tickOver(ctx, tenants.map((t) => t.line), ids, HIGH_CPS, WINDOW_SEC);
  ctx.say(
    `  campaign tick: ${describe(m)}; ${
      spread(m)
    }; ${m.deferred} given back, ${m.retaken} slots taken again after a miss, ${m.claims} claims`,
  );
  return m;
}

async function queue(ctx: Ctx, tenants: Tenant[]): Promise<Measured> {
  const ids = await campaigns(ctx, tenants, "tenants queue");
  const m = await queueOver(ctx, tenants.map((t) => t.line), ids, HIGH_CPS, WINDOW_SEC);
  ctx.say(`  graphile-worker dialer: ${describe(m)}; ${spread(m)}`);
  return m;
}

const spread = (m: Measured) =>
  `${m.perNumber.numbers} of ${TENANTS} tenants dialed, ${m.perNumber.fewest}-${m.perNumber.most} calls each`;

export async function tenants(ctx: Ctx): Promise<Row[]> {
  const ts = await tenantFixture(ctx);
  // Numbers of different users may share a carrier trunk: each run sets the budget of every
  // trunk its numbers dial through (setBudget).
  const trunks = await ctx.sql<{ trunk: string }[]>`
    select distinct coalesce(carrier_trunk, 'default') as trunk from public.phone_number
    where id in ${ctx.sql(ts.map((t) => t.line.id))}`;
  ctx.say(
    `  ${TENANTS} tenants on ${trunks.length} carrier trunk(s) (${
      trunks.map((t) => t.trunk).join(", ")
    }), each at ${HIGH_CPS}/s; ${WINDOW_SEC} s per run`,
  );
  // tick, queue, queue, tick: drift in the machine's load hits both alike.
  const ours1 = await tick(ctx, ts);
  const queue1 = await queue(ctx, ts);
  const queue2 = await queue(ctx, ts);
  const ours2 = await tick(ctx, ts);
  const ours = mean(ours1, ours2);
  const theirs = mean(queue1, queue2);
  const rate = ours.perSecond / theirs.perSecond;
  const cpu = cpuTotal(ours) / cpuTotal(theirs);
  const c = (m: Measured) =>
    `${fmt(m.cpuMs.process, 1)}+${fmt(m.cpuMs.postgres, 1)}+${fmt(m.cpuMs.emulator, 1)}`;
  const what = `same work, ${TENANTS} tenants x ${QUEUED} queued`;
  return [
    {
      id: "1c",
      what: `${what}: calls/s, tick / graphile-worker dialer`,
      ratio: rate,
      target: ">= 1.0",
      pass: rate >= 1,
      note: `${fmt(ours.perSecond, 0)} vs ${
        fmt(theirs.perSecond, 0)
      } calls/s (${ours.calls} and ${theirs.calls} calls in two ${WINDOW_SEC} s windows each; ${TENANTS} tenants x ${QUEUED} queued, 1 number each; budget ${HIGH_CPS}/s, worker concurrency ${CONCURRENCY}; tenants dialed ${ours1.perNumber.numbers}/${ours2.perNumber.numbers} vs ${queue1.perNumber.numbers}/${queue2.perNumber.numbers})`,
    },
    {
      id: "1c",
      what: `${what}: CPU ms/call, tick / graphile-worker dialer`,
      ratio: cpu,
      target: "<= 1.0",
      pass: cpu <= 1,
      note: `${fmt(cpuTotal(ours), 1)} vs ${fmt(cpuTotal(theirs), 1)} ms (process+pg+emulator: ${
        c(ours)
      } vs ${c(theirs)})`,
    },
  ];
}
