// The demo the run command shows: a user, an assistant, a number assigned through
// map-number, and a small campaign dialed by campaign-tick against the emulators, with
// live progress. Every step goes through the product's own paths.
import postgres from "postgres";
import { mintUserToken } from "./keys.ts";
import type { StackInfo } from "./stack.ts";

// Callees chosen by the LiveKit emulator's outcome table (last three digits).
const CONTACTS = [
  { phoneNumber: "+1 (212) 555-0905", name: "Ada (answers, 5 s)" },
  { phoneNumber: "212-555-1910", name: "Grace (answers, 10 s)" },
  { phoneNumber: "+1 312 555 0486", name: "Linus (busy)" },
  { phoneNumber: "+1 415 555 2408", name: "Barbara (no answer)" },
  { phoneNumber: "+1 303 555 0480", name: "Ken (unavailable)" },
  { phoneNumber: "+1 617 555 0404", name: "Dennis (not found)" },
  { phoneNumber: "+1 206 555 0903", name: "Margaret (answers, 3 s)" },
  { phoneNumber: "+1 305 555 0977", name: "Edsger (do-not-call)" },
  { phoneNumber: "+44 20 7123 4567", name: "Alan (outside the allowed countries)" },
];

const line = (cols: (string | number)[], widths: number[]) =>
  cols.map((c, i) => String(c).padEnd(widths[i])).join(" ");

export async function runDemo(info: StackInfo, opts: { once: boolean; log: (s: string) => void }) {
  const say = opts.log;
  const sql = postgres(info.dbUrl, { max: 2, onnotice: () => {} });
  try {
    const email = `demo-${Date.now()}@example.com`;
    const [user] = await sql<
      { id: string }[]
    >`insert into auth.users (email) values (${email}) returning id`;
    const token = await mintUserToken(info, { id: user.id, email });
    const [assistant] = await sql<{ id: string }[]>`
      insert into public.assistant (owner_id, name, agent_name) values (${user.id}, 'Renewals assistant', 'renewals-agent')
      returning id`;
    const number = info.numbers[0] ?? Deno.env.get("DEMO_NUMBER");
    if (!number) {
      throw new Error("No number to assign: set DEMO_NUMBER to a number of your Twilio account.");
    }

    say(`\ndemo: assigning ${number} to the assistant through map-number ...`);
    const mapped = await fetch(`${info.supabaseUrl}/functions/v1/map-number`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${token}`,
        apikey: info.anonKey,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ phoneNumber: number, assistantId: assistant.id, label: "Demo line" }),
    });
    const body = await mapped.json();
    if (!mapped.ok) {
      throw new Error(`map-number answered ${mapped.status}: ${JSON.stringify(body)}`);
    }
    const n = body.phoneNumber;
    say(
      `demo: ${n.e164} is ${n.trunkStatus}: inbound ${n.inboundTrunkId}, rule ${n.dispatchRuleId}, outbound ${n.outboundTrunkId}`,
    );

    const [campaign] = await sql<{ id: string }[]>`
      insert into public.campaigns (owner_id, name, assistant_id, phone_number_id, window_start, window_end,
        weekdays, max_concurrent, max_attempts, retry_busy_sec, retry_no_answer_sec, retry_failed_sec, retry_backoff)
      values (${user.id}, 'Demo renewals', ${assistant.id}, ${n.id}, '00:00', '23:59:59', '{1,2,3,4,5,6,7}',
        3, 2, 3, 3, 3, 1)
      returning id`;
    await sql`insert into public.do_not_call (owner_id, e164, reason) values (${user.id}, '+13055550977', 'asked not to be called')`;
    // Contacts are imported the way a client does it: the RPC, under the user's RLS.
    const [imported] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
        set_config('request.jwt.claims', ${
        JSON.stringify({ sub: user.id, role: "authenticated" })
      }, true)`;
      return await tx`select public.add_campaign_calls(${campaign.id}, ${tx.json(CONTACTS)}) as r`;
    });
    say(`demo: imported contacts ${JSON.stringify(imported.r)}`);
    await sql`update public.campaigns set status = 'running' where id = ${campaign.id}`;
    say(`demo: campaign running (pg_cron ticks it; finished calls refill their slot at once)\n`);

    const widths = [10, 8, 8, 8, 8, 10, 8, 8, 10, 8, 8];
    say(
      line([
        "status",
        "queued",
        "dialing",
        "talking",
        "done",
        "busy",
        "no-ans",
        "failed",
        "retrying",
        "skipped",
        "attempts",
      ], widths),
    );
    let last = "";
    for (let i = 0; i < 600; i++) {
      // Locally pg_cron (1.4) ticks once a minute; Supabase's seconds schedule ticks every few seconds.
      await sql`select internal.tick_campaigns()`;
      const [p] =
        await sql`select * from public.campaign_progress where campaign_id = ${campaign.id}`;
      const row = line([
        p.status,
        p.queued,
        p.dialing,
        p.in_progress,
        p.completed,
        p.busy,
        p.no_answer,
        p.failed,
        p.retrying,
        p.skipped,
        p.attempts,
      ], widths);
      if (row !== last) say(row);
      last = row;
      if (p.status === "completed" || p.status === "paused" || p.status === "cancelled") {
        if (p.status_reason) say(`(${p.status_reason})`);
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }

    const calls = await sql`
      select cc.e164, cc.name, cc.status, cc.attempts, cc.last_outcome, cc.timezone
      from public.campaign_calls cc where cc.campaign_id = ${campaign.id} order by cc.created_at`;
    const w = [14, 38, 11, 9, 24, 20];
    say("\n" + line(["callee", "name", "status", "attempts", "last outcome", "time zone"], w));
    for (const c of calls) {
      say(
        line(
          [c.e164, c.name ?? "", c.status, c.attempts, c.last_outcome ?? "", c.timezone ?? ""],
          w,
        ),
      );
    }
    say(`\nrejected at import: ${JSON.stringify(imported.r.rejected)}`);
    if (!opts.once) say("\ndemo done; the stack keeps running (Ctrl-C stops it)");
  } finally {
    await sql.end();
  }
}
