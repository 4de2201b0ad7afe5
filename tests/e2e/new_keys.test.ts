// A project with only the new API keys: this file starts its own stack in "new" keys mode
// (sb_publishable_ / sb_secret_ keys, no HS256 JWT secret), then runs a frontend's flow with
// supabase-js created with the publishable key: sign up, assistant, number, campaign until
// completed (pg_cron's ticks and the provisioning pokes reach the functions through pg_net with
// the sb_secret_ key: the campaign completes only if they are accepted), a webhook endpoint
// that receives a signed delivery, and unknown sb_ keys refused with a 401 JSON error.
import { eventually } from "../../stack/poll.ts";
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import * as jose from "jose";
import { Webhook } from "standardwebhooks";
import { SEED_NUMBERS, type Stack, startStack } from "../../stack/stack.ts";
import { ok, startCampaign } from "../helpers/frontend.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** The whole flow, once the stack is up, fails rather than stall past this. */
const FLOW_BUDGET_MS = 90_000;

function until<T>(
  deadline: number,
  what: string,
  check: () => Promise<T | null | undefined | false>,
): Promise<T> {
  return eventually(check, what, Math.max(0, deadline - Date.now()), 100);
}

/** A JSON 401 answer (its body read). */
async function json401(res: Response, what: string): Promise<Json> {
  const text = await res.text();
  assert.equal(res.status, 401, `${what}: ${res.status} ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/, what);
  return JSON.parse(text);
}

Deno.test({
  name:
    "new API keys only: supabase-js with sb_publishable_, campaign to completion and webhooks with sb_secret_, unknown sb_ keys 401",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "new-keys-stack-" });
    let stack: Stack | null = null;
    let receiver: Deno.HttpServer | null = null;
    try {
      stack = await startStack({
        name: `new-keys-${Deno.pid}`,
        stateDir: `${dir}/state`,
        forceEmulators: true,
        timeScale: 0.001,
        carrierCps: 50,
        reconcileEverySec: 1,
        agentJoinTimeoutSec: 1,
        keys: "new",
        log: () => {},
      });
      const deadline = Date.now() + FLOW_BUDGET_MS;
      const { info, functionEnv } = stack;
      const url = info.supabaseUrl;

      // The keys, as stack.json records them and the functions get them.
      const recorded = JSON.parse(await Deno.readTextFile(`${dir}/state/stack.json`));
      assert.equal(recorded.keys, "new");
      assert.match(info.anonKey, /^sb_publishable_[A-Za-z0-9_-]{20,}$/);
      assert.match(info.serviceKey, /^sb_secret_[A-Za-z0-9_-]{20,}$/);
      assert.equal(recorded.anonKey, info.anonKey);
      assert.equal(recorded.serviceKey, info.serviceKey);
      assert.equal(info.jwtSecret, "");
      assert.deepEqual(JSON.parse(functionEnv.SUPABASE_SECRET_KEYS), {
        default: info.serviceKey,
      });
      assert.deepEqual(JSON.parse(functionEnv.SUPABASE_PUBLISHABLE_KEYS), {
        default: info.anonKey,
      });
      for (const gone of ["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY", "JWT_SECRET"]) {
        assert.equal(functionEnv[gone], undefined, `${gone} is not set`);
      }
      const jwks = await (await fetch(`${url}/auth/v1/.well-known/jwks.json`)).json();
      assert.equal(jwks.keys[0].alg, "ES256");

      // The frontend: supabase-js with the publishable key.
      const supabase = createClient(url, info.anonKey, {
        auth: { persistSession: false, autoRefreshToken: false },
      });
      const email = `new-keys-${Date.now()}@example.com`;
      const signedUp = ok(await supabase.auth.signUp({ email, password: "a-long-password" }));
      assert.equal(jose.decodeProtectedHeader(signedUp.session.access_token).alg, "ES256");
      const { claims } = ok(await supabase.auth.getClaims())!;
      assert.equal(claims.role, "authenticated");

      // A webhook receiver that verifies each delivery's signature.
      let secret: string | null = null;
      const deliveries: { id: string; type: string }[] = [];
      let badSignatures = 0;
      receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
        const body = await req.text();
        try {
          if (!secret) throw new Error("no secret yet");
          const payload = new Webhook(secret).verify(body, Object.fromEntries(req.headers)) as Json;
          deliveries.push({ id: req.headers.get("webhook-id")!, type: payload.type });
          return new Response(null, { status: 204 });
        } catch {
          badSignatures++;
          return new Response("bad signature", { status: 401 });
        }
      });
      const hookUrl = `http://127.0.0.1:${(receiver.addr as Deno.NetAddr).port}/hooks/voice`;
      const created = await supabase.functions.invoke("webhook-endpoints", {
        body: { url: hookUrl },
      });
      assert.equal(created.error, null, String(created.error));
      secret = created.data.endpoint.secret;
      assert.ok(secret, "the endpoint's signing secret");

      // The README frontend's campaign (pg_cron ticks it with the sb_secret_ key).
      const { campaign, imported } = await startCampaign(supabase, SEED_NUMBERS[0], [
        { phoneNumber: "+1 212 555 0905", name: "Ada" },
        { phoneNumber: "+1 212 555 1910", name: "Grace" },
        { phoneNumber: "+1 312 555 0486", name: "Linus" },
      ]);
      assert.equal(imported.added, 3);

      const progress = await until(deadline, "the campaign to complete", async () => {
        const p = ok(
          await supabase.from("campaign_progress").select("*").eq("campaign_id", campaign.id)
            .single(),
        );
        return p.status === "completed" ? p : null;
      });
      assert.equal(progress.total, 3);
      assert.equal(progress.attempts, 3);

      await until(
        deadline,
        "a signed webhook delivery",
        () => Promise.resolve(deliveries.length > 0),
      );
      assert.equal(badSignatures, 0, "every delivery is signed with the endpoint's secret");

      // REST maps the keys to roles: the secret key is service_role (sees every row), the
      // publishable key alone is anon (RLS shows it nothing).
      const asService = await fetch(`${url}/rest/v1/campaigns?select=id&id=eq.${campaign.id}`, {
        headers: { apikey: info.serviceKey },
      });
      assert.equal(asService.status, 200);
      assert.deepEqual(await asService.json(), [{ id: campaign.id }]);
      const asAnon = await fetch(`${url}/rest/v1/campaigns?select=id&id=eq.${campaign.id}`, {
        headers: { apikey: info.anonKey, Authorization: `Bearer ${info.anonKey}` },
      });
      const anonRows = await asAnon.text();
      assert.ok(
        asAnon.status === 200 ? JSON.parse(anonRows).length === 0 : asAnon.status === 401,
        `anon sees no campaign: ${asAnon.status} ${anonRows}`,
      );

      // Unknown (revoked) sb_ keys: a 401 JSON error from a function and from REST.
      const unknownKeys = [
        `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`,
        `sb_publishable_${crypto.randomUUID().replaceAll("-", "")}`,
      ];
      for (const key of unknownKeys) {
        const fn = await fetch(`${url}/functions/v1/webhook-endpoints`, {
          method: "GET",
          headers: { apikey: key, Authorization: `Bearer ${key}` },
        });
        const fnBody = await json401(fn, `a function with ${key.slice(0, 14)}...`);
        assert.ok(fnBody.error, JSON.stringify(fnBody));
        const rest = await fetch(`${url}/rest/v1/campaigns?select=id`, {
          headers: { apikey: key },
        });
        const restBody = await json401(rest, `REST with ${key.slice(0, 14)}...`);
        assert.equal(restBody.message, "Invalid API key");
        // A known apikey does not let an unknown key through as the bearer.
        const bearer = await fetch(`${url}/rest/v1/campaigns?select=id`, {
          headers: { apikey: info.anonKey, Authorization: `Bearer ${key}` },
        });
        await json401(bearer, `REST with Bearer ${key.slice(0, 14)}...`);
      }
      // No HS256 secret: an HS256 service_role token is not a key of this project.
      const forged = await new jose.SignJWT({ role: "service_role" })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .sign(new TextEncoder().encode("any-secret-at-all-any-secret-at-all"));
      const forgedRest = await fetch(`${url}/rest/v1/campaigns?select=id`, {
        headers: { apikey: info.anonKey, Authorization: `Bearer ${forged}` },
      });
      await json401(forgedRest, "REST with an HS256 token");
      // The publishable key is not a session: a function refuses it as the bearer.
      const service = await fetch(`${url}/functions/v1/webhook-endpoints`, {
        method: "GET",
        headers: { apikey: info.anonKey, Authorization: `Bearer ${info.anonKey}` },
      });
      await json401(service, "a function with the publishable key as the bearer");
    } finally {
      await receiver?.shutdown();
      await stack?.stop({ log: () => {} });
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
