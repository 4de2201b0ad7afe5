// Typed errors and the one place that turns them into the JSON of api.md.

export class AppError extends Error {
  /** Sent as the Retry-After header (seconds) when set. */
  retryAfterSec?: number;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(400, "invalid_request", message, details);
  }
}
export class AuthError extends AppError {
  constructor(message = "A valid session token or service key is required.") {
    super(401, "unauthenticated", message);
  }
}
export class ForbiddenError extends AppError {
  constructor(message: string) {
    super(403, "forbidden", message);
  }
}
export class NotFoundError extends AppError {
  constructor(message: string) {
    super(404, "not_found", message);
  }
}
export class MethodError extends AppError {
  constructor(method: string, allowed: string[]) {
    super(405, "method_not_allowed", `${method} is not allowed here; use ${allowed.join(" or ")}.`);
  }
}
export class ConflictError extends AppError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(409, "conflict", message, details);
  }
}
/** A precondition the requester can fix (422); `code` names it, e.g. no_outbound_trunk. */
export class PreconditionError extends AppError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(422, code, message, details);
  }
}
/** 429; `retryAfterSec` becomes the Retry-After header (1 s when not given). */
export class RateLimitError extends AppError {
  constructor(message: string, retryAfterSec?: number) {
    const wait = Math.max(1, Math.ceil(retryAfterSec ?? 1));
    super(429, "rate_limited", message, { retryAfterSec: wait });
    this.retryAfterSec = wait;
  }
}
/** 503 `unavailable`: a dependency (the database) cannot be reached right now; retry later. */
export class UnavailableError extends AppError {
  constructor(message: string, retryAfterSec = 2) {
    super(503, "unavailable", message, { retryAfterSec });
    this.retryAfterSec = retryAfterSec;
  }
}
export type Upstream = "livekit" | "twilio";
export class UpstreamError extends AppError {
  constructor(
    readonly upstream: Upstream,
    message: string,
    readonly upstreamCode: string | number | null,
    readonly upstreamStatus: number | null,
    extra: Record<string, unknown> = {},
  ) {
    super(502, "upstream_error", message, {
      upstream,
      code: upstreamCode,
      status: upstreamStatus,
      ...extra,
    });
  }
}
export class NotConfiguredError extends AppError {
  constructor(readonly variables: string[], what: string) {
    super(
      503,
      "not_configured",
      `${what} is not configured: set ${variables.join(", ")}.`,
      { variables },
    );
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** postgres.js failing to reach PostgreSQL, or PostgreSQL shutting down / starting up. */
export function isDatabaseUnavailable(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" &&
    (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|CONNECT_TIMEOUT|CONNECTION_(CLOSED|ENDED|DESTROYED))$/
      .test(code) ||
      /^(08[0-9A-Z]{3}|57P0[123]|53300)$/.test(code));
}

interface PgError {
  code: string;
  name?: string;
  message: string;
  table_name?: string;
  column_name?: string;
  constraint_name?: string;
  datatype_name?: string;
}

/** What PostgreSQL's data exceptions mean, without the value (which may be anything). */
const DATA_EXCEPTIONS: Record<string, string> = {
  "22001": "is too long",
  "22003": "is out of range",
  "22004": "must not be null",
  "22007": "is not a valid date or time",
  "22008": "is not a valid date or time",
  "22021": "contains a byte sequence the database refuses (such as U+0000)",
  "22P02": "has an invalid format",
  "22P05": "contains a character the database refuses (such as U+0000)",
};

/** `phone_number_label_check` on table phone_number names column `label`. */
function columnOfConstraint(e: PgError): string | undefined {
  if (e.column_name) return e.column_name;
  const c = e.constraint_name;
  const t = e.table_name;
  if (!c || !t || !c.startsWith(`${t}_`)) return undefined;
  const m = /^(.+)_(check|key|fkey|not_null)$/.exec(c.slice(t.length + 1));
  return m ? m[1] : undefined;
}

/** Database refusals a request can cause, by SQLSTATE, naming the column or constraint. */
function fromDatabase(e: unknown): AppError | null {
  if (isDatabaseUnavailable(e)) {
    return new UnavailableError("The database is unavailable right now; try again shortly.");
  }
  const pg = e as PgError;
  const code = pg?.code;
  if (
    typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code) || !pg.name?.includes("Postgres")
  ) return null;
  const column = columnOfConstraint(pg);
  const where: Record<string, unknown> = {};
  if (pg.table_name) where.table = pg.table_name;
  if (column) where.column = column;
  if (pg.constraint_name) where.constraint = pg.constraint_name;
  if (pg.datatype_name) where.type = pg.datatype_name;
  const named = column ?? pg.constraint_name ?? pg.datatype_name;
  const rule = pg.constraint_name ? ` (rule ${pg.constraint_name})` : "";
  const fields = (why: string) => (column ? { fields: { [column]: why }, ...where } : where);
  if (code === "23505") {
    return new ConflictError(
      `That already exists${named ? `: ${named} must be unique` : ""}.`,
      where,
    );
  }
  if (code === "23503") {
    return new ConflictError(
      `That refers to something that does not exist (any more)${rule}.`,
      where,
    );
  }
  if (code === "42501") return new ForbiddenError("Not allowed.");
  if (code === "23502") {
    return new ValidationError(`${column ?? "A value"} is required.`, fields("is required"));
  }
  // A status chosen by the SQL that raised it, as PostgREST reads `raise sqlstate 'PT404'`.
  const custom = /^PT([1-5][0-9]{2})$/.exec(code);
  if (custom) {
    const status = Number(custom[1]);
    if (status === 404) return new NotFoundError(pg.message);
    if (status === 403) return new ForbiddenError(pg.message);
    if (status === 409) return new ConflictError(pg.message, where);
    if (status === 400) return new ValidationError(pg.message, where);
    return new AppError(status, status >= 500 ? "internal_error" : "invalid_request", pg.message);
  }
  // Check constraints named in plain words ("window_end must be after window_start") say it all.
  if (code === "23514" && pg.constraint_name?.includes(" ")) {
    const [first, ...rest] = pg.constraint_name.split(" ");
    return new ValidationError(`${pg.constraint_name}.`, {
      fields: { [column ?? first]: column ? pg.constraint_name : rest.join(" ") },
      ...where,
    });
  }
  if (code === "23514") {
    return new ValidationError(
      `${column ?? "A value"} was refused by the database's rules${rule}.`,
      fields(`refused by ${pg.constraint_name ?? "a check"}`),
    );
  }
  if (code.startsWith("22")) {
    // Raised by the project's own SQL functions with a message meant for the requester.
    if (code === "22023") return new ValidationError(pg.message, where);
    const why = DATA_EXCEPTIONS[code] ?? "was refused by the database";
    return new ValidationError(
      `${column ?? named ?? "A value"} ${why}${rule}.`,
      fields(why),
    );
  }
  return null;
}

/** Maps any thrown value to a status, body and headers; unknown errors never leak their text. */
export function toErrorBody(
  e: unknown,
): { status: number; body: ErrorBody; headers: Record<string, string>; error: AppError | null } {
  const mapped = fromDatabase(e) ?? e;
  if (mapped instanceof AppError) {
    const error: ErrorBody["error"] = { code: mapped.code, message: mapped.message };
    if (mapped.details) error.details = mapped.details;
    const headers: Record<string, string> = {};
    const retry = mapped.retryAfterSec ?? (mapped.status === 429 ? 1 : undefined);
    if (retry !== undefined) headers["Retry-After"] = String(Math.max(0, Math.ceil(retry)));
    return { status: mapped.status, body: { error }, headers, error: mapped };
  }
  return {
    status: 500,
    body: { error: { code: "internal_error", message: "An unexpected error occurred." } },
    headers: {},
    error: null,
  };
}
