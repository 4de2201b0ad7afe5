// The demo the run command shows, done the way a frontend does it: supabase-js signs up a
// user, creates an assistant, assigns a number through map-number, creates a campaign, adds a
// do-not-call entry, imports contacts with the add_campaign_calls RPC and starts the campaign;
// campaign-tick dials against the emulators and the progress view shows it live.
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { demoReceiver } from "./demo_webhooks.ts";
import { assignNumber } from "../fixtures.ts";
import type { StackInfo } from "../stack.ts";

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

/** Throws with PostgREST's or the function's message when a supabase-js call failed. */
function must<T>(what: string, r: { data: T; error: unknown }): NonNullable<T> {
  if (r.error || r.data === null || r.data === undefined) {
    const e = r.error as { message?: string; code?: string } | null;
    throw new Error(`${what}: ${e?.code ? `${e.code} ` : ""}${e?.message ?? "no data"}`);
  }
  return r.data as NonNullable<T>;
}

export async function runDemo(info: StackInfo, opts: { once: boolean; log: (s: string) => void }) {
  // Its callees are hard-coded numbers: they are dialed by the emulators only, never for real.
  if (!info.livekit.emulated || !info.twilio?.emulated) {
    throw new Error(
      "the demo runs on the LiveKit and Twilio emulators only: it would dial its hard-coded " +
        "demo contacts through a real account",
    );
  }
  const say = opts.log;
  const supabase = createClient(info.supabaseUrl, info.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  // The project's database connection (postgres) waits for the number's provisioning outbox (stack/fixtures.ts) and
  // nudges the tick each second: locally pg_cron 1.4 runs it once a minute, where Supabase's
  // pg_cron runs it every 5 s.
  const sql = postgres(info.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const email = `demo-${Date.now()}@example.com`;
    const { user, session } = must(
      "sign up",
      await supabase.auth.signUp({ email, password: crypto.randomUUID() }),
    );
    say(`\ndemo: signed up ${email} (user ${user!.id})`);
    const hooks = await demoReceiver(supabase, say);
    const assistant = must(
      "create the assistant",
      await supabase.from("assistant").insert({
        name: "Renewals assistant",
        agent_name: "renewals-agent",
      }).select().single(),
    );
    const number = info.numbers[0];

    say(`demo: assigning ${number} to the assistant through map-number ...`);
    const n = await assignNumber(
      { info, sql },
      session!.access_token,
      assistant.id,
      number,
      "Demo line",
    );
    say(
      `demo: ${n.e164} is ready: inbound ${n.inboundTrunkId}, rule ${n.dispatchRuleId}, outbound ${n.outboundTrunkId}`,
    );

    const campaign = must(
      "create the campaign",
      await supabase.from("campaigns").insert({
        name: "Demo renewals",
        assistant_id: assistant.id,
        phone_number_id: n.id,
        window_start: "00:00",
        window_end: "23:59:59",
        weekdays: [1, 2, 3, 4, 5, 6, 7],
        max_concurrent: 3,
        max_attempts: 2,
        retry_busy_sec: 3,
        retry_no_answer_sec: 3,
        retry_failed_sec: 3,
        retry_backoff: 1,
      }).select().single(),
    );
    must(
      "add to the do-not-call list",
      await supabase.from("do_not_call").insert({
        e164: "+13055550977",
        reason: "asked not to be called",
      }).select(),
    );
    const imported = must(
      "import contacts",
      await supabase.rpc("add_campaign_calls", { campaign_id: campaign.id, contacts: CONTACTS }),
    );
    say(`demo: imported contacts ${JSON.stringify(imported)}`);
    must(
      "start the campaign",
      await supabase.from("campaigns").update({ status: "running" }).eq("id", campaign.id)
        .select(),
    );
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
      await sql`select internal.tick_campaigns()`;
      const p = must(
        "read progress",
        await supabase.from("campaign_progress").select("*").eq("campaign_id", campaign.id)
          .single(),
      );
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

    const calls = must(
      "read the calls",
      await supabase.from("campaign_calls")
        .select("e164, name, status, attempts, last_outcome, timezone")
        .eq("campaign_id", campaign.id).order("created_at"),
    );
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
    say(`\nrejected at import: ${JSON.stringify(imported.rejected)}`);
    say(`webhooks: ${await hooks.close()} events received, each signature verified`);
    if (!opts.once) say("\ndemo done; the stack keeps running (Ctrl-C stops it)");
  } finally {
    await sql.end();
  }
}
