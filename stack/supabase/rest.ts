// deno-lint-ignore-file no-explicit-any
// DEVELOPMENT STAND-IN for Supabase's REST API (PostgREST) at <SUPABASE_URL>/rest/v1, for the
// `public` schema: what postgrest-js sends for select, insert, update, delete, upsert and rpc.
// Each request is one transaction run as PostgREST runs it (role and request.jwt.claims from
// the token, anon without one), so grants and RLS decide. Every identifier is checked against
// the catalogue and quoted; every value is a bound parameter. Requests outside the covered
// subset get a 400 naming what is not supported. Sources: stack/supabase/README.md.
import type postgres from "postgres";
import { type Keys, keyVerifier } from "./keys.ts";
import { isConnectionError } from "./auth.ts";
import { bearerToken, type Claims, TokenError } from "./jwt.ts";

export interface RestOptions {
  sql: postgres.Sql;
  keys: Keys;
}

// ---------------------------------------------------------------------------------------
// Errors: PostgREST's {code, message, details, hint} and its SQLSTATE -> HTTP status table.

export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: string | null = null,
    readonly hint: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const unsupported = (what: string) =>
  new RestError(
    400,
    "PGRST100",
    `${what} is not supported by the local REST stand-in`,
    null,
    "stack/supabase/README.md lists what it covers; run the query through an rpc function instead.",
  );

const parseError = (message: string, details: string | null = null) =>
  new RestError(400, "PGRST100", message, details);

/**
 * PostgREST's mapSQLtoHTTP (src/PostgREST/Error.hs; the table on its "Errors" page): exact
 * SQLSTATEs first, then two-character classes; anything unlisted is 400. 42501, 21000, 22023,
 * 42883 and PTnnn are decided in `statusFor`, PGRST in `raisedPgrst`.
 */
export const SQLSTATE_STATUS: [RegExp, number][] = [
  [/^23503$/, 409],
  [/^23505$/, 409],
  [/^25006$/, 405],
  [/^42883$/, 404],
  [/^42P01$/, 404],
  [/^42P17$/, 500],
  [/^53400$/, 500],
  [/^57P01$/, 503],
  [/^P0001$/, 400],
  [/^08/, 503],
  [/^09/, 500],
  [/^0L/, 403],
  [/^0P/, 403],
  [/^2[5D]/, 500],
  [/^28/, 403],
  [/^3[89B]/, 500],
  [/^40/, 500],
  [/^53/, 503],
  [/^5[4578]/, 500],
  [/^F0/, 500],
  [/^HV/, 500],
  [/^P0/, 500],
  [/^XX/, 500],
];

/** A status a Response can carry (PostgREST would send any; 1xx and 600+ become 500 here). */
const httpStatus = (n: number) => (n >= 200 && n <= 599 ? n : 500);

/** The HTTP status PostgREST answers a database error with; `role` is the request's role. */
export function statusFor(code: string, message: string, role: string): number {
  // Insufficient privilege: 401 for the anonymous role (with WWW-Authenticate), else 403.
  if (code === "42501") return role === "anon" ? 401 : 403;
  // pg-safeupdate's refusal is the client's mistake; other cardinality violations are not.
  if (code === "21000") return /requires a WHERE clause$/.test(message) ? 400 : 500;
  // A JWT naming a role that does not exist.
  if (code === "22023") {
    return message.startsWith("role") && message.endsWith("does not exist") ? 401 : 400;
  }
  if (code === "42883" && message.startsWith("function xmlagg(")) return 406;
  // `raise sqlstate 'PT404'`: the status is the code's three characters (not a number: 500).
  if (code.startsWith("PT")) {
    return /^\d{3}$/.test(code.slice(2)) ? httpStatus(Number(code.slice(2))) : 500;
  }
  return SQLSTATE_STATUS.find(([re]) => re.test(code))?.[1] ?? 400;
}

/**
 * `raise sqlstate 'PGRST' using message = '{"code", "message", "details"?, "hint"?}', detail =
 * '{"status", "headers", "status_text"?}'`: the whole answer comes from the function. What does
 * not parse is PostgREST's 500 PGRST121.
 */
function raisedPgrst(message: string, detail: string | null): RestError {
  const parse = (text: string) => {
    try {
      const v = JSON.parse(text);
      return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
    } catch {
      return null;
    }
  };
  const optionalText = (v: unknown) => v === undefined || v === null || typeof v === "string";
  const msg = parse(message);
  if (
    !msg || typeof msg.code !== "string" || typeof msg.message !== "string" ||
    !optionalText(msg.details) || !optionalText(msg.hint)
  ) {
    return new RestError(
      500,
      "PGRST121",
      `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
      `Invalid JSON value for MESSAGE: '${message}'`,
      "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.",
    );
  }
  const detailHint =
    "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.";
  if (detail === null) {
    return new RestError(
      500,
      "PGRST121",
      `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
      "DETAIL is missing in the RAISE statement",
      detailHint,
    );
  }
  const det = parse(detail);
  const headers = det?.headers;
  if (
    !det || !Number.isInteger(det.status) || !optionalText(det.status_text) ||
    headers === null || typeof headers !== "object" || Array.isArray(headers) ||
    !Object.values(headers).every((v) => typeof v === "string")
  ) {
    return new RestError(
      500,
      "PGRST121",
      `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
      `Invalid JSON value for DETAIL: '${detail}'`,
      detailHint,
    );
  }
  return new RestError(
    httpStatus(det.status),
    msg.code,
    msg.message,
    msg.details ?? null,
    msg.hint ?? null,
    headers as Record<string, string>,
  );
}

function fromDatabase(e: any, role: string): RestError {
  if (isConnectionError(e)) {
    return new RestError(
      503,
      "PGRST001",
      "Database client error. Retrying the connection.",
      String(e?.message ?? e),
      null,
      { "Retry-After": "1" },
    );
  }
  const code = String(e.code);
  if (code === "PGRST") return raisedPgrst(String(e.message), e.detail ?? null);
  const status = statusFor(code, String(e.message), role);
  return new RestError(
    status,
    code,
    String(e.message),
    e.detail ?? null,
    e.hint ?? null,
    status === 401 ? { "WWW-Authenticate": "Bearer" } : {},
  );
}

// ---------------------------------------------------------------------------------------
// The catalogue: relations and functions of the public schema (reloaded when a name is unknown).

interface Relation {
  name: string;
  kind: string;
  columns: Map<string, string>;
  pk: string[];
}
interface RpcFunction {
  name: string;
  args: { name: string; type: string; hasDefault: boolean }[];
  volatile: boolean;
  returnsSet: boolean;
  returnsRow: boolean;
  returnsVoid: boolean;
}
interface Catalogue {
  relations: Map<string, Relation>;
  functions: Map<string, RpcFunction[]>;
  /** Changes whenever a relation, column or function of the schema does. */
  fingerprint: string;
}

/** A cheap summary of the public schema's relations, columns and functions. */
async function fingerprint(sql: postgres.Sql | postgres.TransactionSql): Promise<string> {
  const [{ f }] = await sql<{ f: string }[]>`
    select concat_ws('|',
      (select count(*) || '/' || coalesce(sum(oid::int8), 0) from pg_catalog.pg_class
        where relnamespace = 'public'::regnamespace),
      (select count(*) || '/' || coalesce(sum(a.attnum + a.atttypid::int8), 0)
        from pg_catalog.pg_attribute a join pg_catalog.pg_class c on c.oid = a.attrelid
        where c.relnamespace = 'public'::regnamespace and a.attnum > 0 and not a.attisdropped),
      (select count(*) || '/' || coalesce(sum(oid::int8), 0) from pg_catalog.pg_proc
        where pronamespace = 'public'::regnamespace)) as f`;
  return f;
}

async function loadCatalogue(pool: postgres.Sql): Promise<Catalogue> {
  // With only pg_catalog on the search path, type names come out schema-qualified.
  return await pool.begin(async (sql) => {
    await sql`set local search_path = pg_catalog`;
    return { ...await readCatalogue(sql), fingerprint: await fingerprint(sql) };
  }) as Catalogue;
}

async function readCatalogue(
  sql: postgres.TransactionSql,
): Promise<Omit<Catalogue, "fingerprint">> {
  const rels = await sql<
    { name: string; kind: string; columns: [string, string][]; pk: string[] }[]
  >`
    select c.relname as name, c.relkind::text as kind,
      json_agg(json_build_array(a.attname, format_type(a.atttypid, null)) order by a.attnum) as columns,
      coalesce((select array_agg(att.attname::text order by k.ord)
        from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
        join pg_attribute att on att.attrelid = i.indrelid and att.attnum = k.attnum
        where i.indrelid = c.oid and i.indisprimary), '{}') as pk
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'f')
    group by c.oid, c.relname, c.relkind`;
  const fns = await sql<
    {
      name: string;
      names: string[] | null;
      modes: string[] | null;
      types: string[];
      ndefaults: number;
      volatility: string;
      retset: boolean;
      rettype: string;
      typtype: string;
    }[]
  >`
    select p.proname as name, p.proargnames as names, p.proargmodes::text[] as modes,
      array(select format_type(t, null) from unnest(p.proargtypes::oid[]) t) as types,
      p.pronargdefaults as ndefaults, p.provolatile::text as volatility, p.proretset as retset,
      p.prorettype::regtype::text as rettype, t.typtype::text as typtype
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
    where n.nspname = 'public' and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype`;
  const relations = new Map<string, Relation>();
  for (const r of rels) {
    relations.set(r.name, {
      name: r.name,
      kind: r.kind,
      columns: new Map(r.columns.map(([n, t]) => [n, t])),
      pk: r.pk,
    });
  }
  const functions = new Map<string, RpcFunction[]>();
  for (const f of fns) {
    // Input arguments: modes i (in), b (inout), v (variadic); o and t are outputs.
    const names = f.names ?? [];
    const modes = f.modes ?? names.map(() => "i");
    const inputNames = names.filter((_, i) => ["i", "b", "v"].includes(modes[i] ?? "i"));
    const args = f.types.map((type, i) => ({
      name: inputNames[i] ?? "",
      type,
      hasDefault: i >= f.types.length - f.ndefaults,
    }));
    const list = functions.get(f.name) ?? [];
    list.push({
      name: f.name,
      args,
      volatile: f.volatility === "v",
      returnsSet: f.retset,
      returnsRow: f.typtype === "c" || f.rettype === "record",
      returnsVoid: f.rettype === "void",
    });
    functions.set(f.name, list);
  }
  return { relations, functions };
}

// ---------------------------------------------------------------------------------------
// Query-string grammar (the part postgrest-js produces).

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * Bound parameters. Each travels as text and is cast in SQL to the type it is compared with,
 * as PostgREST's untyped literals are read as the column's type (the driver's own
 * serialisation by type never sees them).
 */
class Params {
  values: (string | null)[] = [];
  add(v: string | null, type?: string): string {
    this.values.push(v);
    return `$${this.values.length}::text${type ? `::${type}` : ""}`;
  }
}

type Node =
  | { kind: "leaf"; column: string; negate: boolean; op: string; value: string }
  | { kind: "tree"; op: "and" | "or"; negate: boolean; children: Node[] };

/** Splits on commas outside parentheses and double quotes. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === "\\" && i + 1 < s.length) {
        cur += ch + s[++i];
        continue;
      }
      if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
      continue;
    }
    cur += ch;
  }
  if (quoted || depth !== 0) throw parseError(`unbalanced quotes or parentheses in "${s}"`);
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    return v.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return v;
}

const COMPARISONS: Record<string, string> = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
  like: "like",
  ilike: "ilike",
  match: "~",
  imatch: "~*",
  cs: "@>",
  cd: "<@",
  ov: "&&",
  isdistinct: "is distinct from",
};
const IS_VALUES: Record<string, string> = {
  null: "null",
  not_null: "not null",
  true: "true",
  false: "false",
  unknown: "unknown",
};
const UNSUPPORTED_OPS = new Set([
  "fts",
  "plfts",
  "phfts",
  "wfts",
  "sl",
  "sr",
  "nxl",
  "nxr",
  "adj",
]);

/** `[not.]op.value` after the column. */
function parseOperation(column: string, expr: string, inTree: boolean): Node {
  let negate = false;
  let rest = expr;
  if (rest.startsWith("not.")) {
    negate = true;
    rest = rest.slice(4);
  }
  const dot = rest.indexOf(".");
  const op = dot < 0 ? rest : rest.slice(0, dot);
  const value = dot < 0 ? "" : rest.slice(dot + 1);
  if (/\((any|all)\)$/.test(op)) unsupportedThrow(`The ${op} operator modifier`);
  if (UNSUPPORTED_OPS.has(op.replace(/\(.*\)$/, ""))) unsupportedThrow(`The ${op} operator`);
  if (!(op in COMPARISONS) && op !== "is" && op !== "in") {
    throw parseError(
      `"failed to parse filter (${expr})" (line 1, column 1)`,
      `unknown operator "${op}"`,
    );
  }
  return {
    kind: "leaf",
    column,
    negate,
    op,
    value: inTree && op !== "in" ? unquote(value) : value,
  };
}

function unsupportedThrow(what: string): never {
  throw unsupported(what);
}

function parseTree(op: "and" | "or", negate: boolean, body: string): Node {
  if (!body.startsWith("(") || !body.endsWith(")")) {
    throw parseError(`"failed to parse logic tree (${body})"`, `expected (${op} conditions)`);
  }
  const children = splitTop(body.slice(1, -1)).map((item): Node => {
    const m = /^(not\.)?(and|or)(\(.*\))$/s.exec(item);
    if (m) return parseTree(m[2] as "and" | "or", !!m[1], m[3]);
    const dot = item.indexOf(".");
    if (dot <= 0) throw parseError(`"failed to parse logic tree (${body})"`);
    return parseOperation(item.slice(0, dot), item.slice(dot + 1), true);
  });
  return { kind: "tree", op, negate, children };
}

function parseInList(value: string): string[] {
  if (!value.startsWith("(") || !value.endsWith(")")) {
    throw parseError(`"failed to parse filter (in.${value})"`, "expected in.(a,b,c)");
  }
  const inner = value.slice(1, -1);
  if (inner === "") return [];
  return splitTop(inner).map(unquote);
}

interface Ctx {
  rel: Relation;
  params: Params;
}

function column(ctx: Ctx, name: string): string {
  if (/->|::|\(|\)|!|\.\.\./.test(name)) {
    unsupportedThrow(`"${name}": JSON paths, casts and embedded resources`);
  }
  if (!ctx.rel.columns.has(name)) {
    throw new RestError(400, "42703", `column ${ctx.rel.name}.${name} does not exist`);
  }
  return `_t.${quoteIdent(name)}`;
}

function renderNode(ctx: Ctx, node: Node): string {
  if (node.kind === "tree") {
    const inner = node.children.map((c) => renderNode(ctx, c)).join(` ${node.op} `);
    const sqlText = node.children.length ? `(${inner})` : node.op === "and" ? "true" : "false";
    return node.negate ? `not ${sqlText}` : sqlText;
  }
  const col = column(ctx, node.column);
  const type = ctx.rel.columns.get(node.column)!;
  let text: string;
  if (node.op === "is") {
    const v = IS_VALUES[node.value.toLowerCase()];
    if (!v) {
      throw parseError(
        `"failed to parse filter (is.${node.value})"`,
        "is takes null, not_null, true, false or unknown",
      );
    }
    text = `${col} is ${v}`;
  } else if (node.op === "in") {
    const items = parseInList(node.value);
    text = items.length === 0
      ? "false"
      : `${col} in (${items.map((v) => ctx.params.add(v, type)).join(", ")})`;
  } else {
    let value = node.value;
    if (node.op === "like" || node.op === "ilike") value = value.replace(/\*/g, "%");
    // Patterns are text; everything else is read as the column's type.
    const pattern = ["like", "ilike", "match", "imatch"].includes(node.op);
    text = `${col} ${COMPARISONS[node.op]} ${ctx.params.add(value, pattern ? undefined : type)}`;
  }
  return node.negate ? `not (${text})` : text;
}

const RESERVED = new Set(["select", "order", "limit", "offset", "on_conflict", "columns"]);

/** The WHERE conditions of the query string (every non-reserved parameter is a filter). */
function parseFilters(url: URL): Node[] {
  const nodes: Node[] = [];
  for (const [key, value] of url.searchParams) {
    if (RESERVED.has(key)) continue;
    const tree = /^(not\.)?(and|or)$/.exec(key);
    if (tree) {
      nodes.push(parseTree(tree[2] as "and" | "or", !!tree[1], value));
      continue;
    }
    if (/\.(or|and|order|limit|offset|select)$/.test(key)) {
      unsupportedThrow(`"${key}": filters and modifiers on embedded resources`);
    }
    nodes.push(parseOperation(key, value, false));
  }
  return nodes;
}

interface SelectItem {
  alias: string;
  column: string;
}

/** `select=` as explicit columns (`*` expanded in the table's order). */
function parseSelect(ctx: Ctx, raw: string | null): SelectItem[] {
  const all = () => [...ctx.rel.columns.keys()].map((name) => ({ alias: name, column: name }));
  if (raw === null || raw === "" || raw === "*") return all();
  const items: SelectItem[] = [];
  for (const part of splitTop(raw)) {
    if (part === "*") {
      items.push(...all());
      continue;
    }
    if (/[()!]|\.\.\./.test(part)) unsupportedThrow(`select=${part} (embedded resources)`);
    const m = /^(?:([A-Za-z_][A-Za-z0-9_$]*):)?([^:]+)$/.exec(part);
    if (!m) unsupportedThrow(`select=${part} (casts and JSON paths)`);
    column(ctx, m[2]);
    items.push({ alias: m[1] ?? m[2], column: m[2] });
  }
  return items;
}

const renderSelect = (items: SelectItem[], from: string) =>
  items.map((i) => `${from}.${quoteIdent(i.column)} as ${quoteIdent(i.alias)}`).join(", ");

function parseOrder(ctx: Ctx, raw: string | null): string {
  if (!raw) return "";
  const terms = splitTop(raw).map((term) => {
    const parts = term.split(".");
    const name = parts.shift()!;
    const col = column(ctx, name);
    let dir = "";
    let nulls = "";
    for (const p of parts) {
      if (p === "asc" || p === "desc") dir = ` ${p}`;
      else if (p === "nullsfirst") nulls = " nulls first";
      else if (p === "nullslast") nulls = " nulls last";
      else throw parseError(`"failed to parse order (${raw})"`, `unexpected "${p}"`);
    }
    return `${col}${dir}${nulls}`;
  });
  return ` order by ${terms.join(", ")}`;
}

function parseCount(raw: string | null, what: string): number | null {
  if (raw === null) return null;
  if (!/^\d+$/.test(raw)) throw parseError(`"failed to parse ${what} parameter (${raw})"`);
  return Number(raw);
}

function parsePrefer(req: Request): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of (req.headers.get("prefer") ?? "").split(",")) {
    const [k, v = ""] = raw.trim().split("=");
    if (k) out.set(k.trim(), v.trim());
  }
  const refused = ["missing", "tx", "max-affected", "params"].filter((k) => out.has(k));
  if (refused.length) {
    unsupportedThrow(`Prefer: ${refused.map((k) => `${k}=${out.get(k)}`).join(", ")}`);
  }
  return out;
}

async function readJsonBody(req: Request, emptyIsObject = false): Promise<unknown> {
  const type = req.headers.get("content-type") ?? "application/json";
  if (!/^application\/json\b/i.test(type)) unsupportedThrow(`Content-Type: ${type}`);
  const text = await req.text();
  if (text.trim() === "" && emptyIsObject) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new RestError(400, "PGRST102", "Empty or invalid json");
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function knownColumn(rel: Relation, name: string) {
  if (!rel.columns.has(name)) {
    throw new RestError(
      400,
      "PGRST204",
      `Could not find the '${name}' column of '${rel.name}' in the schema cache`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Plans: one SQL statement answering {total, n, body[, inserted]} for each kind of request.

interface Shape {
  /** Accept: application/vnd.pgrst.object+json (or a function returning one row). */
  single: boolean;
  /** Accept: ...;nulls=stripped */
  strip: boolean;
}

interface Plan {
  sql: string;
  params: Params;
  readOnly: boolean;
  /** Exactly one row or a 406 (and the transaction rolled back). */
  single: boolean;
  status: (row: Row) => number;
  body: boolean;
  contentRange?: (row: Row) => string;
}

interface Row {
  total: string | null;
  n: number;
  body: string | null;
  inserted: boolean | null;
}

/** The JSON text of the rows of `_b` (an array, its first element, nulls stripped). */
function aggregate(shape: Shape, scalar = false): string {
  let value = `coalesce(json_agg(${scalar ? "_b._r" : "_b"}), '[]'::json)`;
  if (shape.single) value = `(${value} -> 0)`;
  if (shape.strip) value = `json_strip_nulls(${value})`;
  return `${value}::text`;
}

function planRead(ctx: Ctx, url: URL, req: Request, prefer: Map<string, string>, shape: Shape) {
  const target = `public.${quoteIdent(ctx.rel.name)}`;
  const select = parseSelect(ctx, url.searchParams.get("select"));
  const where = parseFilters(url).map((n) => renderNode(ctx, n));
  const whereSql = where.length ? ` where ${where.join(" and ")}` : "";
  const order = parseOrder(ctx, url.searchParams.get("order"));
  let limit = parseCount(url.searchParams.get("limit"), "limit");
  let offset = parseCount(url.searchParams.get("offset"), "offset") ?? 0;
  const range = /^(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
  if (range) {
    offset = Number(range[1]);
    if (range[2] !== "") limit = Math.min(limit ?? Infinity, Number(range[2]) - offset + 1);
  }
  const counted = prefer.has("count");
  const page = `select ${renderSelect(select, "_t")} from ${target} as _t${whereSql}${order}` +
    (limit !== null ? ` limit ${limit}` : "") + (offset ? ` offset ${offset}` : "");
  const total = counted ? `(select count(*) from ${target} as _t${whereSql})` : "null";
  return {
    sql: `select ${total}::bigint as total, count(*)::int as n, ${
      aggregate(shape)
    } as body, null::boolean as inserted from (${page}) _b`,
    params: ctx.params,
    readOnly: true,
    single: shape.single,
    body: req.method === "GET",
    // PostgREST's range status: past the end 416, a part 206, everything 200.
    status: (row) => {
      const t = row.total === null ? null : Number(row.total);
      if (t === null) return 200;
      if (offset > t) {
        throw new RestError(
          416,
          "PGRST103",
          "Requested range not satisfiable",
          `An offset of ${offset} was requested, but there are only ${t} rows.`,
        );
      }
      return row.n < t ? 206 : 200;
    },
    contentRange: (row) =>
      `${row.n > 0 ? `${offset}-${offset + row.n - 1}` : "*"}/${row.total ?? "*"}`,
  } satisfies Plan;
}

async function planWrite(
  ctx: Ctx,
  url: URL,
  req: Request,
  prefer: Map<string, string>,
  shape: Shape,
): Promise<Plan> {
  const { rel, params } = ctx;
  const method = req.method;
  const target = `public.${quoteIdent(rel.name)}`;
  for (const k of ["order", "limit", "offset"]) {
    if (url.searchParams.has(k)) unsupportedThrow(`${k} on ${method}`);
  }
  const select = parseSelect(ctx, url.searchParams.get("select"));
  const where = parseFilters(url).map((n) => renderNode(ctx, n));
  const whereSql = where.length ? ` where ${where.join(" and ")}` : "";
  const representation = prefer.get("return") === "representation";
  let write: string;
  let upsert = false;
  if (method === "DELETE" || method === "PATCH") {
    // Supabase runs API requests with pg-safeupdate: no unfiltered UPDATE or DELETE.
    if (!where.length) {
      throw new RestError(
        400,
        "21000",
        `${method === "PATCH" ? "UPDATE" : "DELETE"} requires a WHERE clause`,
      );
    }
  }
  if (method === "DELETE") {
    write = `delete from ${target} as _t${whereSql}`;
  } else if (method === "PATCH") {
    const body = await readJsonBody(req);
    if (!isObject(body)) {
      throw new RestError(400, "PGRST102", "Empty or invalid json", "PATCH takes one JSON object");
    }
    const cols = Object.keys(body);
    if (cols.length === 0) unsupportedThrow("PATCH with an empty object");
    cols.forEach((c) => knownColumn(rel, c));
    const json = params.add(JSON.stringify(body), "json");
    write = `update ${target} as _t set ${
      cols.map((c) => `${quoteIdent(c)} = _j.${quoteIdent(c)}`).join(", ")
    } from json_populate_record(null::${target}, ${json}) as _j${whereSql}`;
  } else {
    if (where.length) unsupportedThrow("Filters on POST");
    const body = await readJsonBody(req);
    const rows = Array.isArray(body) ? body : [body];
    if (!rows.every(isObject)) {
      throw new RestError(
        400,
        "PGRST102",
        "Empty or invalid json",
        "Send a JSON object or an array of objects",
      );
    }
    const columnsParam = url.searchParams.get("columns");
    let cols: string[];
    if (columnsParam !== null) {
      cols = splitTop(columnsParam).map((c) => unquote(c.trim())).filter(Boolean);
    } else {
      cols = rows.length ? Object.keys(rows[0]) : [];
      const same = rows.every((r) =>
        Object.keys(r).length === cols.length && cols.every((c) => c in r)
      );
      if (!same) throw new RestError(400, "PGRST102", "All object keys must match");
    }
    cols.forEach((c) => knownColumn(rel, c));
    if (cols.length === 0 && rows.length > 0) unsupportedThrow("Inserting rows with no columns");
    const list = cols.map(quoteIdent).join(", ");
    const json = params.add(JSON.stringify(rows), "json");
    write =
      `insert into ${target} as _t (${
        list || quoteIdent(rel.pk[0] ?? [...rel.columns.keys()][0])
      }) ` +
      (cols.length
        ? `select ${list} from json_populate_recordset(null::${target}, ${json})`
        : `select null where false`);
    const resolution = prefer.get("resolution");
    if (resolution) {
      const onConflict = url.searchParams.get("on_conflict");
      const keys = onConflict !== null
        ? splitTop(onConflict).map((c) => unquote(c.trim()))
        : rel.pk;
      if (!keys.length) {
        throw parseError(`${rel.name} has no primary key: give on_conflict`);
      }
      keys.forEach((c) => knownColumn(rel, c));
      const conflict = `(${keys.map(quoteIdent).join(", ")})`;
      const updates = cols.filter((c) => !keys.includes(c));
      if (resolution === "ignore-duplicates" || !updates.length) {
        write += ` on conflict ${conflict} do nothing`;
      } else if (resolution === "merge-duplicates") {
        write += ` on conflict ${conflict} do update set ${
          updates.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(", ")
        }`;
      } else unsupportedThrow(`Prefer: resolution=${resolution}`);
      upsert = resolution === "merge-duplicates";
    }
  }
  const returned = [
    representation ? renderSelect(select, "_t") : "1 as __one",
    upsert ? "(_t.xmax = 0) as __inserted" : "false as __inserted",
  ].join(", ");
  const projection = select.map((i) => `_w.${quoteIdent(i.alias)}`).join(", ");
  const body = representation
    ? `(select ${aggregate(shape)} from (select ${projection} from _w) _b)`
    : "null::text";
  return {
    sql: `with _w as (${write} returning ${returned})
      select null::bigint as total, (select count(*) from _w)::int as n, ${body} as body,
        (select bool_or(__inserted) from _w) as inserted`,
    params,
    readOnly: false,
    single: shape.single,
    body: representation,
    status: (row) =>
      method === "POST"
        ? (upsert && row.n > 0 && !row.inserted ? 200 : 201)
        : representation
        ? 200
        : 204,
    contentRange: prefer.has("count") ? (row) => `*/${row.n}` : undefined,
  };
}

async function planRpc(
  fns: RpcFunction[] | undefined,
  name: string,
  url: URL,
  req: Request,
  prefer: Map<string, string>,
  shape: Shape,
): Promise<Plan> {
  let args: Record<string, unknown>;
  if (req.method === "POST") {
    for (const [k, v] of url.searchParams) {
      if (!(k === "select" && v === "*")) {
        unsupportedThrow(`"${k}": filters and modifiers on rpc results`);
      }
    }
    const body = await readJsonBody(req, true);
    if (!isObject(body)) {
      throw new RestError(
        400,
        "PGRST102",
        "Empty or invalid json",
        "rpc takes a JSON object of arguments",
      );
    }
    args = body;
  } else {
    args = Object.fromEntries(
      [...url.searchParams].filter(([k, v]) => !(k === "select" && v === "*")),
    );
  }
  const given = Object.keys(args);
  const matches = (fns ?? []).filter((f) =>
    given.every((k) => f.args.some((a) => a.name === k)) &&
    f.args.every((a) => a.hasDefault || given.includes(a.name))
  );
  if (matches.length === 0) {
    const shown = given.length ? `(${[...given].sort().join(", ")})` : " without parameters";
    throw new RestError(
      404,
      "PGRST202",
      `Could not find the function public.${name}${shown} in the schema cache`,
      `Searched for the function public.${name} with ${
        given.length ? `parameters ${[...given].sort().join(", ")}` : "no parameters"
      }, but no matches were found in the schema cache.`,
    );
  }
  if (matches.length > 1) {
    throw new RestError(
      300,
      "PGRST203",
      `Could not choose the best candidate function between: ${
        matches.map((m) => `public.${name}(${m.args.map((a) => a.name).join(", ")})`).join(", ")
      }`,
    );
  }
  const fn = matches[0];
  const params = new Params();
  const used = fn.args.filter((a) => given.includes(a.name));
  // PostgREST's way: the JSON arguments become a typed record, so PostgreSQL converts each.
  const record = used.length
    ? `json_to_record(${params.add(JSON.stringify(args), "json")}) as _a(${
      used.map((a) => `${quoteIdent(a.name)} ${a.type}`).join(", ")
    })`
    : "";
  const fromRecord = record ? ` from ${record}` : "";
  const call = `public.${quoteIdent(fn.name)}(${
    used.map((a) => `${quoteIdent(a.name)} := _a.${quoteIdent(a.name)}`).join(", ")
  })`;
  const head = "select null::bigint as total";
  let query: string;
  if (fn.returnsVoid) {
    query = `${head}, count(*)::int as n, null::text as body, null::boolean as inserted
      from (select ${call} as _r${fromRecord}) _b`;
  } else if (fn.returnsRow || fn.returnsSet) {
    // Rows come back as objects; a set of scalars as an array of values.
    const rows = `select ${fn.returnsRow ? "_r.*" : "_r"} from ${
      record ? `${record} cross join lateral ` : ""
    }${call} as _r`;
    const oneRow = fn.returnsRow && !fn.returnsSet;
    query = `${head}, count(*)::int as n, ${
      aggregate({ ...shape, single: shape.single || oneRow }, !fn.returnsRow)
    } as body, null::boolean as inserted from (${rows}) _b`;
  } else {
    query =
      `${head}, 1 as n, to_json(${call})::text as body, null::boolean as inserted${fromRecord}`;
  }
  const minimal = prefer.get("return") === "minimal";
  return {
    sql: query,
    params,
    readOnly: req.method !== "POST" || !fn.volatile,
    single: shape.single,
    body: req.method !== "HEAD" && !fn.returnsVoid && !minimal,
    status: () => (fn.returnsVoid || minimal ? 204 : 200),
  };
}

// ---------------------------------------------------------------------------------------
// The handler.

class SingleRowError extends Error {
  constructor(readonly rows: number) {
    super(`${rows} rows`);
  }
}

const ROLES = new Set(["anon", "authenticated", "service_role"]);

export function restHandler(opts: RestOptions) {
  const { sql, keys } = opts;
  // The token's claims; the project's sb_publishable_ key is anon, its sb_secret_ key service_role.
  const verify = keyVerifier(keys);
  let catalogue: Promise<Catalogue> | null = null;

  async function lookup<T>(get: (c: Catalogue) => T | undefined): Promise<T | undefined> {
    try {
      catalogue ??= loadCatalogue(sql);
      const current = await catalogue;
      const found = get(current);
      if (found !== undefined) return found;
      // A name we do not know may be new (PostgREST reloads on NOTIFY): reload if anything changed.
      if (await fingerprint(sql) === current.fingerprint) return undefined;
      // Unless a concurrent request already started the reload.
      if ((await catalogue) === current) catalogue = loadCatalogue(sql);
      return get(await catalogue);
    } catch (e) {
      catalogue = null;
      throw e;
    }
  }

  async function claimsOf(req: Request): Promise<Claims> {
    const token = bearerToken(req) ?? req.headers.get("apikey");
    if (!token) {
      if (req.headers.get("authorization")) {
        throw new RestError(401, "PGRST301", "Expected 3 parts in JWT; got 1", null, null, {
          "WWW-Authenticate": 'Bearer error="invalid_token"',
        });
      }
      return { role: "anon" };
    }
    try {
      const claims = await verify(token);
      return { ...claims, role: typeof claims.role === "string" ? claims.role : "anon" };
    } catch (e) {
      const expired = e instanceof TokenError && e.reason === "expired";
      const message = expired ? "JWT expired" : "No suitable key or wrong key type";
      throw new RestError(401, expired ? "PGRST303" : "PGRST301", message, null, null, {
        "WWW-Authenticate": `Bearer error="invalid_token", error_description="${message}"`,
      });
    }
  }

  async function run(req: Request, claims: Claims, path: string, plan: Plan): Promise<Row> {
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => {
      if (!["authorization", "apikey", "cookie"].includes(k)) headers[k] = v;
    });
    return await sql.begin(plan.readOnly ? "read only" : "read write", async (tx) => {
      await tx.unsafe(
        `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
           set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, true),
           set_config('request.method', $4, true), set_config('request.path', $5, true),
           set_config('request.headers', $6, true), set_config('request.cookies', '{}', true),
           set_config('search_path', 'public, extensions', true)`,
        [
          String(claims.role),
          JSON.stringify(claims),
          typeof claims.sub === "string" ? claims.sub : "",
          req.method,
          path,
          JSON.stringify(headers),
        ],
      );
      const [row] = await tx.unsafe<Row[]>(plan.sql, plan.params.values as any[]);
      // Single-object requests must match exactly one row; otherwise nothing is kept.
      if (plan.single && row.n !== 1) throw new SingleRowError(row.n);
      return row;
    });
  }

  /** `path` is the part after /rest/v1. */
  return async function handle(req: Request, path: string): Promise<Response> {
    let role = "anon";
    try {
      const method = req.method;
      if (!["GET", "HEAD", "POST", "PATCH", "DELETE"].includes(method)) {
        unsupportedThrow(`${method} (use GET, HEAD, POST, PATCH or DELETE)`);
      }
      const read = method === "GET" || method === "HEAD";
      const profile = req.headers.get(read ? "accept-profile" : "content-profile");
      if (profile && profile !== "public") {
        throw new RestError(406, "PGRST106", "The schema must be one of the following: public");
      }
      const accept = (req.headers.get("accept") ?? "").toLowerCase();
      const shape: Shape = {
        single: accept.includes("application/vnd.pgrst.object+json"),
        strip: accept.includes("nulls=stripped"),
      };
      if (
        accept && !shape.single &&
        !/application\/json|application\/vnd\.pgrst\.array\+json|\*\/\*/.test(accept)
      ) {
        unsupportedThrow(`Accept: ${accept} (JSON only)`);
      }
      const claims = await claimsOf(req);
      role = String(claims.role);
      if (!ROLES.has(role)) {
        throw new RestError(403, "42501", `permission denied to set role "${role}"`);
      }
      const url = new URL(req.url);
      const prefer = parsePrefer(req);
      const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
      let plan: Plan;
      if (segments.length === 2 && segments[0] === "rpc") {
        if (!["GET", "HEAD", "POST"].includes(method)) unsupportedThrow(`${method} on rpc`);
        const fns = await lookup((c) => c.functions.get(segments[1]));
        plan = await planRpc(fns, segments[1], url, req, prefer, shape);
      } else if (segments.length === 1) {
        const rel = await lookup((c) => c.relations.get(segments[0]));
        if (!rel) {
          throw new RestError(
            404,
            "PGRST205",
            `Could not find the table 'public.${segments[0]}' in the schema cache`,
          );
        }
        const ctx: Ctx = { rel, params: new Params() };
        plan = read
          ? planRead(ctx, url, req, prefer, shape)
          : await planWrite(ctx, url, req, prefer, shape);
      } else {
        unsupportedThrow(
          segments.length === 0
            ? "The OpenAPI description (GET /rest/v1/)"
            : `The path /rest/v1${path}`,
        );
      }
      let row: Row;
      try {
        row = await run(req, claims, path, plan);
      } catch (e) {
        if (e instanceof SingleRowError) {
          throw new RestError(
            406,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
            `The result contains ${e.rows} rows`,
          );
        }
        throw e;
      }
      const status = plan.status(row);
      const headers: Record<string, string> = {};
      if (plan.contentRange) headers["Content-Range"] = plan.contentRange(row);
      const body = plan.body && status !== 204 ? row.body : null;
      if (plan.body || method === "HEAD") {
        headers["Content-Type"] = shape.single
          ? "application/vnd.pgrst.object+json; charset=utf-8"
          : "application/json; charset=utf-8";
      }
      return new Response(body, { status, headers });
    } catch (e) {
      const err = e instanceof RestError ? e : fromDatabase(e, role);
      if (!(e instanceof RestError) && !(e as any)?.code) {
        console.error(`rest stand-in: ${e instanceof Error ? e.stack : e}`);
      }
      return new Response(
        JSON.stringify({
          code: err.code,
          details: err.details,
          hint: err.hint,
          message: err.message,
        }),
        {
          status: err.status,
          headers: { "Content-Type": "application/json; charset=utf-8", ...err.headers },
        },
      );
    }
  };
}
