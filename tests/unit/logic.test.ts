import assert from "node:assert/strict";
import { sendDeadline } from "../../supabase/functions/_shared/campaign.ts";
import { retryDelaySec } from "../../supabase/functions/_shared/provision.ts";
import { generatePassword } from "../../supabase/functions/_shared/sip_trunk.ts";
import { parseMetadata, roomPrefix, trunkNames } from "../../supabase/functions/_shared/trunks.ts";
import { logger, setLogSink } from "../../supabase/functions/_shared/log.ts";

Deno.test("a send must land in the same wall-clock second as its slot", () => {
  assert.equal(sendDeadline(new Date(12_000)), 12_950);
  assert.equal(sendDeadline(new Date(12_870)), 12_950);
});

Deno.test("provisioning retries back off from 10 s doubling to an hour", () => {
  assert.deepEqual([1, 2, 3, 4].map(retryDelaySec), [10, 20, 40, 80]);
  assert.equal(retryDelaySec(30), 3600);
});

Deno.test("generated SIP passwords meet Twilio's rules and differ", () => {
  const a = generatePassword();
  const b = generatePassword();
  assert.notEqual(a, b);
  for (const p of [a, b]) {
    assert.ok(p.length >= 12);
    assert.match(p, /[A-Z]/);
    assert.match(p, /[a-z]/);
    assert.match(p, /[0-9]/);
  }
});

Deno.test("trunk names and metadata identify the number and assistant", () => {
  const names = trunkNames({
    e164: "+14155550100",
    assistantId: "0f1e2d3c-0000-4000-8000-000000000000",
  });
  assert.deepEqual(names, {
    inbound: "in-14155550100-0f1e2d3c",
    outbound: "out-14155550100-0f1e2d3c",
    rule: "rule-14155550100-0f1e2d3c",
  });
  assert.equal(roomPrefix("0f1e2d3c-0000"), "call-0f1e2d3c-");
  assert.equal(parseMetadata('{"managedBy":"someone-else","assistantId":"x"}'), null);
  assert.equal(parseMetadata("not json"), null);
  assert.equal(
    parseMetadata('{"managedBy":"voice-lines","assistantId":"a","phoneNumberId":"p","e164":"+1"}')
      ?.assistantId,
    "a",
  );
});

Deno.test("log lines redact fields that may hold secrets", () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    logger({ fn: "t" }).info("x", {
      authPassword: "hunter2hunter2",
      nested: { apiSecret: "s3cr3t" },
      callId: "c1",
    });
  } finally {
    setLogSink((l) => console.log(l));
  }
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("hunter2"));
  assert.ok(!lines[0].includes("s3cr3t"));
  assert.ok(lines[0].includes('"callId":"c1"'));
});
