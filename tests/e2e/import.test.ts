// Contact import through the gateway: CSV (streamed, header row, bad rows named) and JSON, one
// code path with the add_campaign_calls RPC, bounded, and the variables reaching the agent.
import assert from "node:assert/strict";
import {
  asUser,
  call,
  createAssistant,
  createUser,
  eventually,
  livekitRequests,
  readyAssistant,
  sql,
  stack,
  type TestUser,
  userClient,
} from "../helpers/stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function draftCampaign(user: TestUser, settings: Record<string, unknown> = {}) {
  const assistantId = await createAssistant(user);
  const [c] = await sql`insert into public.campaigns ${
    sql({ owner_id: user.id, name: "import", assistant_id: assistantId, ...settings })
  } returning id`;
  return c.id as string;
}

/** POSTs a body to import-contacts as the user. */
async function importContacts(
  user: TestUser,
  body: BodyInit,
  opts: { type?: string; campaignId?: string; headers?: Record<string, string> } = {},
) {
  const res = await fetch(
    `${stack.supabaseUrl}/functions/v1/import-contacts${
      opts.campaignId ? `?campaignId=${opts.campaignId}` : ""
    }`,
    {
      method: "POST",
      headers: {
        Authorization: `Bearer ${user.token}`,
        "Content-Type": opts.type ?? "text/csv",
        ...opts.headers,
      },
      body,
      // A stream body is sent as it is produced (chunked, no Content-Length).
      ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit,
  );
  const text = await res.text();
  let json: Json = text;
  try {
    json = JSON.parse(text);
  } catch { /* the assertion says so */ }
  return { status: res.status, body: json };
}

/** A CSV body that arrives in small pieces, as a browser upload does. */
function streamOf(text: string, pieceBytes = 4096): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + pieceBytes));
      offset += pieceBytes;
    },
  });
}

Deno.test("a 10,000-row CSV with bad rows imports in one request, each bad row named", async () => {
  const user = await createUser("csv");
  const campaignId = await draftCampaign(user);
  await sql`insert into public.do_not_call (owner_id, e164) values (${user.id}, '+13122000777')`;
  const lines = ["Name,Phone Number,Time Zone,Account,Plan"];
  const bad = new Map<number, string>(); // CSV row -> reason
  const duplicates = new Set<number>();
  const skipped = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const row = i + 2; // the header is row 1
    const line = String(i).padStart(4, "0");
    let phone = `(312) 200-${line}`;
    let tz = i % 3 === 0 ? "America/New_York" : "";
    let extra = "";
    if (i % 1000 === 17) {
      phone = "12345";
      bad.set(row, "not a valid phone number");
    } else if (i % 1000 === 42) {
      phone = "";
      bad.set(row, "no phone number");
    } else if (i % 1000 === 99) {
      tz = "Mars/Olympus";
      bad.set(row, "unknown time zone");
    } else if (i % 1000 === 500) {
      extra = ",surplus";
      bad.set(row, "has 6 fields; the header has 5");
    } else if (i === 9_999) {
      phone = "+1 312 200 0001"; // row 3 again
      duplicates.add(row);
    } else if (i === 777) {
      skipped.add(row); // on the do-not-call list
    } else if (i === 778) {
      phone = "+44 20 7123 4567"; // outside the campaign's countries
      skipped.add(row);
    }
    lines.push(`"Contact, ${i}",${phone},${tz},A-${i},${i % 2 ? "gold" : "basic"}${extra}`);
  }
  const csv = lines.join("\r\n") + "\r\n";
  const res = await importContacts(user, streamOf(csv), { campaignId });
  assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 2000));
  assert.equal(res.body.rows, 10_000);
  assert.equal(res.body.rejectedCount, bad.size);
  assert.deepEqual(
    res.body.rejected.map((r: Json) => [r.row, r.reason]),
    [...bad.entries()].sort((a, b) => a[0] - b[0]),
  );
  assert.equal(res.body.rejected.find((r: Json) => r.row === 19).phoneNumber, "12345");
  assert.equal(res.body.duplicates, duplicates.size);
  assert.equal(res.body.skipped, skipped.size);
  assert.equal(res.body.added, 10_000 - bad.size - duplicates.size - skipped.size);

  const [{ n }] =
    await sql`select count(*)::int as n from public.campaign_calls where campaign_id = ${campaignId}`;
  assert.equal(n, 10_000 - bad.size - duplicates.size);
  const [ada] =
    await sql`select * from public.campaign_calls where campaign_id = ${campaignId} and e164 = '+13122000003'`;
  assert.equal(ada.name, "Contact, 3");
  assert.equal(ada.timezone, "America/New_York");
  assert.deepEqual(ada.variables, { Account: "A-3", Plan: "gold" });
  const [other] =
    await sql`select timezone from public.campaign_calls where campaign_id = ${campaignId} and e164 = '+13122000004'`;
  assert.equal(other.timezone, "America/Chicago", "no zone given: the number's");
});

Deno.test("a CSV without a phone column is a 400 naming the accepted columns; nothing is imported", async () => {
  const user = await createUser("csv-header");
  const campaignId = await draftCampaign(user);
  const res = await importContacts(user, "name,mobile\nAda,+13125550100\n", { campaignId });
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.error.code, "invalid_request");
  assert.match(res.body.error.message, /phone, phone_number, number or e164/);
  assert.deepEqual(res.body.error.details.acceptedPhoneColumns, [
    "phone",
    "phone_number",
    "number",
    "e164",
  ]);
  assert.deepEqual(res.body.error.details.columns, ["name", "mobile"]);
  const empty = await importContacts(user, "", { campaignId });
  assert.equal(empty.status, 400);
  const noCampaign = await importContacts(user, "phone\n+13125550100\n");
  assert.equal(noCampaign.status, 400);
  assert.ok(noCampaign.body.error.details.fields.campaignId);
  const wrongType = await importContacts(user, "phone\n+13125550100\n", {
    campaignId,
    type: "image/png",
  });
  assert.equal(wrongType.status, 415);
  assert.match(wrongType.body.error.message, /image\/png.*text\/csv.*multipart\/form-data/);
  const notUtf8 = await importContacts(
    user,
    new Uint8Array([0x70, 0x68, 0x6f, 0x6e, 0x65, 0x0a, 0xff, 0xfe]),
    {
      campaignId,
    },
  );
  assert.equal(notUtf8.status, 400);
  const stranger = await createUser("csv-stranger");
  const theirs = await importContacts(stranger, "phone\n+13125550100\n", { campaignId });
  assert.equal(theirs.status, 404);
  const [{ n }] =
    await sql`select count(*)::int as n from public.campaign_calls where campaign_id = ${campaignId}`;
  assert.equal(n, 0);
});

Deno.test("what browsers and supabase-js send for a .csv file imports: untyped, text/plain, Excel's type, a form", async () => {
  const user = await createUser("csv-browser");
  const campaignId = await draftCampaign(user);
  const supabase = userClient(user.token);
  const csv = (n: number) => `phone,name\n+1312555${String(n).padStart(4, "0")},Row ${n}\n`;
  const invoke = async (body: unknown, query = `?campaignId=${campaignId}`, headers = {}) => {
    const { data, error } = await supabase.functions.invoke(`import-contacts${query}`, {
      body: body as string,
      headers,
    });
    if (error) throw new Error(JSON.stringify(await error.context.json()));
    return data;
  };
  // supabase-js sends a string as text/plain, and a File or Blob as application/octet-stream.
  assert.equal((await invoke(csv(1))).added, 1, "a string");
  assert.equal(
    (await invoke(new File([csv(2)], "contacts.csv"))).added,
    1,
    "a File without a type",
  );
  assert.equal(
    (await invoke(new Blob([csv(3)]), undefined, { "Content-Type": "application/vnd.ms-excel" }))
      .added,
    1,
    "typed as Windows browsers type a .csv",
  );
  // A form: the file as a part (typed however the browser typed it); the campaign in the query
  // or as a field.
  const form = new FormData();
  form.append("file", new File([csv(4)], "contacts.csv", { type: "application/vnd.ms-excel" }));
  assert.equal((await invoke(form)).added, 1, "a form with the campaign in the query");
  const withField = new FormData();
  withField.append("campaignId", campaignId);
  withField.append("contacts", new File([csv(5)], "contacts.csv"));
  assert.equal((await invoke(withField, "")).added, 1, "a form naming the campaign");
  const noFile = new FormData();
  noFile.append("campaignId", campaignId);
  const { error } = await supabase.functions.invoke("import-contacts", { body: noFile });
  const answer = await error?.context.json();
  assert.equal(answer?.error.code, "invalid_request");
  assert.ok(answer.error.details.fields.file);
  const [{ n }] =
    await sql`select count(*)::int as n from public.campaign_calls where campaign_id = ${campaignId}`;
  assert.equal(n, 5);
});

Deno.test("imports are bounded: over 10 MiB or 100,000 rows is a 413 and keeps nothing", async () => {
  const user = await createUser("csv-bounds");
  const campaignId = await draftCampaign(user);
  const row = "+13125550100,".padEnd(99, "x") + "\n";
  const big = "phone,note\n" + row.repeat(Math.ceil((10 * 1024 * 1024) / row.length) + 10);
  const declared = await importContacts(user, big, { campaignId });
  assert.equal(declared.status, 413, "refused by its Content-Length");
  const streamed = await importContacts(user, streamOf(big, 64 * 1024), { campaignId });
  assert.equal(streamed.status, 413, "refused while streaming, without a Content-Length");
  assert.equal(streamed.body.error.code, "payload_too_large");

  // Rows without a number: each is read and counted (and rejected), none is kept.
  const many = "phone,name\n" + ",x\n".repeat(100_001);
  const rows = await importContacts(user, streamOf(many, 64 * 1024), { campaignId });
  assert.equal(rows.status, 413, JSON.stringify(rows.body));
  assert.match(rows.body.error.message, /100000 rows/);
  const json = await importContacts(
    user,
    JSON.stringify({ campaignId, contacts: Array.from({ length: 100_001 }, () => ({})) }),
    { type: "application/json" },
  );
  assert.equal(json.status, 413);
  const [{ n }] =
    await sql`select count(*)::int as n from public.campaign_calls where campaign_id = ${campaignId}`;
  assert.equal(n, 0, "a refused import keeps none of its rows");
});

Deno.test("JSON imports and the add_campaign_calls RPC run the same path with the same answers", async () => {
  const user = await createUser("json");
  const viaFunction = await draftCampaign(user);
  const viaRpc = await draftCampaign(user);
  await sql`insert into public.do_not_call (owner_id, e164) values (${user.id}, '+14155550199')`;
  const contacts = [
    { phoneNumber: "(415) 555-0123", name: "national", variables: { plan: "gold" } },
    { phoneNumber: "+1 415 555 0123", name: "same number again" },
    { phoneNumber: "+14155550199" },
    { phoneNumber: "+44 20 7123 4567" },
    { phoneNumber: "not a number" },
    { phoneNumber: "+14155550124", timezone: "Mars/Olympus" },
    { phoneNumber: "+14155550125", timezone: "Europe/Paris", metadata: { crm: 7 } },
  ];
  const fn = await call("import-contacts", {
    token: user.token,
    body: { campaignId: viaFunction, contacts },
  });
  assert.equal(fn.status, 200, JSON.stringify(fn.body));
  const [r] = await asUser(
    user,
    (tx) => tx`select public.add_campaign_calls(${viaRpc}, ${tx.json(contacts)}) as r`,
  );
  const rpc = r.r;
  for (const key of ["added", "duplicates", "skipped"]) assert.equal(fn.body[key], rpc[key], key);
  assert.deepEqual(
    fn.body.rejected,
    rpc.rejected.map((x: Json) => ({ row: x.row, phoneNumber: x.phoneNumber, reason: x.reason })),
  );
  assert.deepEqual(fn.body.rejected.map((x: Json) => [x.row, x.reason]), [
    [5, "not a valid phone number"],
    [6, "unknown time zone"],
  ]);
  const rows = async (id: string) =>
    (await sql`select e164, name, variables, timezone, status, last_outcome from public.campaign_calls
      where campaign_id = ${id} order by e164`).map((x) => ({ ...x }));
  assert.deepEqual(await rows(viaFunction), await rows(viaRpc));
  const [gold] =
    await sql`select variables from public.campaign_calls where campaign_id = ${viaFunction} and e164 = '+14155550123'`;
  assert.deepEqual(gold.variables, { plan: "gold" });

  const shapes = await call("import-contacts", {
    token: user.token,
    body: {
      campaignId: viaFunction,
      contacts: ["+14155550126", { phoneNumber: "+14155550127", variables: 3 }],
    },
  });
  assert.equal(shapes.status, 200);
  assert.deepEqual(shapes.body.rejected.map((x: Json) => [x.row, x.reason]), [
    [1, "not a JSON object"],
    [2, "variables must be an object"],
  ]);
});

Deno.test("per-contact variables and the call's ids reach the agent in the dispatch metadata", async () => {
  const { user, assistantId, numberId } = await readyAssistant("variables");
  const [c] = await sql`insert into public.campaigns ${
    sql({
      owner_id: user.id,
      name: "variables",
      assistant_id: assistantId,
      phone_number_id: numberId,
      window_start: "00:00",
      window_end: "23:59:59",
      weekdays: [1, 2, 3, 4, 5, 6, 7],
    })
  } returning id`;
  const imported = await importContacts(
    user,
    "phone,name,first_name,balance\n+13125550461,Ada Lovelace,Ada,12.50\n",
    { campaignId: c.id },
  );
  assert.equal(imported.body.added, 1, JSON.stringify(imported.body));
  await sql`update public.campaigns set status = 'running' where id = ${c.id}`;
  const [cc] = await sql`select id from public.campaign_calls where campaign_id = ${c.id}`;
  const dispatch = await eventually(async () => {
    const reqs = await livekitRequests();
    return reqs.find((r: Json) =>
      r.method === "CreateDispatch" && r.body.room?.startsWith(`cc-${cc.id}-`)
    );
  }, "the campaign's dispatch");
  const meta = JSON.parse(dispatch.body.metadata);
  const [o] = await eventually(
    async () => {
      const rows = await sql`select * from public.outbound_calls where campaign_call_id = ${cc.id}`;
      return rows.length ? rows : null;
    },
    "the call record",
  );
  assert.deepEqual(meta.variables, { first_name: "Ada", balance: "12.50" });
  assert.equal(meta.name, "Ada Lovelace");
  assert.equal(meta.callId, o.id);
  assert.equal(meta.roomName, o.room_name);
  assert.equal(meta.campaignId, c.id);
  assert.equal(meta.campaignCallId, cc.id);
  assert.equal(meta.attempt, 1);
  assert.equal(meta.assistantId, assistantId);
  assert.equal(meta.to, "+13125550461");
  assert.equal(meta.functionsUrl, `${stack.supabaseUrl}/functions/v1`);
  // The dial follows once the agent is in the room and the carrier slot comes.
  const participant = await eventually(
    async () =>
      (await livekitRequests()).find((r: Json) =>
        r.method === "CreateSIPParticipant" && r.body.roomName === o.room_name
      ),
    "the dial",
  );
  // The SIP participant carries the same metadata but the agent's token.
  const { callToken, ...shared } = meta;
  assert.deepEqual(JSON.parse(participant.body.participantMetadata), shared);
  assert.equal(typeof callToken, "string");
  const grant = JSON.parse(atob(callToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  assert.deepEqual(
    { room: grant.video.room, join: grant.video.roomJoin, publish: grant.video.canPublish },
    { room: meta.roomName, join: true, publish: false },
  );
  // It reports on its own call only.
  const elsewhere = await fetch(`${meta.functionsUrl}/call-report`, {
    method: "POST",
    headers: { Authorization: `Bearer ${callToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ roomName: "another-room", disposition: "completed" }),
  });
  assert.equal(elsewhere.status, 403, await elsewhere.text());

  // The README's agent-side script, as an agent runs it with this metadata.
  const res = await fetch(`${meta.functionsUrl}/call-report`, {
    method: "POST",
    headers: { Authorization: `Bearer ${meta.callToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      disposition: "not_interested",
      summary: `${meta.variables.first_name ?? meta.name} is not interested.`,
    }),
  });
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  assert.equal(answer.call.id, o.id);
  assert.equal(answer.call.disposition, "not_interested");
  const [reported] = await sql`select summary from public.outbound_calls where id = ${o.id}`;
  assert.equal(reported.summary, "Ada is not interested.");
});

Deno.test("twelve slow uploads hold no database connection; another tenant is served meanwhile", async () => {
  const slowUser = await createUser("slow-uploader");
  const campaignId = await draftCampaign(slowUser);
  const other = await createUser("served-meanwhile");
  const listTrunks = async () => {
    const t0 = performance.now();
    const res = await call("list-trunks", { token: other.token, method: "GET" });
    assert.equal(res.status, 200);
    return performance.now() - t0;
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const before: number[] = [];
  for (let i = 0; i < 5; i++) before.push(await listTrunks());

  // Each upload sends its header, then a line every 200 ms, until the test lets it go.
  const stop = new AbortController();
  const uploads = Array.from({ length: 12 }, (_, i) => {
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, n++ === 0 ? 0 : 200));
        if (stop.signal.aborted) return c.close();
        c.enqueue(new TextEncoder().encode(n === 1 ? "phone\n" : `+1312555${i}${n % 1000}\n`));
      },
    });
    return importContacts(slowUser, body, { campaignId }).catch(() => null);
  });
  await new Promise((r) => setTimeout(r, 1000));
  const during: number[] = [];
  for (let i = 0; i < 5; i++) during.push(await listTrunks());
  const [{ idle }] = await sql`select count(*)::int as idle from pg_stat_activity
    where application_name = 'edge-functions' and state = 'idle in transaction'`;
  stop.abort();
  await Promise.all(uploads);
  console.log(
    `list-trunks median: ${median(before).toFixed(0)} ms alone, ${
      median(during).toFixed(0)
    } ms during 12 slow uploads`,
  );
  assert.equal(idle, 0, "no function connection sat in a transaction while uploads streamed");
});
