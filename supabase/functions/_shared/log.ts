// Structured JSON log lines. Keys that may hold secrets are redacted before printing, and so
// is anything shaped like a JWT, a bearer credential or a secret API key inside a logged string.

import { type Clock, wallClock } from "./clock.ts";

const SECRET_KEY = /pass(word)?|secret|token|authorization|api[_-]?key|credential/i;
const SECRET_TEXT =
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}|\bsb_secret_[A-Za-z0-9_-]+/g;

/** The text with anything shaped like a JWT, a bearer credential or a secret API key blanked. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_TEXT, "[redacted]");
}

function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return value.replace(SECRET_TEXT, "[redacted]");
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1);
  }
  return out;
}

export type Fields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

export type Sink = (line: string) => void;
let sink: Sink = (line) => console.log(line);

/** Lets the local stack capture log lines (tests scan them for secrets). */
export function setLogSink(next: Sink): void {
  sink = next;
}

export function logger(base: Fields = {}, clock: Clock = wallClock): Logger {
  const write = (level: string, msg: string, fields?: Fields) =>
    sink(
      JSON.stringify(
        redact({ level, time: new Date(clock.now()).toISOString(), msg, ...base, ...fields }),
      ),
    );
  return {
    info: (msg, f) => write("info", msg, f),
    warn: (msg, f) => write("warn", msg, f),
    error: (msg, f) => write("error", msg, f),
    child: (f) => logger({ ...base, ...f }, clock),
  };
}
