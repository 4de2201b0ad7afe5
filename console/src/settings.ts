// Every campaign setting with the limits the database checks (20261202000300_campaigns.sql), so the
// form refuses what the database would and shows each error beside its field.

export type FieldKind = "int" | "number" | "time" | "datetime" | "text" | "countries";
export interface NumberField {
  key: string;
  label: string;
  kind: "int" | "number";
  min: number;
  max: number;
  /** min is excluded: the database checks `> min`. */
  minExclusive?: boolean;
  unit?: string;
  help: string;
}

export const NUMBER_FIELDS: NumberField[] = [
  {
    key: "max_concurrent",
    label: "Calls at once",
    kind: "int",
    min: 1,
    max: 1000,
    help: "calls under way at once",
  },
  {
    key: "max_attempts",
    label: "Attempts per contact",
    kind: "int",
    min: 1,
    max: 10,
    help: "retries included",
  },
  {
    key: "retry_busy_sec",
    label: "Retry after busy",
    kind: "int",
    min: 0,
    max: 604800,
    unit: "s",
    help: "seconds, up to 7 days",
  },
  {
    key: "retry_no_answer_sec",
    label: "Retry after no answer",
    kind: "int",
    min: 0,
    max: 604800,
    unit: "s",
    help: "seconds, up to 7 days",
  },
  {
    key: "retry_failed_sec",
    label: "Retry after failure",
    kind: "int",
    min: 0,
    max: 604800,
    unit: "s",
    help: "seconds, up to 7 days",
  },
  {
    key: "retry_voicemail_sec",
    label: "Retry after voicemail",
    kind: "int",
    min: 0,
    max: 604800,
    unit: "s",
    help: "seconds, up to 7 days",
  },
  {
    key: "retry_backoff",
    label: "Retry backoff",
    kind: "number",
    min: 1,
    max: 10,
    help: "each later retry waits this many times longer",
  },
  {
    key: "ringing_timeout_sec",
    label: "Ringing timeout",
    kind: "int",
    min: 5,
    max: 80,
    unit: "s",
    help: "then it counts as no answer",
  },
  {
    key: "max_call_duration_sec",
    label: "Longest call",
    kind: "int",
    min: 10,
    max: 86400,
    unit: "s",
    help: "an answered call is ended after this",
  },
  {
    key: "failure_threshold",
    label: "Breaker: failed share",
    kind: "number",
    min: 0,
    max: 1,
    minExclusive: true,
    help: "pauses when this share of calls failed",
  },
  {
    key: "failure_window_sec",
    label: "Breaker: window",
    kind: "int",
    min: 10,
    max: 3600,
    unit: "s",
    help: "within this many seconds",
  },
  {
    key: "failure_min_calls",
    label: "Breaker: at least",
    kind: "int",
    min: 1,
    max: 10000,
    help: "calls in the window",
  },
  {
    key: "abandon_cap",
    label: "Abandonment cap",
    kind: "number",
    min: 0,
    max: 1,
    minExclusive: true,
    help: "abandoned per answered call over 30 days",
  },
];

/** The database's defaults, for a new campaign. */
export const DEFAULTS: Record<string, unknown> = {
  name: "",
  assistant_id: "",
  phone_number_id: "",
  caller_number_ids: [],
  caller_id_strategy: "fixed",
  starts_at: "",
  ends_at: "",
  window_start: "09:00",
  window_end: "20:00",
  weekdays: [1, 2, 3, 4, 5],
  default_timezone: "UTC",
  default_country: "US",
  allowed_countries: "US, CA",
  max_concurrent: 5,
  max_attempts: 3,
  retry_busy_sec: 600,
  retry_no_answer_sec: 1800,
  retry_failed_sec: 900,
  retry_voicemail_sec: 7200,
  retry_backoff: 2,
  ringing_timeout_sec: 30,
  max_call_duration_sec: 1800,
  failure_threshold: 0.5,
  failure_window_sec: 120,
  failure_min_calls: 10,
  abandon_cap: 0.03,
};

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

const TIME = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/;

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const countries = (s: string) =>
  s.split(/[\s,]+/).map((c) => c.trim().toUpperCase()).filter(Boolean);

/** The form's errors by field (empty: the database would take it). */
export function validate(v: Record<string, unknown>): Record<string, string> {
  const errors: Record<string, string> = {};
  const name = String(v.name ?? "");
  if (name.trim().length < 1 || name.length > 200) errors.name = "name must be 1 to 200 characters";
  if (!v.assistant_id) errors.assistant_id = "choose an assistant";
  for (const f of NUMBER_FIELDS) {
    const raw = String(v[f.key] ?? "").trim();
    const x = Number(raw);
    const range = `${f.minExclusive ? "above" : "between"} ${f.min} ${
      f.minExclusive ? "and at most" : "and"
    } ${f.max}`;
    if (raw === "" || !Number.isFinite(x)) errors[f.key] = `${f.key} must be a number ${range}`;
    else if (f.kind === "int" && !Number.isInteger(x)) {
      errors[f.key] = `${f.key} must be a whole number`;
    } else if (x > f.max || (f.minExclusive ? x <= f.min : x < f.min)) {
      errors[f.key] = `${f.key} must be ${range}`;
    }
  }
  const ws = String(v.window_start ?? "");
  const we = String(v.window_end ?? "");
  if (!TIME.test(ws)) errors.window_start = "window_start must be HH:MM or HH:MM:SS";
  if (!TIME.test(we)) errors.window_end = "window_end must be HH:MM or HH:MM:SS";
  else if (TIME.test(ws) && normTime(we) <= normTime(ws)) {
    errors.window_end = "window_end must be after window_start";
  }
  if (!Array.isArray(v.weekdays) || v.weekdays.length === 0) {
    errors.weekdays = "weekdays must hold at least one day";
  }
  if (!isTimeZone(String(v.default_timezone ?? ""))) {
    errors.default_timezone = "default_timezone must be a time zone name such as Europe/Paris";
  }
  if (!/^[A-Z]{2}$/.test(String(v.default_country ?? ""))) {
    errors.default_country = "default_country must be a two-letter code such as US";
  }
  const allowed = countries(String(v.allowed_countries ?? ""));
  if (allowed.length === 0 || allowed.some((c) => !/^[A-Z]{2}$/.test(c))) {
    errors.allowed_countries = "allowed_countries must be two-letter codes, at least one";
  }
  const starts = v.starts_at ? new Date(String(v.starts_at)) : null;
  const ends = v.ends_at ? new Date(String(v.ends_at)) : null;
  if (starts && isNaN(starts.getTime())) errors.starts_at = "starts_at is not a date and time";
  if (ends && isNaN(ends.getTime())) errors.ends_at = "ends_at is not a date and time";
  else if (starts && ends && ends <= starts) errors.ends_at = "ends_at must be after starts_at";
  if (Array.isArray(v.caller_number_ids) && v.caller_number_ids.length > 1000) {
    errors.caller_number_ids = "caller_number_ids must hold at most 1000 numbers";
  }
  return errors;
}

const normTime = (t: string) => (t.length === 5 ? `${t}:00` : t);

/** Which field a database refusal is about: its message names the column. */
export function fieldOf(message: string): string | null {
  let best: string | null = null;
  let at = Infinity;
  for (const k of Object.keys(DEFAULTS)) {
    const m = new RegExp(`\\b${k}\\b`).exec(message);
    if (m && (m.index < at || (m.index === at && k.length > (best?.length ?? 0)))) {
      best = k;
      at = m.index;
    }
  }
  return best;
}
