import { createClient, type SupabaseClient } from "@supabase/supabase-js";

/** What the console needs to reach a project: its URL and its publishable (or legacy anon) key. */
export interface ConsoleConfig {
  supabaseUrl: string;
  anonKey: string;
  /** false: never try Realtime (the local stack has none); default true, with polling as fallback. */
  realtime?: boolean;
}

/**
 * The configuration is read at run time from `config.json` beside index.html, so one build can be
 * hosted for any project; VITE_SUPABASE_URL and VITE_SUPABASE_ANON_KEY at build time are the
 * fallback.
 */
export async function loadConfig(): Promise<ConsoleConfig> {
  let fromFile: Partial<ConsoleConfig> = {};
  const res = await fetch("./config.json", { cache: "no-store" }).catch(() => null);
  if (res?.ok) {
    try {
      fromFile = await res.json();
    } catch {
      throw new Error("config.json is not valid JSON.");
    }
  }
  const supabaseUrl = fromFile.supabaseUrl ?? import.meta.env.VITE_SUPABASE_URL;
  const anonKey = fromFile.anonKey ?? import.meta.env.VITE_SUPABASE_ANON_KEY;
  const missing = [
    supabaseUrl ? null : "supabaseUrl",
    anonKey ? null : "anonKey",
  ].filter(Boolean);
  if (missing.length) {
    throw new Error(
      `The console is not configured: ${missing.join(" and ")} missing. Put ` +
        `{"supabaseUrl": "https://<ref>.supabase.co", "anonKey": "<publishable or anon key>"} in ` +
        `config.json beside index.html, or build with VITE_SUPABASE_URL and VITE_SUPABASE_ANON_KEY.`,
    );
  }
  if (/^sb_secret_/.test(anonKey) || keyRole(anonKey) === "service_role") {
    throw new Error(
      "config.json holds a secret (service) key: give the console the publishable or anon key.",
    );
  }
  return { supabaseUrl, anonKey, realtime: fromFile.realtime ?? true };
}

/** The role claim of a legacy JWT key, if it is one. */
function keyRole(key: string): string | null {
  const part = key.split(".")[1];
  if (!part) return null;
  try {
    return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))).role ?? null;
  } catch {
    return null;
  }
}

export let supabase: SupabaseClient;
export let config: ConsoleConfig;

export function connect(c: ConsoleConfig) {
  config = c;
  supabase = createClient(c.supabaseUrl, c.anonKey);
}
