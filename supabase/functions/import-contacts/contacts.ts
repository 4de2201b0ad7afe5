// Contact import: a CSV file (streamed, header row) or JSON, turned into rows for the one SQL
// import path (internal.import_contacts, which add_campaign_calls also runs): normalisation,
// de-duplication, do-not-call, destination and time-zone rules all live there. Here the file is
// read within its bounds, the header is mapped, and rows that cannot even be read are named.
import { z } from "zod";
import type { User } from "../_shared/auth.ts";
import { CsvReader } from "./csv.ts";
import { asUser, type Tx } from "../_shared/db.ts";
import type { Deps } from "../_shared/deps.ts";
import { AppError, NotFoundError, RateLimitError, ValidationError } from "../_shared/errors.ts";
import { joinChunks, parseJson, validate } from "../_shared/http.ts";
import { uuid } from "../_shared/schemas.ts";

export const MAX_IMPORT_BYTES = 10 * 1024 * 1024;
export const MAX_IMPORT_ROWS = 100_000;
/** Rows sent to the database per statement. */
const BATCH_ROWS = 2_000;
/** Rejections listed in the answer (all are counted). */
const MAX_LISTED_REJECTIONS = 10_000;
const MAX_COLUMNS = 500;

export const PHONE_COLUMNS = ["phone", "phone_number", "number", "e164"] as const;
const NAME_COLUMNS = ["name"];
const TIMEZONE_COLUMNS = ["timezone", "time_zone"];

export interface ContactRow {
  row: number;
  phoneNumber: string;
  name?: string;
  timezone?: string;
  variables: Record<string, unknown>;
}

export interface Rejection {
  row: number;
  phoneNumber: string | null;
  reason: string;
}

export interface ImportResult {
  added: number;
  duplicates: number;
  skipped: number;
  rejected: Rejection[];
  /** Every rejection, also those past the listed ones. */
  rejectedCount: number;
  /** Contact rows read (blank lines aside). */
  rows: number;
}

export interface HeaderMap {
  phone: number;
  name: number | null;
  timezone: number | null;
  /** Every other column: its index and the variable name it becomes (the header as written). */
  variables: [number, string][];
  columns: number;
}

/** "Phone Number" and "phone-number" both read as phone_number. */
export function columnKey(header: string): string {
  return header.trim().toLowerCase().replace(/[\s-]+/g, "_");
}

/** Finds the phone, name and time-zone columns; 400 naming the accepted names when there is no phone column. */
export function mapHeader(header: string[]): HeaderMap {
  if (header.length > MAX_COLUMNS) {
    throw new ValidationError(`The CSV has ${header.length} columns; at most ${MAX_COLUMNS}.`, {
      fields: { "(header)": `at most ${MAX_COLUMNS} columns` },
    });
  }
  const keys = header.map(columnKey);
  const find = (names: readonly string[]) => {
    for (const n of names) {
      const i = keys.indexOf(n);
      if (i !== -1) return i;
    }
    return null;
  };
  const phone = find(PHONE_COLUMNS);
  const found = header.map((h) => h.trim()).filter(Boolean);
  if (phone === null) {
    throw new ValidationError(
      `The CSV has no phone column: name one column ${
        PHONE_COLUMNS.join(", ").replace(/, ([^,]*)$/, " or $1")
      } (its header has ${found.length ? found.join(", ") : "no column names"}).`,
      {
        fields: { "(header)": `needs a phone column: ${PHONE_COLUMNS.join(", ")}` },
        acceptedPhoneColumns: [...PHONE_COLUMNS],
        optionalColumns: ["name", "timezone"],
        columns: found,
      },
    );
  }
  const name = find(NAME_COLUMNS);
  const timezone = find(TIMEZONE_COLUMNS);
  const variables: [number, string][] = [];
  const seen = new Map<string, number>();
  header.forEach((h, i) => {
    if (i === phone || i === name || i === timezone) return;
    const key = h.trim() || `column_${i + 1}`;
    if (seen.has(key)) {
      throw new ValidationError(`The CSV has two columns named ${JSON.stringify(key)}.`, {
        fields: { "(header)": `duplicate column ${key}` },
      });
    }
    seen.set(key, i);
    variables.push([i, key]);
  });
  return { phone, name, timezone, variables, columns: header.length };
}

/** A data record as a contact row, or why it cannot be read. */
export function csvContact(
  map: HeaderMap,
  fields: string[],
  row: number,
): ContactRow | Rejection {
  if (fields.length > map.columns && fields.slice(map.columns).some((f) => f.trim() !== "")) {
    return {
      row,
      phoneNumber: fields[map.phone]?.trim() || null,
      reason: `has ${fields.length} fields; the header has ${map.columns}`,
    };
  }
  const cell = (i: number | null) => (i === null ? undefined : fields[i]?.trim() || undefined);
  const variables: Record<string, unknown> = {};
  for (const [i, key] of map.variables) variables[key] = fields[i] ?? "";
  return {
    row,
    phoneNumber: fields[map.phone]?.trim() ?? "",
    ...(cell(map.name) ? { name: cell(map.name) } : {}),
    ...(cell(map.timezone) ? { timezone: cell(map.timezone) } : {}),
    variables,
  };
}

/** A JSON contact as a row, or why its shape is wrong (the number itself is judged in SQL). */
export function jsonContact(item: unknown, row: number): ContactRow | Rejection {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    return { row, phoneNumber: null, reason: "not a JSON object" };
  }
  const o = item as Record<string, unknown>;
  const raw = o.phoneNumber ?? o.phone_number;
  const phoneNumber = typeof raw === "string" || typeof raw === "number" ? String(raw) : "";
  const bad = (field: string, want: string): Rejection => ({
    row,
    phoneNumber: phoneNumber || null,
    reason: `${field} must be ${want}`,
  });
  if (raw !== undefined && raw !== null && phoneNumber === "") {
    return bad("phoneNumber", "a string");
  }
  if (o.name !== undefined && o.name !== null && typeof o.name !== "string") {
    return bad("name", "a string");
  }
  if (o.timezone !== undefined && o.timezone !== null && typeof o.timezone !== "string") {
    return bad("timezone", "a string (an IANA zone such as America/Chicago)");
  }
  const vars = o.variables ?? o.metadata;
  if (vars !== undefined && vars !== null && (typeof vars !== "object" || Array.isArray(vars))) {
    return bad("variables", "an object");
  }
  return {
    row,
    phoneNumber,
    ...(typeof o.name === "string" ? { name: o.name } : {}),
    ...(typeof o.timezone === "string" ? { timezone: o.timezone } : {}),
    variables: (vars ?? {}) as Record<string, unknown>,
  };
}

export function tooLarge(what: string): AppError {
  return new AppError(413, "payload_too_large", what);
}

/** Sends rows to internal.import_contacts in batches (inside the caller's transaction) and adds up. */
export class ImportSink {
  #tx: Tx;
  #campaignId: string;
  #batch: ContactRow[] = [];
  result: ImportResult = {
    added: 0,
    duplicates: 0,
    skipped: 0,
    rejected: [],
    rejectedCount: 0,
    rows: 0,
  };

  constructor(tx: Tx, campaignId: string) {
    this.#tx = tx;
    this.#campaignId = campaignId;
  }

  async add(item: ContactRow | Rejection) {
    this.result.rows++;
    if (this.result.rows > MAX_IMPORT_ROWS) {
      throw tooLarge(`The import has more than ${MAX_IMPORT_ROWS} rows; split it into several.`);
    }
    if ("reason" in item) {
      this.#reject(item);
      return;
    }
    this.#batch.push(item);
    if (this.#batch.length >= BATCH_ROWS) await this.flush();
  }

  #reject(r: Rejection) {
    this.result.rejectedCount++;
    if (this.result.rejected.length < MAX_LISTED_REJECTIONS) this.result.rejected.push(r);
  }

  async flush() {
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    const [{ r }] = await this.#tx<{ r: SqlImportResult }[]>`
      select internal.import_contacts(${this.#campaignId}, ${this.#tx.json(batch as never)}) as r`;
    this.result.added += r.added;
    this.result.duplicates += r.duplicates;
    this.result.skipped += r.skipped;
    for (const x of r.rejected) {
      this.#reject({ row: x.row, phoneNumber: x.phoneNumber ?? null, reason: x.reason });
    }
  }

  finish(): ImportResult {
    this.result.rejected.sort((a, b) => a.row - b.row);
    return this.result;
  }
}

interface SqlImportResult {
  added: number;
  duplicates: number;
  skipped: number;
  rejected: { index: number; row: number; phoneNumber: string | null; reason: string }[];
}

/**
 * Streams a CSV body into the sink: bytes counted against the bound as they arrive, the header
 * mapped before any row is stored, each record a row. Throws 400/413 (nothing is kept: the
 * caller's transaction rolls back).
 */
export async function importCsv(body: ReadableStream<Uint8Array>, sink: ImportSink) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const csv = new CsvReader();
  let bytes = 0;
  let map: HeaderMap | null = null;
  const take = async (records: ReturnType<CsvReader["push"]>) => {
    for (const rec of records) {
      if (!map) {
        map = mapHeader(rec.fields);
        continue;
      }
      if (rec.fields.length === 1 && rec.fields[0].trim() === "" && !rec.error) continue;
      await sink.add(
        rec.error
          ? { row: rec.row, phoneNumber: rec.fields[map.phone]?.trim() || null, reason: rec.error }
          : csvContact(map, rec.fields, rec.row),
      );
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > MAX_IMPORT_BYTES) {
        throw tooLarge(
          `The file exceeds ${MAX_IMPORT_BYTES / 1024 / 1024} MiB; split it into several.`,
        );
      }
      let text: string;
      try {
        text = decoder.decode(value, { stream: true });
      } catch {
        throw new ValidationError("The CSV is not UTF-8 text; save it as CSV UTF-8.", {
          fields: { "(body)": "not UTF-8" },
        });
      }
      await take(csv.push(text));
    }
    try {
      await take(csv.push(decoder.decode()));
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw new ValidationError("The CSV is not UTF-8 text; save it as CSV UTF-8.", {
        fields: { "(body)": "not UTF-8" },
      });
    }
    await take(csv.end());
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
  if (!map) {
    throw new ValidationError(
      `The CSV is empty: send a header row naming a phone column (${
        PHONE_COLUMNS.join(", ")
      }), then one row per contact.`,
      { fields: { "(body)": "empty" }, acceptedPhoneColumns: [...PHONE_COLUMNS] },
    );
  }
  await sink.flush();
}

export const ImportQuery = z.object({ campaignId: uuid.optional() });

const JsonBody = z.strictObject({
  campaignId: uuid.optional(),
  contacts: z.array(z.unknown()),
});

async function requireCampaign(tx: Tx, campaignId: string) {
  const [c] = await tx`select id from public.campaigns where id = ${campaignId}`;
  if (!c) throw new NotFoundError(`Campaign ${campaignId} does not exist.`);
}

/** What browsers and clients send for a .csv file or a string: read as CSV. */
const CSV_TYPES = new Set([
  "text/csv",
  "application/csv",
  "text/comma-separated-values",
  "text/x-csv",
  // Windows browsers type .csv files after Excel.
  "application/vnd.ms-excel",
  // supabase-js sends a string as text/plain and a File or Blob as application/octet-stream.
  "text/plain",
  "application/octet-stream",
  // A File without a type, sent as the body.
  "",
]);
const ACCEPTED =
  "text/csv (or any type a browser gives a .csv file), multipart/form-data with the CSV file as a part, or application/json";
/** The whole body must arrive within this (a slow upload must not hold the function). */
export const IMPORT_READ_SEC = 60;
/** After the first 10 s, an upload slower than this on average is given up. */
export const IMPORT_MIN_BYTES_PER_SEC = 1024;
const IMPORT_GRACE_MS = 10_000;
/** One import per user in the database at a time: a tenant cannot take the pool's connections. */
const IMPORT_LEASE_SEC = 120;

/** The body's bytes, before anything touches the database: bounded in size and in time. */
async function readImport(deps: Deps, req: Request): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_IMPORT_BYTES) {
    await req.body?.cancel();
    throw tooLarge(
      `The body exceeds ${MAX_IMPORT_BYTES / 1024 / 1024} MiB; split it into several.`,
    );
  }
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const started = deps.clock.now();
  const deadline = started + IMPORT_READ_SEC * 1000;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const left = deadline - deps.clock.now();
      const next = left <= 0 ? null : await Promise.race([
        reader.read(),
        deps.clock.sleep(left).then(() => null),
      ]);
      if (next === null) {
        throw new AppError(
          408,
          "request_timeout",
          `The body did not arrive within ${IMPORT_READ_SEC} s; send the file in one go, or split it into several.`,
        );
      }
      if (next.done) break;
      size += next.value.byteLength;
      const elapsed = deps.clock.now() - started;
      if (elapsed > IMPORT_GRACE_MS && size < (elapsed / 1000) * IMPORT_MIN_BYTES_PER_SEC) {
        throw new AppError(
          408,
          "request_timeout",
          `The body is arriving slower than ${IMPORT_MIN_BYTES_PER_SEC} bytes a second; send the file in one go.`,
        );
      }
      if (size > MAX_IMPORT_BYTES) {
        throw tooLarge(
          `The file exceeds ${MAX_IMPORT_BYTES / 1024 / 1024} MiB; split it into several.`,
        );
      }
      chunks.push(next.value);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
  return joinChunks(chunks, size);
}

/** The CSV file of a multipart upload (the part named `file`, else the first file) and its fields. */
async function formUpload(type: string, bytes: Uint8Array) {
  let form: FormData;
  try {
    form = await new Response(bytes as BodyInit, { headers: { "content-type": type } }).formData();
  } catch {
    throw new ValidationError("The multipart body cannot be read.", {
      fields: { "(body)": "invalid multipart/form-data" },
    });
  }
  const named = form.get("file");
  const file = named instanceof File
    ? named
    : [...form.values()].find((v): v is File => v instanceof File);
  if (!file) {
    throw new ValidationError("The form has no file: add the CSV file as a part named file.", {
      fields: { file: "required" },
    });
  }
  const campaignId = form.get("campaignId");
  return {
    csv: new Uint8Array(await file.arrayBuffer()),
    campaignId: typeof campaignId === "string" && campaignId !== "" ? campaignId : undefined,
  };
}

/**
 * Imports the request's contacts into the user's campaign: a CSV file (the body, or a part of a
 * multipart form; the campaign in the query or the form) or JSON (`contacts`, the campaign in
 * the body or the query). The body is read whole first, within its bounds, so no transaction
 * waits on a slow upload.
 */
export async function importContacts(
  deps: Deps,
  user: User,
  req: Request,
  query: z.infer<typeof ImportQuery>,
): Promise<ImportResult> {
  const fullType = req.headers.get("content-type") ?? "";
  const type = fullType.split(";")[0].trim().toLowerCase();
  if (type !== "application/json" && type !== "multipart/form-data" && !CSV_TYPES.has(type)) {
    await req.body?.cancel();
    throw new AppError(
      415,
      "unsupported_media_type",
      `Contacts cannot be read from ${type}: send ${ACCEPTED}. A spreadsheet is saved as CSV UTF-8 first.`,
    );
  }
  const bytes = await readImport(deps, req);

  if (type === "application/json") {
    const body = validate(JsonBody, parseJson(bytes));
    if (body.contacts.length > MAX_IMPORT_ROWS) {
      throw tooLarge(`The import has more than ${MAX_IMPORT_ROWS} rows; split it into several.`);
    }
    const campaignId = oneCampaign(body.campaignId, query.campaignId, "campaignId in the body");
    const result = await importInto(deps, user, campaignId, async (sink) => {
      for (let i = 0; i < body.contacts.length; i++) {
        await sink.add(jsonContact(body.contacts[i], i + 1));
      }
      await sink.flush();
    });
    deps.log.info("contacts imported", { campaignId, format: "json", ...counts(result) });
    return result;
  }

  const upload = type === "multipart/form-data"
    ? await formUpload(fullType, bytes)
    : { csv: bytes, campaignId: undefined };
  if (upload.campaignId !== undefined) validate(ImportQuery, { campaignId: upload.campaignId });
  const campaignId = oneCampaign(
    upload.campaignId,
    query.campaignId,
    "POST ?campaignId=<uuid> with the CSV as the body (or a campaignId field in the form)",
  );
  const result = await importInto(
    deps,
    user,
    campaignId,
    (sink) => importCsv(new Blob([upload.csv as BlobPart]).stream(), sink),
  );
  deps.log.info("contacts imported", { campaignId, format: "csv", ...counts(result) });
  return result;
}

/**
 * One transaction into the user's campaign (a file refused mid-way leaves nothing behind), held
 * under the user's import lease: a second import meanwhile is a 429.
 */
async function importInto(
  deps: Deps,
  user: User,
  campaignId: string,
  fill: (sink: ImportSink) => Promise<void>,
): Promise<ImportResult> {
  const key = `import:${user.userId}`;
  const holder = crypto.randomUUID();
  const [taken] = await deps.sql<{ ok: boolean | null }[]>`
    select internal.take_lease(${key}, ${holder}, ${IMPORT_LEASE_SEC}) as ok`;
  if (!taken?.ok) {
    throw new RateLimitError(
      "Another import of yours is under way; send this one once it is done.",
      5,
    );
  }
  try {
    return await asUser(deps.sql, user.claims, async (tx) => {
      await requireCampaign(tx, campaignId);
      const sink = new ImportSink(tx, campaignId);
      await fill(sink);
      return sink.finish();
    });
  } finally {
    await deps.sql`select internal.release_lease(${key}, ${holder})`.catch(() => {});
  }
}

/** The campaign named by the body (or form) and the query, which must agree; one is required. */
function oneCampaign(inBody: string | undefined, inQuery: string | undefined, how: string) {
  if (inBody && inQuery && inBody !== inQuery) {
    throw new ValidationError("The query and the body name different campaigns.", {
      fields: { campaignId: "differs from the query's" },
    });
  }
  const campaignId = inBody ?? inQuery;
  if (!campaignId) {
    throw new ValidationError(`Name the campaign: ${how}.`, {
      fields: { campaignId: "required" },
    });
  }
  return campaignId;
}

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
