// The demo's webhook receiver, as a customer's server would be: registered through
// webhook-endpoints, it verifies every delivery with the Standard Webhooks library, keeps each
// webhook-id once and prints the events as they arrive.
import type { SupabaseClient } from "@supabase/supabase-js";
import { Webhook } from "standardwebhooks";

// deno-lint-ignore no-explicit-any
function describe(e: { type: string; data: any }): string {
  const d = e.data;
  const head = `${e.type.padEnd(18)} #${d.sequence}`;
  if (e.type.startsWith("call.")) {
    return `${head} ${d.to} ${d.status}${d.outcome ? ` (${d.outcome})` : ""}`;
  }
  if (e.type.startsWith("campaign.")) {
    return `${head} ${d.name}: ${d.status}${d.statusReason ? ` (${d.statusReason})` : ""}`;
  }
  return `${head} ${d.e164}: ${d.trunkStatus}${d.trunkError ? ` (${d.trunkError})` : ""}`;
}

export async function demoReceiver(supabase: SupabaseClient, say: (s: string) => void) {
  let secret = "";
  let last = Date.now();
  const seen = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    let event;
    try {
      event = new Webhook(secret).verify(body, Object.fromEntries(req.headers));
    } catch {
      return new Response("bad signature", { status: 401 });
    }
    const id = req.headers.get("webhook-id")!;
    if (!seen.has(id)) {
      seen.add(id);
      last = Date.now();
      say(`  webhook ${describe(event as { type: string; data: unknown })}`);
    }
    return new Response(null, { status: 204 });
  });
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/demo-hooks`;
  const res = await supabase.functions.invoke("webhook-endpoints", { body: { url } });
  if (res.error) {
    await server.shutdown();
    const body = await res.error.context?.json?.().catch(() => null);
    throw new Error(`webhook-endpoints failed: ${JSON.stringify(body ?? res.error.message)}`);
  }
  secret = res.data.endpoint.secret;
  say(`demo: webhook endpoint ${res.data.endpoint.id} receives every event at ${url}`);
  return {
    /** Waits for the last deliveries (a second without a new one, at most five), then stops. */
    async close() {
      const until = Date.now() + 5000;
      while (Date.now() - last < 1000 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 200));
      }
      await server.shutdown();
      return seen.size;
    },
  };
}
