// What a frontend does with supabase-js alone, shared by the tests that play one (on the test
// stack, and on a stack of its own with the new API keys).
import assert from "node:assert/strict";
import type { SupabaseClient } from "@supabase/supabase-js";

// deno-lint-ignore no-explicit-any
type Json = any;

/** What a frontend does with a failed call: stop with its error. */
export function ok(r: { data: unknown; error: unknown }): Json {
  if (r.error) throw r.error;
  return r.data;
}

/**
 * The signed-in user's campaign as the README's frontend makes it: an assistant, the number
 * assigned with map-number (ready), a campaign dialing at any hour once per callee, the contacts
 * imported with the RPC, then started.
 */
export async function startCampaign(
  supabase: SupabaseClient,
  phoneNumber: string,
  contacts: Json[],
): Promise<{ campaign: Json; imported: Json }> {
  const assistant = ok(
    await supabase.from("assistant").insert({ name: "Receptionist", agent_name: "receptionist" })
      .select().single(),
  );
  const mapped = await supabase.functions.invoke("map-number", {
    body: { phoneNumber, assistantId: assistant.id },
  });
  assert.equal(mapped.error, null, String(mapped.error));
  assert.equal(mapped.data.phoneNumber.trunkStatus, "ready");
  const campaign = ok(
    await supabase.from("campaigns").insert({
      name: "Renewals",
      assistant_id: assistant.id,
      phone_number_id: mapped.data.phoneNumber.id,
      window_start: "00:00",
      window_end: "23:59:59",
      weekdays: [1, 2, 3, 4, 5, 6, 7],
      max_attempts: 1,
    }).select().single(),
  );
  const imported = ok(
    await supabase.rpc("add_campaign_calls", { campaign_id: campaign.id, contacts }),
  );
  ok(await supabase.from("campaigns").update({ status: "running" }).eq("id", campaign.id));
  return { campaign, imported };
}
