import { z } from "zod";
import { authenticate } from "../_shared/auth.ts";
import { asUser, db } from "../_shared/db.ts";
import { ForbiddenError, NotFoundError, UpstreamError } from "../_shared/errors.ts";
import { readJson, serve } from "../_shared/http.ts";
import { provisionNumber, runJob, trunkView } from "../_shared/provision.ts";
import { uuid } from "../_shared/schemas.ts";

const Body = z.union([
  z.strictObject({ phoneNumberId: uuid }),
  z.strictObject({ assistantId: uuid }),
  z.strictObject({
    jobId: z.union([z.string().regex(/^[0-9]{1,18}$/), z.number().int().positive()]),
  }),
], { error: "send exactly one of phoneNumberId, assistantId or jobId" });

export const handler = serve("create-trunks", ["POST"], async (req, { config, log }) => {
  const caller = await authenticate(req, config);
  // Validated as sent: a z.record pass first would drop a "__proto__" key, so the strict
  // schemas below would never see (and refuse) it.
  const body = await readJson(req, Body);
  const sql = db(config.dbUrl);

  if ("jobId" in body) {
    if (caller.kind !== "service") {
      throw new ForbiddenError("Only the service may run provisioning jobs.");
    }
    const ran = await runJob(config, sql, String(body.jobId), log);
    if (!ran) return { job: { id: String(body.jobId), ran: false }, trunks: [] };
    if (ran.error) throw ran.error;
    return {
      job: { id: String(body.jobId), ran: true },
      trunks: ran.row ? [trunkView(ran.row)] : [],
    };
  }

  // Which numbers: a user only reaches their own (RLS); the service reaches any.
  const ids = await (caller.kind === "user"
    ? asUser(sql, caller.claims, async (tx) => {
      if ("assistantId" in body) {
        const [a] = await tx`select id from public.assistant where id = ${body.assistantId}`;
        if (!a) throw new NotFoundError(`Assistant ${body.assistantId} does not exist.`);
        return (await tx<
          { id: string }[]
        >`select id from public.phone_number where assistant_id = ${body.assistantId}`)
          .map((r) => r.id);
      }
      const [n] = await tx<
        { id: string }[]
      >`select id from public.phone_number where id = ${body.phoneNumberId}`;
      if (!n) throw new NotFoundError(`Phone number ${body.phoneNumberId} does not exist.`);
      return [n.id];
    })
    : "assistantId" in body
    ? sql<
      { id: string }[]
    >`select id from public.phone_number where assistant_id = ${body.assistantId}`.then((r) =>
      r.map((x) => x.id)
    )
    : Promise.resolve([body.phoneNumberId]));

  const results = [];
  for (const id of ids) {
    results.push(await provisionNumber(config, sql, { phoneNumberId: id }, log));
  }
  const trunks = results.flatMap((r) => r.row ? [trunkView(r.row)] : []);
  if ("phoneNumberId" in body && trunks.length === 0) {
    throw new NotFoundError(`Phone number ${body.phoneNumberId} does not exist.`);
  }
  const failed = results.find((r) => r.error);
  if (failed?.error) {
    if (failed.error instanceof UpstreamError) {
      failed.error.details!.trunks = trunks;
    }
    throw failed.error;
  }
  return { trunks };
});
