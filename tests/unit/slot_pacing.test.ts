import assert from "node:assert/strict";
import { carriedLateness } from "../../supabase/functions/_shared/pacing.ts";

Deno.test("a dial that went out late pushes back the dials up to 1.04 s after its slot, less 10 ms", () => {
  const sent = [{ slot: 10_000, late: 25 }, { slot: 10_520, late: 3 }];
  assert.equal(carriedLateness(sent, 11_040), 15, "two slots on at 2 cps: the same second");
  assert.equal(carriedLateness(sent, 10_520 + 1040), 0, "the late one is more than 1.04 s back");
  assert.equal(carriedLateness(sent, 9_480), 0, "later dials push nothing back");
  assert.equal(carriedLateness([{ slot: 10_000, late: 8 }], 10_520), 0, "within 10 ms: nothing");
  assert.equal(carriedLateness([], 10_000), 0);
});
