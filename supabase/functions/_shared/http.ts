// The HTTP edge of every function: CORS, method checks, JSON bodies validated with zod (every
// failing field named), a request id (the x-request-id response header and every log line),
// and errors mapped once to api.md's JSON (with Retry-After where waiting helps).
import { z } from "zod";
import { type Deps, withFields } from "./deps.ts";
import { AppError, MethodError, toErrorBody, ValidationError } from "./errors.ts";
import { logger } from "./log.ts";

export const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-request-id",
  "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
  "Access-Control-Expose-Headers": "x-request-id, retry-after",
  "Access-Control-Max-Age": "86400",
};

/** A requester's own request id is kept when it is a plain token; otherwise a new one is made. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function withHeaders(res: Response, headers: Record<string, string>): Response {
  try {
    for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
    return res;
  } catch {
    // Immutable headers (a fetched response): copy it.
    const copy = new Headers(res.headers);
    for (const [k, v] of Object.entries(headers)) copy.set(k, v);
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: copy,
    });
  }
}

export const MAX_BODY_BYTES = 64 * 1024;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...CORS_HEADERS, "Content-Type": "application/json", ...headers },
  });
}

export type Handler = (req: Request) => Promise<Response>;

/** A function: built from its deps (or a way to get them, read on the first request). */
export type Fn = (deps: Deps | (() => Deps)) => Handler;

/** Wraps a function body: OPTIONS, allowed methods, deps, logging and error mapping. */
export function serve(
  name: string,
  methods: string[],
  /** Gets the function's deps, with a log naming the function and the request id. */
  fn: (req: Request, ctx: Deps) => Promise<unknown>,
): Fn {
  return (source) => async (req) => {
    const given = req.headers.get("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    if (req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: { ...CORS_HEADERS, "x-request-id": requestId },
      });
    }
    let log = logger({ fn: name, requestId });
    const started = performance.now();
    try {
      if (!methods.includes(req.method)) throw new MethodError(req.method, methods);
      const deps = typeof source === "function" ? source() : source;
      const ctx = withFields(deps, { fn: name, requestId });
      log = ctx.log;
      const result = await fn(req, ctx);
      const res = result instanceof Response ? result : json(result);
      log.info("request done", { status: res.status, ms: Math.round(performance.now() - started) });
      return withHeaders(res, { "x-request-id": requestId });
    } catch (e) {
      const { status, body, headers, error } = toErrorBody(e);
      // Code, message and the names of failing fields; never the values sent.
      const fields: Record<string, unknown> = {
        status,
        code: body.error.code,
        message: body.error.message,
        ms: Math.round(performance.now() - started),
      };
      const named = error?.details?.fields;
      if (named && typeof named === "object") fields.fields = Object.keys(named);
      if (error?.details?.upstream) fields.upstream = error.details;
      if (error?.details?.constraint) fields.constraint = error.details.constraint;
      if (error && error !== e) {
        // A database refusal: its SQLSTATE; PostgreSQL's text (which may quote the value sent)
        // only for 5xx.
        const sqlstate = (e as { code?: unknown })?.code;
        if (typeof sqlstate === "string") fields.sqlstate = sqlstate;
        if (status >= 500) fields.cause = describe(e);
      }
      if (!error) fields.error = describe(e);
      (status >= 500 ? log.error : log.warn)("request failed", fields);
      return json(body, status, { ...headers, "x-request-id": requestId });
    }
  };
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  return `${e.name}${typeof code === "string" ? ` ${code}` : ""}: ${e.message}`;
}

type Issue = { path: PropertyKey[]; code: string; message: string; keys?: string[] };

/**
 * zod skips an object's refinements (e.g. "exactly one of a or b") once any field failed;
 * they are run here on the raw input so the answer names every failing field at once.
 */
function skippedRefinements(schema: z.ZodType, input: unknown): Issue[] {
  if (input === null || typeof input !== "object") return [];
  // deno-lint-ignore no-explicit-any
  const checks: any[] = (schema as any)?._zod?.def?.checks ?? [];
  const out: Issue[] = [];
  for (const ch of checks) {
    const def = ch?._zod?.def;
    if (def?.check !== "custom" || def.when || typeof ch._zod.check !== "function") continue;
    // deno-lint-ignore no-explicit-any
    const payload = { value: input, issues: [] as any[] };
    try {
      if (ch._zod.check(payload) instanceof Promise) continue;
    } catch {
      continue; // a refinement that cannot read unparsed input says nothing here
    }
    for (const issue of payload.issues) {
      const custom = typeof def.error === "function" ? def.error(issue) : undefined;
      const message = typeof custom === "string"
        ? custom
        : custom?.message ?? issue.message ?? "is invalid";
      out.push({ path: issue.path ?? [], code: issue.code ?? "custom", message });
    }
  }
  return out;
}

/** Paths of every string (key or value) holding U+0000, which PostgreSQL text cannot store. */
function nulPaths(value: unknown, path: string[] = [], out: string[] = [], depth = 0): string[] {
  if (depth > 32) return out;
  if (typeof value === "string") {
    if (value.includes("\u0000")) out.push(path.length ? path.join(".") : "(body)");
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => nulPaths(v, [...path, String(i)], out, depth + 1));
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes("\u0000")) out.push([...path, k.replaceAll("\u0000", "\\0")].join("."));
      nulPaths(v, [...path, k], out, depth + 1);
    }
  }
  return out;
}

function fieldDetails(issues: readonly Issue[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of issues) {
    const path = issue.path.length ? issue.path.map(String).join(".") : "(body)";
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys ?? []) {
        fields[[...issue.path.map(String), key].join(".")] = "unknown field";
      }
    } else if (!(path in fields)) {
      fields[path] = issue.message;
    }
  }
  return fields;
}

/** Validates a plain object against a schema; 400 naming each failing field. */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  const nul = nulPaths(input);
  if (!parsed.success || nul.length) {
    const issues: Issue[] = [
      ...nul.map((p) => ({
        path: p === "(body)" ? [] : p.split("."),
        code: "nul",
        message: "must not contain U+0000",
      })),
      ...(parsed.success ? [] : [
        ...(parsed.error.issues as unknown as Issue[]),
        ...skippedRefinements(schema, input),
      ]),
    ];
    const fields = fieldDetails(issues);
    throw new ValidationError(
      `Invalid request: ${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ")}`,
      { fields },
    );
  }
  return parsed.data;
}

/** A body's bytes as JSON (strict UTF-8); a 400 naming the body when they are not. */
export function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ValidationError("The body is not valid JSON.", {
      fields: { "(body)": "invalid JSON" },
    });
  }
}

/** Reads a JSON object body (bounded in size) and validates it. */
export async function readJson<S extends z.ZodType>(req: Request, schema: S): Promise<z.infer<S>> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new AppError(415, "unsupported_media_type", "Send the body as application/json.");
  }
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const body = parseJson(await readBody(req));
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
  return joinChunks(chunks, size);
}

/** Chunks read from a body, as one array of `size` bytes. */
export function joinChunks(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
