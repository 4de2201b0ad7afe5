import { FunctionsHttpError } from "@supabase/supabase-js";
import { supabase } from "./config.ts";

// deno-lint-ignore no-explicit-any
export type Row = Record<string, any>;

/** An error as the API gave it: a message, and for database and function errors a code. */
export class ApiError extends Error {
  constructor(message: string, readonly code?: string, readonly details?: unknown) {
    super(message);
  }
}

/** The data of a supabase-js answer, or its error thrown as an ApiError. */
export function must<T>(r: { data: T; error: unknown; count?: number | null }): NonNullable<T> {
  if (r.error) {
    const e = r.error as { message?: string; code?: string; details?: unknown; hint?: string };
    const hint = e.hint ? ` (${e.hint})` : "";
    throw new ApiError(`${e.message ?? String(r.error)}${hint}`, e.code, e.details);
  }
  return r.data as NonNullable<T>;
}

/** Calls a function; its `{error: {code, message, details}}` answer becomes an ApiError. */
export async function invoke(
  name: string,
  options: { body?: unknown; method?: "GET" | "POST" | "DELETE" } = {},
): Promise<Row> {
  const { data, error } = await supabase.functions.invoke(name, {
    // deno-lint-ignore no-explicit-any
    body: options.body as any,
    method: options.method ?? "POST",
  });
  if (error) {
    if (error instanceof FunctionsHttpError) {
      let body: Row | null = null;
      try {
        body = await error.context.json();
      } catch { /* not JSON */ }
      const e = body?.error;
      if (e?.message) throw new ApiError(e.message, e.code, e.details);
      throw new ApiError(`${name} answered ${error.context.status}`, String(error.context.status));
    }
    throw new ApiError(`${name} could not be reached: ${error.message}`);
  }
  return data as Row;
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
