// A requester's numbers: assigning one to an assistant, then provisioning it at once.
import { requireAssistant } from "../_shared/assistants.ts";
import { takeRateLimit } from "../_shared/rate_limit.ts";
import { z } from "zod";
import type { User } from "../_shared/auth.ts";
import { findTwilioNumber } from "../_shared/carrier_trunk.ts";
import { asUser } from "../_shared/db.ts";
import { type Deps, withFields } from "../_shared/deps.ts";
import {
  ConflictError,
  NotConfiguredError,
  NotFoundError,
  UpstreamError,
} from "../_shared/errors.ts";
import { type NumberRow, numberView, provisionAssigned } from "../_shared/provision.ts";
import { e164, phoneSid, uuid } from "../_shared/schemas.ts";

export const AssignBody = z.strictObject({
  phoneNumber: e164.optional(),
  phoneSid: phoneSid.optional(),
  assistantId: uuid.nullable(),
  label: z.string().max(200, "at most 200 characters").optional(),
  force: z.boolean().optional(),
}).refine((b) => (b.phoneNumber === undefined) !== (b.phoneSid === undefined), {
  message: "give exactly one of phoneNumber or phoneSid",
  path: ["phoneNumber"],
  // Checked even when other fields fail, so one answer names every problem.
  when: (p) => p.value !== null && typeof p.value === "object",
});

/** Assigns the number to the assistant (or none) and provisions it; 409 when another's. */
export async function assignNumber(deps: Deps, user: User, body: z.infer<typeof AssignBody>) {
  const { config, sql } = deps;
  // What is wrong with the request itself is said before it counts against the rate limit.
  const assistantId = body.assistantId;
  if (assistantId) await asUser(sql, user.claims, (tx) => requireAssistant(sql, tx, assistantId));
  const per = config.provisioningPerMinutePerUser;
  await takeRateLimit(deps, user.userId, "provisioning", per, "provisioning requests");
  // The number must be in the Twilio account (when Twilio is what we provision).
  let number = body.phoneNumber;
  let twilioSid: string | null = body.phoneSid ?? null;
  if (config.twilio && !config.staticSip) {
    const found = await findTwilioNumber(
      deps,
      number ? { e164: number } : { sid: body.phoneSid! },
    );
    if (!found) {
      throw new NotFoundError(`${number ?? body.phoneSid} is not a number of the Twilio account.`);
    }
    number = found.e164;
    twilioSid = found.sid;
  } else if (config.staticSip && number && !config.staticSipNumbers.includes(number)) {
    // A caller ID only once the operator declared it, never because a tenant typed it.
    throw new NotFoundError(
      `${number} is not a number the operator declared for the SIP provider (SIP_PROVIDER_NUMBERS).`,
    );
  } else if (!number) {
    throw new NotConfiguredError(
      ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"],
      "Looking numbers up by SID",
    );
  }

  // The assistant was checked above; one deleted since fails the foreign key (409).
  const [row] = await sql<NumberRow[]>`
    select * from internal.assign_number(${user.userId}, ${number!}, ${twilioSid},
      ${body.label ?? null}, ${body.assistantId}, ${body.force ?? false})`;
  if (!row) throw new ConflictError(`${number} is registered to another account.`);
  if (row.assistant_id && body.assistantId && row.assistant_id !== body.assistantId) {
    throw new ConflictError(
      `${number} is assigned to assistant ${row.assistant_id}; send force: true to move it.`,
      { assistantId: row.assistant_id },
    );
  }

  // The assignment is committed with its outbox job; that job runs now, for this answer.
  const result = await provisionAssigned(
    withFields(deps, { userId: user.userId }),
    row,
  );
  const phoneNumber = numberView(result.row ?? row);
  if (result.error) {
    if (result.error instanceof UpstreamError) result.error.details!.phoneNumber = phoneNumber;
    throw result.error;
  }
  return { phoneNumber };
}
