import assert from "node:assert/strict";
import { callbackProblem, reportBody } from "../../supabase/functions/call-report/reports.ts";
import { parseTransferTarget } from "../../supabase/functions/_shared/transfer.ts";

Deno.test("transfer targets: E.164, tel: and sip: URIs; phone numbers inside SIP URIs are found", () => {
  assert.deepEqual(parseTransferTarget("+14155550100"), {
    uri: "tel:+14155550100",
    number: "+14155550100",
    sipHost: null,
  });
  assert.deepEqual(parseTransferTarget("tel:+1 (415) 555-0100"), {
    uri: "tel:+14155550100",
    number: "+14155550100",
    sipHost: null,
  });
  assert.deepEqual(parseTransferTarget("sip:+14155550100@pstn.example.com"), {
    uri: "sip:+14155550100@pstn.example.com",
    number: "+14155550100",
    sipHost: null,
  });
  // A number without its "+" is sent as E.164, so the carrier reads no dialling prefix.
  assert.deepEqual(parseTransferTarget("sip:14155550100@pstn.example.com;transport=tcp"), {
    uri: "sip:+14155550100@pstn.example.com;transport=tcp",
    number: "+14155550100",
    sipHost: null,
  });
  assert.deepEqual(parseTransferTarget("sips:desk@PBX.example.com:5061"), {
    uri: "sips:desk@PBX.example.com:5061",
    number: null,
    sipHost: "pbx.example.com",
  });
  for (const bad of ["4155550100", "tel:4155550100", "sip:nohost", "http://x", "sip:a@b c"]) {
    assert.equal(typeof parseTransferTarget(bad), "string", bad);
  }
});

Deno.test("transfer targets that would let a carrier dial something else are refused or normalised", () => {
  // Each found by an attack: international prefixes, post-dial digits, pauses, letters in the
  // number, Unicode pluses and digits. None is passed through as a number.
  for (
    const raw of [
      "sip:0114477009001234@trunk.pstn.twilio.com", // 011: NANP's international prefix
      "sip:004477009001234@trunk.pstn.twilio.com", // 00: elsewhere
      "+19005551234,1",
      "tel:+19005551234;postd=1",
      "+1900555x1234",
      "\uff0b19005551234", // a full-width plus
      "+\u0661\u0669\u0660\u0660", // Arabic-Indic digits
    ]
  ) {
    const t = parseTransferTarget(raw);
    if (typeof t === "string") continue;
    assert.equal(t.number, null, `${raw} is not read as a number`);
    assert.notEqual(t.sipHost, null, `${raw} can only be a SIP address on an allowed host`);
  }
  // A number in a SIP URI is one: its checks (premium, country, do-not-call) apply.
  const premium = parseTransferTarget("sip:+19005551234@trunk.pstn.twilio.com");
  assert.equal(typeof premium !== "string" && premium.number, "+19005551234");
  // A user part with letters is a SIP address, whatever it looks like.
  const letters = parseTransferTarget("sip:+1900555x1234@trunk.pstn.twilio.com");
  assert.ok(typeof letters !== "string" && letters.number === null && letters.sipHost);
});

Deno.test("reports: a callback needs a time with an offset; other dispositions take none", () => {
  // A fixed clock: the day before the callback times below.
  const ok = (b: unknown) => reportBody(Date.parse("2026-12-01T12:00:00Z")).safeParse(b).success;
  assert.ok(ok({ disposition: "voicemail" }));
  assert.ok(ok({ disposition: "callback", callbackAt: "2026-12-02T10:00:00-05:00" }));
  assert.ok(ok({ disposition: "callback", callbackAt: "2026-12-02T15:00:00Z" }));
  assert.ok(!ok({ disposition: "callback" }), "a callback without a time");
  assert.ok(!ok({ disposition: "callback", callbackAt: "2026-12-02T10:00:00" }), "no offset");
  assert.ok(!ok({ disposition: "completed", callbackAt: "2026-12-02T10:00:00Z" }));
  assert.ok(!ok({ disposition: "hung_up" }), "an unknown disposition");
  assert.ok(!ok({ disposition: "completed", transferTo: "+14155550100" }));
  assert.ok(ok({ disposition: "transferred", transferTo: "+14155550100" }));
  assert.ok(
    !ok({ disposition: "completed", data: { big: "x".repeat(17_000) } }),
    "data over 16 KiB",
  );
});

Deno.test("a callback may not lie in the past or more than a year ahead", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  assert.equal(callbackProblem("2026-12-02T10:00:00-05:00", now), null);
  assert.equal(callbackProblem("2026-12-01T11:59:30Z", now), null, "clock skew is tolerated");
  assert.equal(callbackProblem("2026-11-30T10:00:00Z", now), "is in the past");
  assert.equal(callbackProblem("2028-01-01T10:00:00Z", now), "is more than a year ahead");
});
