import assert from "node:assert/strict";
import type { Clock } from "../../supabase/functions/_shared/clock.ts";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import type { Sql } from "../../supabase/functions/_shared/db.ts";
import { depsFor } from "../../supabase/functions/_shared/deps.ts";
import { logger } from "../../supabase/functions/_shared/log.ts";
import { carriedLateness, sendInSlot } from "../../supabase/functions/_shared/pacing.ts";

Deno.test("a dial that went out late pushes back the dials up to 1.04 s after its slot, less 10 ms", () => {
  const sent = [{ slot: 10_000, late: 25 }, { slot: 10_520, late: 3 }];
  assert.equal(carriedLateness(sent, 11_040), 15, "two slots on at 2 cps: the same second");
  assert.equal(carriedLateness(sent, 10_520 + 1040), 0, "the late one is more than 1.04 s back");
  assert.equal(carriedLateness(sent, 9_480), 0, "later dials push nothing back");
  assert.equal(carriedLateness([{ slot: 10_000, late: 8 }], 10_520), 0, "within 10 ms: nothing");
  assert.equal(carriedLateness([], 10_000), 0);
});

Deno.test("a dial is signed before its slot and written in it; one that would be written late takes a new slot", async () => {
  // A LiveKit stand-in that counts dials; the clock is the test's, and so is the database,
  // which hands out one new slot.
  let dials = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    dials++;
    return Response.json({
      participantId: "PA_1",
      participantIdentity: "sip",
      roomName: "r",
      sipCallId: "SCL_1",
    });
  });
  let now = 1_000_000;
  const clock: Clock = {
    now: () => now,
    sleep: (ms) => {
      now += Math.max(0, ms);
      return Promise.resolve();
    },
    cpuMs: () => 0,
  };
  const retakes: Date[] = [];
  const sql = ((strings: TemplateStringsArray) => {
    assert.match(strings.join("?"), /take_carrier_slots/);
    const slot = new Date(now + 100);
    retakes.push(slot);
    return Promise.resolve([{ slots: [slot] }]);
  }) as unknown as Sql;
  const config = parseConfig({
    SUPABASE_URL: "http://127.0.0.1:1",
    SUPABASE_ANON_KEY: "anon",
    SUPABASE_SERVICE_ROLE_KEY: "service",
    SUPABASE_DB_URL: "postgres://u:p@127.0.0.1:1/db",
    LIVEKIT_URL: `http://127.0.0.1:${server.addr.port}`,
    LIVEKIT_API_KEY: "key",
    LIVEKIT_API_SECRET: "secret-of-at-least-32-characters-long",
  });
  const deps = depsFor(config, { sql, clock, log: logger({}, clock) });
  const sentAt: number[] = [];
  let signing = 45;
  try {
    const slot = new Date(now);
    const went = await sendInSlot(
      deps,
      "unit-carrier",
      slot,
      "room-gate",
      (at) => sentAt.push(at),
      async () => {
        // Signing the request took `signing` ms: past the tolerance the first time, not the second.
        now += signing;
        signing = 0;
        await deps.liveKit.sip.createSipParticipant("ST_1", "+12125550100", "room-gate", {});
      },
    );
    assert.equal(went, true);
    assert.equal(dials, 1, "one request reached LiveKit");
    assert.equal(retakes.length, 1, "the late dial took one new slot");
    assert.deepEqual(sentAt, [retakes[0].getTime()], "and went in it, on time");
  } finally {
    await server.shutdown();
  }
});
