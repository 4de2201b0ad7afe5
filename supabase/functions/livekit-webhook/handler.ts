import { TokenVerifier, WebhookReceiver } from "livekit-server-sdk";
import { recordWebhook } from "./intake.ts";
import { requireLiveKit } from "../_shared/config.ts";
import { withFields } from "../_shared/deps.ts";
import { AppError, AuthError, ValidationError } from "../_shared/errors.ts";
import { MAX_BODY_BYTES, readBody, serve } from "../_shared/http.ts";

export const handler = serve("livekit-webhook", ["POST"], async (req, deps) => {
  const { apiKey, apiSecret } = requireLiveKit(deps.config);
  const auth = req.headers.get("authorization");
  if (!auth) throw new AuthError("Missing the LiveKit webhook signature (Authorization header).");
  const raw = new TextDecoder().decode(await readBody(req, MAX_BODY_BYTES * 4));
  const receiver = new WebhookReceiver(apiKey, apiSecret);
  let event;
  try {
    // Checks the JWT (signature, issuer = our API key, expiry) and the body's SHA-256, then parses.
    event = await receiver.receive(raw, auth);
  } catch {
    // Only a body that was properly signed but cannot be read is the sender's bad request.
    const readable = await receiver.receive(raw, undefined, true).then(() => true, () => false);
    if (!readable && await signedBy(apiKey, apiSecret, auth, raw)) {
      throw new ValidationError("The webhook body is not a LiveKit webhook event.");
    }
    throw new AuthError("The webhook signature is not valid.");
  }
  if (!event.id || !event.event) {
    throw new AppError(400, "invalid_request", "The webhook has no id or event.");
  }
  const result = await recordWebhook(
    withFields(deps, { eventId: event.id, event: event.event }),
    event,
  );
  return { ok: true, ...result };
});

/** The token is ours and names this body's SHA-256 (what WebhookReceiver checks before parsing). */
async function signedBy(
  key: string,
  secret: string,
  token: string,
  body: string,
): Promise<boolean> {
  try {
    const claims = await new TokenVerifier(key, secret).verify(token);
    const hash = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)),
    );
    return claims.sha256 === btoa(String.fromCharCode(...hash));
  } catch {
    return false;
  }
}
