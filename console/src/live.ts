import { useEffect, useRef, useState } from "react";
import { config, supabase } from "./config.ts";

/** The tables the console watches (20261207001000_console.sql adds them to supabase_realtime). */
export const WATCHED = [
  "phone_number",
  "phone_number_health",
  "campaigns",
  "campaign_calls",
  "outbound_calls",
  "webhook_deliveries",
] as const;
export type Watched = typeof WATCHED[number];

export const POLL_MS = 2000;
export type LiveMode = { kind: "connecting" } | { kind: "realtime" } | {
  kind: "polling";
  why: string;
};

let mode: LiveMode = { kind: "connecting" };
const modeListeners = new Set<(m: LiveMode) => void>();
const changeListeners = new Set<(table: string) => void>();

function setMode(m: LiveMode) {
  mode = m;
  for (const l of modeListeners) l(m);
}

/**
 * Subscribes to changes of the watched tables through Realtime (rows under RLS, as the signed-in
 * user); when the project has no Realtime (the local stack) or it does not answer within 5 s, the
 * screens poll instead.
 */
export function startLive() {
  if (config.realtime === false) {
    setMode({ kind: "polling", why: "Realtime is off in config.json" });
    return () => {};
  }
  const channel = supabase.channel("console");
  for (const table of WATCHED) {
    channel.on("postgres_changes", { event: "*", schema: "public", table }, () => {
      for (const l of changeListeners) l(table);
    });
  }
  let settled = false;
  const fallBack = (why: string) => {
    if (settled && mode.kind === "polling") return;
    settled = true;
    setMode({ kind: "polling", why });
    void supabase.removeChannel(channel);
  };
  const timer = setTimeout(() => fallBack("Realtime did not answer"), 5000);
  channel.subscribe((status, err) => {
    if (status === "SUBSCRIBED") {
      settled = true;
      clearTimeout(timer);
      setMode({ kind: "realtime" });
    } else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT" || status === "CLOSED") {
      clearTimeout(timer);
      fallBack(err?.message ?? `Realtime ${status.toLowerCase().replace("_", " ")}`);
    }
  });
  return () => {
    clearTimeout(timer);
    void supabase.removeChannel(channel);
  };
}

export function useLiveMode(): LiveMode {
  const [m, setM] = useState(mode);
  useEffect(() => {
    modeListeners.add(setM);
    setM(mode);
    return () => void modeListeners.delete(setM);
  }, []);
  return m;
}

/**
 * Runs `load` now and again whenever one of `tables` changes (Realtime) or every POLL_MS
 * (polling); `deps` restart it. Overlapping loads are skipped, not queued.
 */
export function useLive(tables: Watched[], load: () => Promise<void>, deps: unknown[]) {
  const live = useLiveMode();
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let busy = false;
    let again = false;
    let stopped = false;
    const run = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await loadRef.current();
      } finally {
        busy = false;
        if (again && !stopped) {
          again = false;
          void run();
        }
      }
    };
    void run();
    if (live.kind === "polling") {
      const t = setInterval(() => void run(), POLL_MS);
      return () => {
        stopped = true;
        clearInterval(t);
      };
    }
    let debounce: ReturnType<typeof setTimeout> | undefined;
    const onChange = (table: string) => {
      if (!tables.includes(table as Watched)) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => void run(), 250);
    };
    changeListeners.add(onChange);
    return () => {
      stopped = true;
      clearTimeout(debounce);
      changeListeners.delete(onChange);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live.kind, ...deps]);
}
