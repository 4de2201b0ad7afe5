import assert from "node:assert/strict";
import {
  CsvReader,
  detectDelimiter,
  parseCsv,
} from "../../supabase/functions/import-contacts/csv.ts";
import {
  csvContact,
  jsonContact,
  mapHeader,
  PHONE_COLUMNS,
} from "../../supabase/functions/import-contacts/contacts.ts";
import { ValidationError } from "../../supabase/functions/_shared/errors.ts";

const fields = (text: string) => parseCsv(text).map((r) => r.fields);

Deno.test("CSV: quotes, doubled quotes, delimiters and line breaks inside quotes", () => {
  assert.deepEqual(fields('a,b,c\n1,"x, y","say ""hi"""\n'), [
    ["a", "b", "c"],
    ["1", "x, y", 'say "hi"'],
  ]);
  assert.deepEqual(fields('phone,note\r\n+1,"two\r\nlines"\r\n+2,z'), [
    ["phone", "note"],
    ["+1", "two\r\nlines"],
    ["+2", "z"],
  ]);
  assert.deepEqual(fields("a\rb\rc"), [["a"], ["b"], ["c"]], "lone CR ends records (old Mac)");
  assert.deepEqual(
    fields('a,b\n1,ab"c\n'),
    [["a", "b"], ["1", 'ab"c']],
    "a quote inside is literal",
  );
  assert.deepEqual(fields("a,b,\n1,2,\n"), [["a", "b", ""], ["1", "2", ""]]);
});

Deno.test("CSV: rows count records (the header is row 1), blank lines included", () => {
  const rows = parseCsv('phone\n+1\n\n"+2\nx"\n+3');
  assert.deepEqual(rows.map((r) => [r.row, r.fields[0]]), [
    [1, "phone"],
    [2, "+1"],
    [3, ""],
    [4, "+2\nx"],
    [5, "+3"],
  ]);
});

Deno.test("CSV: chunks of any size give the same records as the whole text", () => {
  const text =
    '\ufeffphone;name;note\r\n+1 212 555 0100;"Ada; Countess";"a ""b""\r\nc"\r\n+13125550101;Grace;\r\n';
  const whole = parseCsv(text);
  assert.equal(whole[0].fields[0], "phone", "the byte order mark is dropped");
  assert.deepEqual(whole[1].fields, ["+1 212 555 0100", "Ada; Countess", 'a "b"\r\nc']);
  for (const size of [1, 2, 3, 7, 64]) {
    const r = new CsvReader();
    const out = [];
    for (let i = 0; i < text.length; i += size) out.push(...r.push(text.slice(i, i + size)));
    out.push(...r.end());
    assert.deepEqual(out, whole, `chunks of ${size}`);
  }
});

Deno.test("CSV: the delimiter is read from the header line", () => {
  assert.equal(detectDelimiter("phone,name,city"), ",");
  assert.equal(detectDelimiter('phone;name;"a,b"'), ";");
  assert.equal(detectDelimiter("phone\tname"), "\t");
  assert.equal(detectDelimiter("phone"), ",");
});

Deno.test("CSV: a quote left open at the end is an error on that record", () => {
  const rows = parseCsv('phone,name\n+1,"Ada\n');
  assert.equal(rows.length, 2);
  assert.match(rows[1].error ?? "", /not closed/);
});

Deno.test("the phone column is found by name; other columns become variables", () => {
  const map = mapHeader(["Name", "Phone Number", "Time Zone", "Account", "Balance Due"]);
  assert.equal(map.phone, 1);
  assert.equal(map.name, 0);
  assert.equal(map.timezone, 2);
  assert.deepEqual(map.variables, [[3, "Account"], [4, "Balance Due"]]);
  const row = csvContact(map, ["Ada", " +12125550100 ", "America/New_York", "A-1", "12.50"], 2);
  assert.deepEqual(row, {
    row: 2,
    phoneNumber: "+12125550100",
    name: "Ada",
    timezone: "America/New_York",
    variables: { Account: "A-1", "Balance Due": "12.50" },
  });
  for (const alias of PHONE_COLUMNS) assert.equal(mapHeader(["x", alias.toUpperCase()]).phone, 1);
  assert.equal(mapHeader(["e164", "phone"]).phone, 1, "phone wins over later aliases");
});

Deno.test("a header without a phone column names the accepted ones", () => {
  assert.throws(
    () => mapHeader(["name", "mobile"]),
    (e) =>
      e instanceof ValidationError && /phone, phone_number, number or e164/.test(e.message) &&
      /name, mobile/.test(e.message) &&
      JSON.stringify(e.details?.acceptedPhoneColumns) === JSON.stringify([...PHONE_COLUMNS]),
  );
  assert.throws(() => mapHeader(["phone", "a", "a"]), /two columns named "a"/);
});

Deno.test("rows with more fields than the header are named; trailing empty fields are not", () => {
  const map = mapHeader(["phone", "name"]);
  const bad = csvContact(map, ["+12125550100", "Ada", "extra"], 7);
  assert.deepEqual(bad, {
    row: 7,
    phoneNumber: "+12125550100",
    reason: "has 3 fields; the header has 2",
  });
  assert.ok(!("reason" in csvContact(map, ["+12125550100", "Ada", "", " "], 8)));
  const short = csvContact(map, ["+12125550100"], 9);
  assert.ok(!("reason" in short) && short.name === undefined, "missing trailing cells are empty");
});

Deno.test("JSON contacts: shapes are checked, numbers are left to the database", () => {
  assert.deepEqual(jsonContact({ phoneNumber: "x", variables: { a: 1 } }, 3), {
    row: 3,
    phoneNumber: "x",
    variables: { a: 1 },
  });
  assert.deepEqual(jsonContact({ phone_number: 12125550100, metadata: { b: 2 } }, 1), {
    row: 1,
    phoneNumber: "12125550100",
    variables: { b: 2 },
  });
  assert.equal((jsonContact("nope", 2) as { reason: string }).reason, "not a JSON object");
  assert.match(
    (jsonContact({ phoneNumber: "+1", name: 5 }, 2) as { reason: string }).reason,
    /name/,
  );
  assert.match(
    (jsonContact({ phoneNumber: "+1", variables: [] }, 2) as { reason: string }).reason,
    /variables must be an object/,
  );
});
