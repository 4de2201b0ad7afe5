import { z } from "zod";
import { authenticate, requireUser } from "../_shared/auth.ts";
import {
  importCsv,
  ImportSink,
  jsonContact,
  MAX_IMPORT_BYTES,
  MAX_IMPORT_ROWS,
  tooLarge,
} from "../_shared/contacts.ts";
import { asUser, db, type Tx } from "../_shared/db.ts";
import { AppError, NotFoundError, ValidationError } from "../_shared/errors.ts";
import { readBody, serve, validate } from "../_shared/http.ts";
import { uuid } from "../_shared/schemas.ts";

const Query = z.object({ campaignId: uuid.optional() });

const JsonBody = z.strictObject({
  campaignId: uuid.optional(),
  contacts: z.array(z.unknown()),
});

async function requireCampaign(tx: Tx, campaignId: string) {
  const [c] = await tx`select id from public.campaigns where id = ${campaignId}`;
  if (!c) throw new NotFoundError(`Campaign ${campaignId} does not exist.`);
}

export const handler = serve("import-contacts", ["POST"], async (req, { config, log }) => {
  const user = requireUser(await authenticate(req, config));
  const query = validate(Query, Object.fromEntries(new URL(req.url).searchParams));
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_IMPORT_BYTES) {
    await req.body?.cancel();
    throw tooLarge(
      `The body exceeds ${MAX_IMPORT_BYTES / 1024 / 1024} MiB; split it into several.`,
    );
  }
  const sql = db(config.dbUrl);

  if (type === "text/csv" || type === "application/csv") {
    const campaignId = query.campaignId;
    if (!campaignId) {
      await req.body?.cancel();
      throw new ValidationError(
        "Name the campaign: POST ?campaignId=<uuid> with the CSV as the body.",
        {
          fields: { campaignId: "required in the query" },
        },
      );
    }
    // One transaction: a file refused mid-way (too large, unreadable) leaves nothing behind.
    const result = await asUser(sql, user.claims, async (tx) => {
      await requireCampaign(tx, campaignId);
      const sink = new ImportSink(tx, campaignId);
      await importCsv(req.body ?? new Blob([]).stream(), sink);
      return sink.finish();
    });
    log.info("contacts imported", { campaignId, format: "csv", ...counts(result) });
    return result;
  }

  if (type === "application/json") {
    const bytes = await readBody(req, MAX_IMPORT_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch {
      throw new ValidationError("The body is not valid JSON.", {
        fields: { "(body)": "invalid JSON" },
      });
    }
    const body = validate(JsonBody, parsed);
    if (body.contacts.length > MAX_IMPORT_ROWS) {
      throw tooLarge(`The import has more than ${MAX_IMPORT_ROWS} rows; split it into several.`);
    }
    if (body.campaignId && query.campaignId && body.campaignId !== query.campaignId) {
      throw new ValidationError("The query and the body name different campaigns.", {
        fields: { campaignId: "differs from the query's" },
      });
    }
    const campaignId = body.campaignId ?? query.campaignId;
    if (!campaignId) {
      throw new ValidationError("Name the campaign: campaignId in the body.", {
        fields: { campaignId: "required" },
      });
    }
    const result = await asUser(sql, user.claims, async (tx) => {
      await requireCampaign(tx, campaignId);
      const sink = new ImportSink(tx, campaignId);
      for (let i = 0; i < body.contacts.length; i++) {
        await sink.add(jsonContact(body.contacts[i], i + 1));
      }
      await sink.flush();
      return sink.finish();
    });
    log.info("contacts imported", { campaignId, format: "json", ...counts(result) });
    return result;
  }

  await req.body?.cancel();
  throw new AppError(
    415,
    "unsupported_media_type",
    "Send the contacts as text/csv (a header row, then one row per contact) or as application/json.",
  );
});

function counts(
  r: { added: number; duplicates: number; skipped: number; rejectedCount: number; rows: number },
) {
  return {
    rows: r.rows,
    added: r.added,
    duplicates: r.duplicates,
    skipped: r.skipped,
    rejected: r.rejectedCount,
  };
}
