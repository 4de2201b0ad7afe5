// Reading migrations as SQL text: what a file creates, with comments, string literals and
// function bodies left out. The migrations test and `deno task doctor` read them the same way.

/** The SQL with comments, string literals and dollar-quoted bodies blanked (offsets kept). */
export function code(sql: string): string {
  let out = "";
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  while (i < sql.length) {
    const rest = sql.slice(i);
    const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
    let end = -1;
    if (rest.startsWith("--")) {
      end = sql.indexOf("\n", i);
      if (end < 0) end = sql.length;
    } else if (rest.startsWith("/*")) {
      end = sql.indexOf("*/", i + 2) + 2;
      if (end < 2) end = sql.length;
    } else if (rest[0] === "'") {
      end = i + 1;
      while (end < sql.length && !(sql[end] === "'" && sql[end + 1] !== "'")) {
        end += sql[end] === "'" ? 2 : 1;
      }
      end++;
    } else if (dollar && (i === 0 || !/[A-Za-z0-9_]/.test(sql[i - 1]))) {
      const close = sql.indexOf(dollar[0], i + dollar[0].length);
      end = close < 0 ? sql.length : close + dollar[0].length;
    }
    if (end > i) {
      out += blank(sql.slice(i, end));
      i = end;
    } else {
      out += sql[i++];
    }
  }
  return out;
}

export const IDENT = String.raw`(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)`;
export const NAME = String.raw`${IDENT}(?:\s*\.\s*${IDENT})?`;

/** schema.name, lower case, unquoted; public when no schema is given. */
export function qualify(name: string): string {
  const parts = name.replace(/\s+/g, "").split(".").map((p) =>
    p.startsWith('"') ? p.slice(1, -1) : p.toLowerCase()
  );
  return parts.length === 1 ? `public.${parts[0]}` : parts.join(".");
}

export interface Found {
  /** What is created, keyed so that two creations of one object have the same key. */
  key: string;
  replace: boolean;
  file: string;
}

export function creations(file: string, sql: string): Found[] {
  const found: Found[] = [];
  const add = (re: RegExp, key: (m: RegExpMatchArray) => string) => {
    for (const m of sql.matchAll(re)) found.push({ key: key(m), replace: !!m[1], file });
  };
  add(
    new RegExp(String.raw`\bcreate\s+(or\s+replace\s+)?function\s+(${NAME})`, "gi"),
    (m) => `function ${qualify(m[2])}`,
  );
  add(
    new RegExp(
      String
        .raw`\bcreate\s+(or\s+replace\s+)?(?:materialized\s+)?view\s+(?:if\s+not\s+exists\s+)?(${NAME})`,
      "gi",
    ),
    (m) => `relation ${qualify(m[2])}`,
  );
  add(
    new RegExp(
      String.raw`\bcreate\s+()(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?(${NAME})`,
      "gi",
    ),
    (m) => `relation ${qualify(m[2])}`,
  );
  add(
    new RegExp(
      String
        .raw`\bcreate\s+(or\s+replace\s+)?(?:constraint\s+)?trigger\s+(${IDENT})\s[\s\S]*?\bon\s+(${NAME})`,
      "gi",
    ),
    (m) => `trigger ${qualify(m[3])}.${qualify(m[2]).split(".")[1]}`,
  );
  add(
    new RegExp(String.raw`\bcreate\s+()policy\s+(${IDENT})\s+on\s+(${NAME})`, "gi"),
    (m) => `policy ${qualify(m[3])}.${qualify(m[2]).split(".")[1]}`,
  );
  return found;
}
