// An import's body is read whole, within its bounds, before the database is touched: a slow
// upload ends in a 408 and never holds a connection.
import assert from "node:assert/strict";
import type { Clock } from "../../supabase/functions/_shared/clock.ts";
import {
  IMPORT_READ_SEC,
  importContacts,
} from "../../supabase/functions/import-contacts/contacts.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { AppError } from "../../supabase/functions/_shared/errors.ts";
import { logger } from "../../supabase/functions/_shared/log.ts";

/** A clock whose waits pass at once, each moving it on by what was waited. */
function fastClock(): Clock {
  let now = 0;
  return {
    now: () => now,
    sleep: async (ms) => {
      await new Promise((r) => queueMicrotask(() => r(null)));
      now += Math.max(0, ms);
    },
    cpuMs: () => 0,
  };
}

const untouched = new Proxy({}, {
  get() {
    throw new Error("the database was touched while the body was still arriving");
  },
});

function depsWith(clock: Clock): Deps {
  return { sql: untouched, clock, log: logger({}, clock) } as unknown as Deps;
}

const user = { id: "u", claims: { sub: "u", role: "authenticated" } } as never;

Deno.test("an upload that stalls is refused with 408 before the database is touched", async () => {
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode("phone\n+13125550100\n"));
    },
    cancel() {
      cancelled = true;
    },
  });
  const req = new Request("http://fn/import-contacts", {
    method: "POST",
    headers: { "content-type": "text/csv" },
    body,
  });
  await assert.rejects(
    () => importContacts(depsWith(fastClock()), user, req, { campaignId: crypto.randomUUID() }),
    (e: unknown) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.status, 408);
      assert.match(e.message, new RegExp(`within ${IMPORT_READ_SEC} s|slower than`));
      return true;
    },
  );
  assert.ok(cancelled, "the upload is cancelled");
});

Deno.test("an upload slower than 1 KiB a second after its first 10 s is refused with 408", async () => {
  // Each reading of this clock is a second later; its waits never end (the rate decides).
  let t = 0;
  const clock: Clock = {
    now: () => (t += 1000),
    sleep: () => new Promise(() => {}),
    cpuMs: () => 0,
  };
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      sent++;
      c.enqueue(new TextEncoder().encode("+13125550100\n".padEnd(100, " ")));
    },
  });
  const req = new Request("http://fn/import-contacts", {
    method: "POST",
    headers: { "content-type": "text/csv" },
    body,
  });
  await assert.rejects(
    () => importContacts(depsWith(clock), user, req, { campaignId: crypto.randomUUID() }),
    (e: unknown) => e instanceof AppError && e.status === 408 && /slower than/.test(e.message),
  );
  assert.ok(sent < 20, `given up after ${sent} pieces`);
});

Deno.test("a type that is not a contact file is a 415 naming what is accepted, unread", async () => {
  const req = new Request("http://fn/import-contacts", {
    method: "POST",
    headers: { "content-type": "application/pdf" },
    body: "%PDF",
  });
  await assert.rejects(
    () => importContacts(depsWith(fastClock()), user, req, {}),
    (e: unknown) => e instanceof AppError && e.status === 415 && /text\/csv/.test(e.message),
  );
});
