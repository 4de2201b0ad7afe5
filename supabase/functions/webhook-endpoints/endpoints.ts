// The webhook-endpoints function's work: a user's endpoints created (secret shown once), listed,
// deleted, and replayed. Reads and deletes run under the user's RLS; creation and replay run
// SQL functions that write what users cannot (the Vault secret, the queued deliveries) for the
// verified requester only.
import { z } from "zod";
import type { Deps } from "../_shared/deps.ts";
import { asUser, type Sql, type UserClaims } from "../_shared/db.ts";
import { ConflictError, NotFoundError, ValidationError } from "../_shared/errors.ts";
import { uuid } from "../_shared/schemas.ts";
import { EVENT_TYPES } from "../_shared/event_types.ts";
import { checkWebhookUrl, newSecret, type Resolver } from "../_shared/webhooks.ts";

export const CreateBody = z.strictObject({
  url: z.string().min(1, "is required").max(2048, "must be at most 2048 characters"),
  events: z.array(z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(", ")}` }))
    .min(1, "must name at least one event type").max(EVENT_TYPES.length * 2).optional(),
});

export const ReplayBody = z.strictObject({
  id: uuid,
  replay: z.strictObject({
    since: z.iso.datetime({ offset: true, message: "must be an ISO 8601 time with an offset" })
      .optional(),
    callId: uuid.optional(),
    campaignId: uuid.optional(),
  }),
});

export const DeleteBody = z.strictObject({ id: uuid });

interface EndpointRow {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  failing_since: Date | null;
  created_at: Date;
  pending?: number;
}

/** An endpoint as the API shows it: never its secret. */
export function endpointView(r: EndpointRow) {
  return {
    id: r.id,
    url: r.url,
    events: r.events,
    enabled: r.enabled,
    disabledReason: r.disabled_reason,
    disabledAt: r.disabled_at,
    failingSince: r.failing_since,
    createdAt: r.created_at,
    ...(r.pending === undefined ? {} : { pending: r.pending }),
  };
}

export interface Owner {
  userId: string;
  claims: UserClaims;
}

export async function createEndpoint(
  { config, sql }: Deps,
  owner: Owner,
  body: z.infer<typeof CreateBody>,
  resolve: Resolver,
) {
  const checked = await checkWebhookUrl(body.url, {
    allowLocalhost: config.webhooksAllowLocalhost,
    resolve,
  });
  if (!checked.ok) {
    throw new ValidationError(`The webhook URL ${checked.reason}.`, {
      fields: { url: checked.reason },
    });
  }
  const events = body.events ? [...new Set(body.events)] : null;
  const secret = newSecret();
  const [row] = await sql<EndpointRow[]>`
    select * from internal.create_webhook_endpoint(${owner.userId}, ${checked.url}, ${events}, ${secret})`;
  return { endpoint: { ...endpointView(row), secret } };
}

export async function listEndpoints(sql: Sql, owner: Owner) {
  const rows = await asUser(sql, owner.claims, (tx) =>
    tx<EndpointRow[]>`
      select w.*, (select count(*)::int from public.webhook_deliveries d
                   where d.endpoint_id = w.id and d.status = 'pending') as pending
      from public.webhook_endpoints w order by w.created_at, w.id`);
  return { endpoints: rows.map(endpointView) };
}

export async function deleteEndpoint(sql: Sql, owner: Owner, id: string) {
  const [row] = await asUser(
    sql,
    owner.claims,
    (tx) =>
      tx<{ id: string }[]>`delete from public.webhook_endpoints where id = ${id} returning id`,
  );
  if (!row) throw new NotFoundError(`Webhook endpoint ${id} does not exist.`);
  return { endpoint: { id: row.id, deleted: true } };
}

export async function replayEvents(sql: Sql, owner: Owner, body: z.infer<typeof ReplayBody>) {
  const [ep] = await asUser(
    sql,
    owner.claims,
    (tx) => tx<EndpointRow[]>`select * from public.webhook_endpoints where id = ${body.id}`,
  );
  if (!ep) throw new NotFoundError(`Webhook endpoint ${body.id} does not exist.`);
  if (!ep.enabled) {
    throw new ConflictError(
      `Webhook endpoint ${body.id} is disabled (${
        ep.disabled_reason ?? "no reason recorded"
      }); set enabled = true first, then replay.`,
    );
  }
  const { since, callId, campaignId } = body.replay;
  const [r] = await sql<{ result: { queued: number; more: boolean } }[]>`
    select internal.replay_webhook_events(${ep.id}, ${since ?? null}, ${callId ?? null},
      ${campaignId ?? null}) as result`;
  return r.result;
}
