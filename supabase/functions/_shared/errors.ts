// Typed errors and the one place that turns them into the JSON of api.md.

export class AppError extends Error {
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
/** A precondition the caller can fix (422); `code` names it, e.g. no_outbound_trunk. */
export class PreconditionError extends AppError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(422, code, message, details);
  }
}
export class RateLimitError extends AppError {
  constructor(message: string, retryAfterSec: number) {
    super(429, "rate_limited", message, { retryAfterSec });
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

/** Database refusals a request can cause, by SQLSTATE; the text never reaches the client. */
function fromDatabase(e: unknown): AppError | null {
  const code = (e as { code?: unknown })?.code;
  if (
    typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code) ||
    !(e as Error).name?.includes("Postgres")
  ) return null;
  if (code === "23505") return new ConflictError("That already exists.");
  if (code === "23503") {
    return new ConflictError("That refers to something that does not exist (any more).");
  }
  if (code === "42501") return new ForbiddenError("Not allowed.");
  if (code.startsWith("22") || code === "23502" || code === "23514") {
    return new ValidationError("A value was refused by the database's rules.");
  }
  return null;
}

/** Maps any thrown value to a status and body; unknown errors never leak their text. */
export function toErrorBody(e: unknown): { status: number; body: ErrorBody } {
  e = fromDatabase(e) ?? e;
  if (e instanceof AppError) {
    const error: ErrorBody["error"] = { code: e.code, message: e.message };
    if (e.details) error.details = e.details;
    return { status: e.status, body: { error } };
  }
  return {
    status: 500,
    body: { error: { code: "internal_error", message: "An unexpected error occurred." } },
  };
}
