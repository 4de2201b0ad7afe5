// The console (console/) in a real browser: Debian's chromium driven by playwright-core against
// the test stack. Each test compares what the console shows with what the tables hold (read here
// with SQL). Screenshots of the main screens go to .local/console/. Each test's result goes to
// <state>/console.jsonl, which `deno task test` reports as one line.
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { ROOT } from "../../stack/stack.ts";
import { buildConsole, serveConsole } from "../../stack/console.ts";
import {
  configureLiveKit,
  eventually,
  freeNumber,
  freeNumbers,
  sql,
  stack,
} from "../helpers/stack.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = `${ROOT}/.local/console`;
const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1280, height: 860 };

/** One browser, one served console and one signed-up user for the whole file, in order. */
const state: {
  browser?: Browser;
  version?: string;
  url?: string;
  stop?: () => Promise<void>;
  page?: Page;
  email: string;
  password: string;
  userId?: string;
  client?: SupabaseClient;
  campaignId?: string;
} = {
  email: `console-${crypto.randomUUID().slice(0, 8)}@example.com`,
  password: `pw-${crypto.randomUUID()}`,
};

async function setUp(): Promise<Page> {
  if (state.page) return state.page;
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `chromium is missing at ${CHROMIUM}: the console's browser tests need Debian's chromium. ` +
        "Run: apt-get install -y chromium",
    );
  }
  await buildConsole(() => {});
  const served = serveConsole({
    supabaseUrl: stack.supabaseUrl,
    anonKey: stack.anonKey,
    realtime: false,
  });
  state.url = served.url;
  state.stop = served.stop;
  state.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  state.version = state.browser.version();
  const context = await state.browser.newContext({ viewport: LAPTOP });
  state.page = await context.newPage();
  await Deno.mkdir(SHOTS, { recursive: true });
  return state.page;
}

/** A test in the browser; counted for `deno task test`'s console line when it passes. */
function browserTest(name: string, fn: (page: Page) => Promise<void>) {
  Deno.test({
    name,
    // The browser and the console's server live across the file's tests.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      let passed = false;
      try {
        await fn(await setUp());
        passed = true;
      } finally {
        Deno.writeTextFileSync(
          `${stack.stateDir}/console.jsonl`,
          JSON.stringify({ test: name, passed, chromium: state.version ?? null }) + "\n",
          { append: true },
        );
      }
    },
  });
}

const go = async (page: Page, hash: string) => {
  await page.goto(`${state.url}#${hash}`);
};
const shot = (page: Page, name: string) =>
  page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: false });
const row = (page: Page, attr: string, value: string) => page.locator(`tr[${attr}="${value}"]`);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

async function userClient(): Promise<SupabaseClient> {
  if (state.client) return state.client;
  const client = createClient(stack.supabaseUrl, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const { error } = await client.auth.signInWithPassword({
    email: state.email,
    password: state.password,
  });
  if (error) throw error;
  return state.client = client;
}

browserTest("console: sign up, sign out and sign in again", async (page) => {
  await go(page, "/campaigns");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await shot(page, "sign-in");
  await page.getByRole("button", { name: "No account? Sign up" }).click();
  await page.getByLabel("Email").fill(state.email);
  await page.getByLabel("Password").fill(state.password);
  await page.getByRole("button", { name: "Sign up", exact: true }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  await page.locator(".email", { hasText: state.email }).waitFor();
  const [user] = await sql`select id from auth.users where email = ${state.email}`;
  assert.ok(user, "the sign-up made the user");
  state.userId = user.id;
  // The local stack has no Realtime: the console says it polls.
  assert.match(await page.getByTestId("live-mode").innerText(), /polling every 2 s/);

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("Email").fill(state.email);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: /invalid/i }).waitFor();
  await page.getByLabel("Password").fill(state.password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
});

browserTest(
  "console: a number assigned to an assistant shows ready, then moves (confirmed) and is released",
  async (page) => {
    await go(page, "/assistants");
    for (const name of ["Receptionist", "Sales"]) {
      await page.getByLabel("Assistant name").fill(name);
      await page.getByLabel("Agent name (LiveKit)").fill(name.toLowerCase());
      await page.getByRole("button", { name: "Add assistant" }).click();
      await page.getByRole("region", { name: `Assistant ${name}` }).waitFor();
    }
    const [e164, moving] = await freeNumbers(2);
    const receptionist = page.getByRole("region", { name: "Assistant Receptionist" });
    const sales = page.getByRole("region", { name: "Assistant Sales" });
    for (const n of [e164, moving]) {
      await receptionist.getByLabel("Number (E.164)").fill(n);
      await receptionist.getByRole("button", { name: "Assign number" }).click();
      await receptionist.locator(`tr[data-number="${n}"] .badge`, { hasText: "ready" }).waitFor();
      const [db] =
        await sql`select trunk_status, assistant_id from public.phone_number where e164 = ${n}`;
      assert.equal(db.trunk_status, "ready");
    }
    await shot(page, "assistants");

    // Moving an assigned number asks first (map-number's 409), then moves it with force.
    const r = row(page, "data-number", moving);
    await r.getByLabel(`Move ${moving} to`).selectOption({ label: "Sales" });
    await r.getByRole("button", { name: "Move", exact: true }).click();
    const confirm = page.getByRole("group", { name: "Confirm move" });
    await confirm.waitFor();
    let [db] = await sql`select a.name from public.phone_number p
    join public.assistant a on a.id = p.assistant_id where p.e164 = ${moving}`;
    assert.equal(db.name, "Receptionist", "nothing moved before the confirmation");
    await confirm.getByRole("button", { name: "Move it" }).click();
    await sales.locator(`tr[data-number="${moving}"] .badge`, { hasText: "ready" }).waitFor();
    [db] = await sql`select a.name from public.phone_number p
    join public.assistant a on a.id = p.assistant_id where p.e164 = ${moving}`;
    assert.equal(db.name, "Sales");

    await sales.locator(`tr[data-number="${moving}"]`).getByRole("button", { name: "Release" })
      .click();
    await sales.getByRole("group", { name: "Confirm" }).getByRole("button", { name: "Yes" })
      .click();
    await page.getByRole("region", { name: "Numbers without an assistant" })
      .locator(`tr[data-number="${moving}"] .badge`, { hasText: "released" }).waitFor();
    [db] =
      await sql`select trunk_status, assistant_id from public.phone_number where e164 = ${moving}`;
    assert.deepEqual([db.trunk_status, db.assistant_id], ["released", null]);
  },
);

browserTest(
  "console: a number whose provisioning fails shows its error, and Retry makes it ready",
  async (page) => {
    await go(page, "/assistants");
    const e164 = await freeNumber();
    const receptionist = page.getByRole("region", { name: "Assistant Receptionist" });
    // LiveKit fails until the error shown is compared with the table's, so no retry can end it.
    await configureLiveKit({ failureRate: 1 });
    try {
      await receptionist.getByLabel("Number (E.164)").fill(e164);
      await receptionist.getByRole("button", { name: "Assign number" }).click();
      await receptionist.locator(`tr[data-number="${e164}"] .badge`, { hasText: "error" })
        .waitFor();
      const [db] =
        await sql`select trunk_status, trunk_error from public.phone_number where e164 = ${e164}`;
      assert.equal(db.trunk_status, "error");
      // The row shows the error the table holds. A retry may change it (which LiveKit request
      // failed first) and the console polls: they agree within a few polls.
      const shown = await eventually(
        async () => {
          const text = await row(page, "data-number", e164).getByTestId("trunk-error").innerText()
            .catch(() => null);
          const [now] = await sql`select trunk_error from public.phone_number where e164 = ${e164}`;
          return text !== null && text === now.trunk_error ? text : null;
        },
        "the row's error to be the table's",
        20_000,
      );
      assert.match(shown, /LiveKit/);
    } finally {
      await configureLiveKit({ failureRate: 0 });
    }
    await receptionist.getByRole("alert").filter({ hasText: /LiveKit/ }).first().waitFor();
    await shot(page, "number-error");
    const retry = row(page, "data-number", e164).getByTestId("retry");
    if (await retry.isVisible()) await retry.click();
    await receptionist.locator(`tr[data-number="${e164}"] .badge`, { hasText: "ready" }).waitFor();
    const [after] =
      await sql`select trunk_status, trunk_error from public.phone_number where e164 = ${e164}`;
    assert.deepEqual([after.trunk_status, after.trunk_error], ["ready", null]);
  },
);

browserTest(
  "console: the do-not-call list takes a number and shows what the table holds",
  async (page) => {
    await go(page, "/dnc");
    await page.getByLabel("Number (E.164)").fill("+19715550777");
    await page.getByLabel("Reason").fill("asked by letter");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await row(page, "data-number", "+19715550777").waitFor();
    await page.getByLabel("Number (E.164)").fill("not a number");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.getByRole("form", { name: "Add to the do-not-call list" }).getByRole("alert")
      .waitFor();
    const rows = await sql`select e164, reason from public.do_not_call where owner_id = ${state
      .userId!}`;
    assert.deepEqual(rows.map((r) => [r.e164, r.reason]), [["+19715550777", "asked by letter"]]);
    assert.equal(await page.locator("table[aria-label='Do-not-call list'] tbody tr").count(), 1);
  },
);

browserTest(
  "console: a campaign made in the form, contacts dropped as CSV, started, completes with the counts the database holds",
  async (page) => {
    await go(page, "/campaigns/new");
    await page.locator("#f-name").fill("Renewals");
    await page.locator("#f-assistant_id").selectOption({ label: "Receptionist" });
    await page.locator("#f-window_start").fill("00:00");
    await page.locator("#f-window_end").fill("23:59:59");
    await page.locator("input[name=weekday-6]").check();
    await page.locator("input[name=weekday-7]").check();
    // Out of the database's range: refused beside its field, nothing saved.
    await page.locator("#f-max_attempts").fill("11");
    await page.locator("#f-abandon_cap").fill("0");
    await page.getByRole("button", { name: "Create campaign" }).click();
    assert.match(
      await page.locator("[data-field-error=max_attempts]").innerText(),
      /between 1 and 10/,
    );
    assert.match(await page.locator("[data-field-error=abandon_cap]").innerText(), /above 0/);
    const [{ n }] =
      await sql`select count(*)::int as n from public.campaigns where owner_id = ${state
        .userId!}`;
    assert.equal(n, 0);
    await page.locator("#f-max_attempts").fill("1");
    await page.locator("#f-abandon_cap").fill("0.03");
    await page.getByRole("button", { name: "Create campaign" }).click();
    await page.getByRole("heading", { name: "Renewals" }).waitFor();
    const [campaign] = await sql`select * from public.campaigns where owner_id = ${state.userId!}`;
    state.campaignId = campaign.id;
    assert.deepEqual(
      [campaign.max_attempts, campaign.window_start, campaign.window_end, campaign.weekdays],
      [1, "00:00:00", "23:59:59", [1, 2, 3, 4, 5, 6, 7]],
    );

    // The CSV, dropped: three callees, a duplicate, a number on the do-not-call list, a bad row.
    // Numbers no other test dials (tests read the LiveKit emulator's calls by number).
    const csv = "phone,name,plan\n+1 971 555 0923,Ada,gold\n+1 971 555 0911,Grace,\n" +
      "+1 971 555 1486,Linus,\n+1 (971) 555-0923,Ada again,\n+1 971 555 0777,Opted out,\n12,Bad,\n";
    // The page's own DataTransfer (browser code as a string: this file is checked without the DOM).
    const dt = await page.evaluateHandle(`(() => {
      const t = new DataTransfer();
      t.items.add(new File([${JSON.stringify(csv)}], "contacts.csv", { type: "text/csv" }));
      return t;
    })()`);
    await page.getByTestId("drop-zone").dispatchEvent("drop", { dataTransfer: dt });
    const report = page.getByTestId("import-report");
    await report.waitFor();
    const reported = async (k: string) =>
      Number(await report.locator(`[data-report=${k}] dd`).innerText());
    // Contacts on the do-not-call list are kept, skipped; a duplicate is not kept.
    const [held] = await sql`select count(*) filter (where status = 'queued')::int as added,
      count(*) filter (where status = 'skipped')::int as skipped
    from public.campaign_calls where campaign_id = ${campaign.id}`;
    assert.equal(await reported("added"), held.added);
    assert.equal(await reported("skipped"), held.skipped);
    assert.deepEqual([held.added, held.skipped], [3, 1]);
    assert.equal(await reported("duplicates"), 1);
    assert.equal(await reported("rejected"), 1);
    const rejected = await report.getByRole("table", { name: "Rejected rows" }).locator("tbody tr")
      .allInnerTexts();
    assert.equal(rejected.length, 1);
    assert.match(rejected[0], /^7\s+12\s+/, "the header is row 1: the bad row is row 7");

    await page.getByRole("button", { name: "Start" }).click();
    await page.locator("p .badge", { hasText: "completed" }).waitFor({ timeout: 60_000 });
    const [p] =
      await sql`select * from public.campaign_progress where campaign_id = ${campaign.id}`;
    assert.equal(p.status, "completed");
    for (
      const k of [
        "queued",
        "dialing",
        "in_progress",
        "completed",
        "busy",
        "no_answer",
        "retrying",
        "skipped",
        "failed",
        "cancelled",
        "total",
      ]
    ) {
      assert.equal(
        await page.locator(`[data-count=${k}] dd`).innerText(),
        String(p[k]),
        `${k} as the database counts it`,
      );
    }
    assert.deepEqual([p.completed, p.busy, p.skipped, p.total], [2, 1, 1, 4]);
    const [r] = await sql`select count(*) filter (where answered_at is not null)::int as answered,
      count(*)::int as ended
    from public.outbound_calls where campaign_id = ${campaign.id} and ended_at is not null`;
    assert.match(
      await page.locator("[data-rate=answer] dd").innerText(),
      new RegExp(`^${pct(r.answered / r.ended).replace(".", "\\.")}$`),
    );
    assert.equal(
      await page.locator("[data-rate=abandonment] dd").innerText(),
      pct(Number(p.abandonment_rate)),
    );
    assert.equal(
      await page.locator("[data-rate=concurrency] dd").innerText(),
      String(campaign.max_concurrent),
    );
    // The chart's legend counts the ended calls by outcome.
    const outcomes = await sql`select outcome, count(*)::int as n from public.outbound_calls
    where campaign_id = ${campaign.id} and ended_at is not null group by outcome`;
    for (const o of outcomes) {
      assert.match(
        await page.locator(`.legend [data-outcome="${o.outcome}"]`).innerText(),
        new RegExp(` ${o.n}$`),
      );
    }
    await shot(page, "campaign");
    await go(page, "/campaigns");
    const listed = row(page, "data-campaign", campaign.id);
    await listed.waitFor();
    assert.equal(
      await listed.getByRole("progressbar").getAttribute("aria-valuenow"),
      String(p.completed + p.busy + p.no_answer + p.failed + p.skipped + p.cancelled),
    );
    await shot(page, "campaigns");
  },
);

browserTest(
  "console: calls filter by outcome and SIP status, and a call's timeline shows its steps and the agent's report",
  async (page) => {
    const id = state.campaignId!;
    await go(page, `/calls?campaign=${id}`);
    const calls = await sql`select * from public.outbound_calls where campaign_id = ${id}`;
    const table = page.getByRole("table", { name: "Calls" });
    await eventually(
      async () => (await table.locator("tbody tr").count()) === calls.length,
      "the calls",
    );
    await page.locator("select[name=outcome]").selectOption("busy");
    const busy = calls.filter((c) => c.outcome === "busy");
    await eventually(
      async () => (await table.locator("tbody tr").count()) === busy.length,
      "busy calls",
    );
    await table.locator(`tr[data-call="${busy[0].id}"]`).waitFor();
    await page.locator("input[name=sip]").fill("486");
    await eventually(
      async () =>
        (await table.locator("tbody tr").count()) ===
          calls.filter((c) => c.sip_status_code === 486).length,
      "calls with SIP 486",
    );
    await page.locator("input[name=sip]").fill("");
    await page.locator("select[name=outcome]").selectOption("");
    await eventually(
      async () => (await table.locator("tbody tr").count()) === calls.length,
      "every call again, the filters cleared",
    );
    await shot(page, "calls");

    const answered = calls.find((c) => c.answered_at && c.to_number === "+19715550923")!;
    const res = await fetch(`${stack.supabaseUrl}/functions/v1/call-report`, {
      method: "POST",
      headers: { Authorization: `Bearer ${stack.serviceKey}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        callId: answered.id,
        disposition: "completed",
        summary: "Ada renewed the gold plan.",
      }),
    });
    assert.equal(res.status, 200, await res.text());
    await table.locator(`tr[data-call="${answered.id}"] a`).click();
    await page.getByTestId("disposition").filter({ hasText: "completed" }).waitFor();
    await page.getByText("Ada renewed the gold plan.").waitFor();
    const [call] = await sql`select * from public.outbound_calls where id = ${answered.id}`;
    const steps: Record<string, Date | null> = {
      recorded: call.created_at,
      dialed: call.dialed_at,
      agent_joined: call.agent_joined_at,
      answered: call.answered_at,
      ended: call.ended_at,
      report: call.reported_at,
      transfer: call.transferred_at,
    };
    for (const [step, at] of Object.entries(steps)) {
      const shown = await page.locator(`[data-step=${step}] [data-at]`).getAttribute("data-at");
      if (at === null) assert.equal(shown, "", `${step} has not happened`);
      else assert.equal(new Date(shown!).getTime(), at.getTime(), `${step} at the time recorded`);
    }
    await shot(page, "call");
  },
);

browserTest(
  "console: number health shows what the table holds, and clearing a rest clears it",
  async (page) => {
    // The number the campaign called from.
    const [n] = await sql`select p.id, p.e164 from public.phone_number p
    where p.id = (select phone_number_id from public.outbound_calls
                  where campaign_id = ${state.campaignId!} limit 1)`;
    const e164 = n.e164;
    await go(page, "/health");
    const r = row(page, "data-number", e164);
    await r.waitFor();
    const [h] = await sql`select * from public.phone_number_health where phone_number_id = ${n.id}`;
    assert.ok(h && h.calls > 0, "the campaign's calls were judged");
    assert.equal(await r.locator("[data-col=calls]").innerText(), String(h.calls));
    assert.match(
      await r.locator("[data-col=answer_rate]").innerText(),
      new RegExp(`^${pct(Number(h.answer_rate)).replace(".", "\\.")} ${h.answered} answered$`),
    );
    // A rest (as the health trigger sets one) shows with its reason until it is cleared.
    await sql`update public.phone_number set rest_until = now() + interval '1 day',
    rest_reason = 'answer rate 0.05 under 0.10' where id = ${n.id}`;
    await r.getByText("answer rate 0.05 under 0.10").waitFor();
    await shot(page, "health");
    await r.getByRole("button", { name: "Clear rest" }).click();
    await r.getByText("answer rate 0.05 under 0.10").waitFor({ state: "detached" });
    const [after] =
      await sql`select rest_until, rest_reason from public.phone_number where id = ${n.id}`;
    assert.deepEqual([after.rest_until, after.rest_reason], [null, null]);
  },
);

browserTest(
  "console: a webhook endpoint's secret is shown once, and a replay's deliveries are listed",
  async (page) => {
    const receiver = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        await req.body?.cancel();
        return new Response("ok");
      },
    );
    try {
      await go(page, "/webhooks");
      const types = await sql`select unnest(internal.webhook_event_types()) as t`;
      const boxes: string[] = [];
      for (const box of await page.getByRole("group", { name: "Events" }).locator("input").all()) {
        boxes.push((await box.getAttribute("value"))!);
      }
      assert.deepEqual(
        [...boxes].sort(),
        types.map((t) => t.t).sort(),
        "the console's event types",
      );
      const url = `http://127.0.0.1:${receiver.addr.port}/hook`;
      await page.getByLabel("URL").fill(url);
      await page.getByRole("button", { name: "Add endpoint" }).click();
      const secret = await page.getByTestId("secret").innerText();
      const [ep] = await sql`select id from public.webhook_endpoints where url = ${url}`;
      const [v] = await sql`select decrypted_secret from vault.decrypted_secrets
      where name = ${"webhook_secret:" + ep.id}`;
      assert.equal(secret, v.decrypted_secret);
      assert.match(secret, /^whsec_/);
      await shot(page, "webhooks");
      await page.getByRole("button", { name: "I have saved it" }).click();
      await page.reload();
      await row(page, "data-endpoint", ep.id).waitFor();
      assert.ok(!(await page.content()).includes(secret), "the secret is never shown again");

      await row(page, "data-endpoint", ep.id).getByRole("button", { name: "Deliveries" }).click();
      const replay = page.getByRole("form", { name: "Replay" });
      await replay.locator("select").selectOption({ label: "Renewals" });
      await replay.getByRole("button", { name: "Replay" }).click();
      const queued = Number((await page.getByTestId("replay-result").innerText()).split(" ")[0]);
      const [{ n }] = await sql`select count(*)::int as n from public.webhook_deliveries
      where endpoint_id = ${ep.id} and replay`;
      assert.equal(queued, n);
      assert.ok(n > 0, "the campaign's events are replayed");
      await eventually(
        async () => {
          const [{ left }] = await sql`select count(*)::int as left from public.webhook_deliveries
        where endpoint_id = ${ep.id} and status <> 'succeeded'`;
          return left === 0;
        },
        "the replayed deliveries to arrive",
        30_000,
      );
      const deliveries = page.getByRole("region", { name: "Deliveries" });
      await eventually(
        async () =>
          (await deliveries.locator("tbody .badge-succeeded").count()) === Math.min(n, 25),
        "the deliveries to show succeeded",
        10_000,
      );
    } finally {
      await receiver.shutdown();
    }
  },
);

browserTest(
  "console: 10,000 contacts page by 50, and every screen fits a phone's width",
  async (page) => {
    const client = await userClient();
    const [assistant] = await sql`select id from public.assistant where owner_id = ${state.userId!}
    and name = 'Receptionist'`;
    const longName = "A".repeat(200);
    const { data: c, error } = await client.from("campaigns").insert({
      name: longName,
      assistant_id: assistant.id,
    }).select().single();
    assert.equal(error, null);
    const contacts = Array.from({ length: 10_000 }, (_, i) => ({
      phoneNumber: `+1212555${String(i).padStart(4, "0")}`,
    }));
    const { data: imported, error: e2 } = await client.rpc("add_campaign_calls", {
      campaign_id: c.id,
      contacts,
    });
    assert.equal(e2, null);
    assert.equal(imported.added, 10_000);
    await page.setViewportSize(PHONE);
    try {
      await go(page, `/campaigns/${c.id}`);
      const pager = page.getByRole("navigation", { name: "contacts pages" });
      await pager.getByText("1-50 of 10000 contacts").waitFor();
      assert.equal(
        await page.getByRole("region", { name: "Contacts" }).locator("tbody tr").count(),
        50,
      );
      await pager.getByRole("button", { name: "Next" }).click();
      await pager.getByText("51-100 of 10000 contacts").waitFor();
      await shot(page, "campaign-phone");
      for (
        const hash of [
          "/campaigns",
          `/campaigns/${c.id}`,
          `/campaigns/${c.id}/edit`,
          "/assistants",
          "/calls",
          `/calls?campaign=${state.campaignId}`,
          "/health",
          "/dnc",
          "/webhooks",
        ]
      ) {
        await go(page, hash);
        await page.locator("main h1").first().waitFor();
        await page.waitForLoadState("networkidle");
        const [scroll, width] = await page.evaluate<number[]>(
          "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
        );
        assert.ok(scroll <= width, `#${hash} is ${scroll} px wide at ${width} px`);
      }
      // Keyboard: the sections are reached with Tab and opened with Enter.
      await go(page, "/campaigns");
      await page.locator("main h1").waitFor();
      let focused = "";
      for (let i = 0; i < 10 && focused !== "Calls"; i++) {
        await page.keyboard.press("Tab");
        focused = await page.evaluate<string>('document.activeElement?.textContent ?? ""');
      }
      assert.equal(focused, "Calls");
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { name: "Calls" }).waitFor();
    } finally {
      await page.setViewportSize(LAPTOP);
      await sql`delete from public.campaigns where id = ${c.id}`;
    }
  },
);

browserTest(
  "console: a refusal or a missing configuration is shown, never a blank page",
  async () => {
    const unconfigured = serveConsole({ supabaseUrl: "", anonKey: "", realtime: false });
    const wrongKey = serveConsole({
      supabaseUrl: stack.supabaseUrl,
      anonKey: "not-a-key",
      realtime: false,
    });
    const context = await state.browser!.newContext({ viewport: LAPTOP });
    try {
      const page = await context.newPage();
      await page.goto(unconfigured.url);
      assert.match(
        await page.getByRole("alert").innerText(),
        /not configured: supabaseUrl and anonKey/,
      );
      await page.goto(wrongKey.url);
      await page.getByLabel("Email").fill(state.email);
      await page.getByLabel("Password").fill(state.password);
      await page.getByRole("button", { name: "Sign in", exact: true }).click();
      assert.ok((await page.getByRole("alert").innerText()).length > 0);
    } finally {
      await context.close();
      await unconfigured.stop();
      await wrongKey.stop();
      // The last test: the browser and the console's server go.
      await state.browser?.close();
      await state.stop?.();
    }
  },
);
