// The HTTP edge of every function: CORS, method checks, JSON bodies validated with zod,
// a request id and logger, and errors mapped once to api.md's JSON.
import { z } from "zod";
import { type Config, getConfig } from "./config.ts";
import { AppError, MethodError, toErrorBody, ValidationError } from "./errors.ts";
import { type Logger, logger } from "./log.ts";

export const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Max-Age": "86400",
};

export const MAX_BODY_BYTES = 64 * 1024;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...CORS_HEADERS, "Content-Type": "application/json", ...headers },
  });
}

export interface Ctx {
  requestId: string;
  log: Logger;
  config: Config;
}

export type Handler = (req: Request) => Promise<Response>;

/** Wraps a function body: OPTIONS, allowed methods, config, logging and error mapping. */
export function serve(
  name: string,
  methods: string[],
  fn: (req: Request, ctx: Ctx) => Promise<unknown>,
): Handler {
  return async (req) => {
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS_HEADERS });
    const requestId = req.headers.get("x-request-id") ?? crypto.randomUUID();
    const log = logger({ fn: name, requestId });
    const started = performance.now();
    try {
      if (!methods.includes(req.method)) throw new MethodError(req.method, methods);
      const config = getConfig();
      const result = await fn(req, { requestId, log, config });
      const res = result instanceof Response ? result : json(result);
      log.info("request done", { status: res.status, ms: Math.round(performance.now() - started) });
      return res;
    } catch (e) {
      const { status, body } = toErrorBody(e);
      const fields: Record<string, unknown> = { status, code: body.error.code };
      if (e instanceof AppError && e.details?.upstream) fields.upstream = e.details;
      if (!(e instanceof AppError)) {
        fields.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      }
      (status >= 500 ? log.error : log.warn)("request failed", fields);
      return json(body, status);
    }
  };
}

function fieldDetails(error: z.ZodError): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    const path = issue.path.length ? issue.path.join(".") : "(body)";
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) fields[[...issue.path, key].join(".")] = "unknown field";
    } else if (!(path in fields)) {
      fields[path] = issue.message;
    }
  }
  return fields;
}

/** Validates a plain object against a schema; 400 naming each failing field. */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const fields = fieldDetails(parsed.error);
    throw new ValidationError(
      `Invalid request: ${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ")}`,
      { fields },
    );
  }
  return parsed.data;
}

/** Reads a JSON object body (bounded in size) and validates it. */
export async function readJson<S extends z.ZodType>(req: Request, schema: S): Promise<z.infer<S>> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new AppError(415, "unsupported_media_type", "Send the body as application/json.");
  }
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ValidationError("The body is not valid JSON.", {
      fields: { "(body)": "invalid JSON" },
    });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ValidationError("The body must be a JSON object.", {
      fields: { "(body)": "expected an object" },
    });
  }
  return validate(schema, body);
}

/** Query parameters as an object (GET requests), validated like a body. */
export function readQuery<S extends z.ZodType>(req: Request, schema: S): z.infer<S> {
  const params = Object.fromEntries(new URL(req.url).searchParams);
  return validate(schema, params);
}

function tooLarge(max = MAX_BODY_BYTES) {
  return new AppError(413, "payload_too_large", `The body exceeds ${max} bytes.`);
}

/** The body's bytes, refused (413) past `max` without reading further. */
export async function readBody(req: Request, max = MAX_BODY_BYTES): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > max) throw tooLarge(max);
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
