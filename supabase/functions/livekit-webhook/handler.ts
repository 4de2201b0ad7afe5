import { WebhookReceiver } from "livekit-server-sdk";
import { recordWebhook } from "../_shared/calls.ts";
import { requireLiveKit } from "../_shared/config.ts";
import { db } from "../_shared/db.ts";
import { AppError, AuthError } from "../_shared/errors.ts";
import { MAX_BODY_BYTES, readBody, serve } from "../_shared/http.ts";

export const handler = serve("livekit-webhook", ["POST"], async (req, { config, log }) => {
  const { apiKey, apiSecret } = requireLiveKit(config);
  const auth = req.headers.get("authorization");
  if (!auth) throw new AuthError("Missing the LiveKit webhook signature (Authorization header).");
  const raw = new TextDecoder().decode(await readBody(req, MAX_BODY_BYTES * 4));
  let event;
  try {
    // Checks the JWT (signature, issuer = our API key, expiry) and the body's SHA-256.
    event = await new WebhookReceiver(apiKey, apiSecret).receive(raw, auth);
  } catch {
    throw new AuthError("The webhook signature is not valid.");
  }
  if (!event.id || !event.event) {
    throw new AppError(400, "invalid_request", "The webhook has no id or event.");
  }
  const result = await recordWebhook(
    db(config.dbUrl),
    event,
    log.child({ eventId: event.id, event: event.event }),
  );
  return { ok: true, ...result };
});
