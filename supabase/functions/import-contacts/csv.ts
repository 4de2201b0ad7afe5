// A streaming CSV reader (RFC 4180 and what spreadsheets export): text arrives in chunks of
// any size and complete records come out as soon as they end. Quoted fields may hold the
// delimiter, doubled quotes and line breaks; records end at CRLF, LF or CR; a UTF-8 byte order
// mark is dropped. The delimiter is the comma unless the header line uses semicolons or tabs
// instead (European spreadsheet exports). Pure: no I/O.

export interface CsvRecord {
  fields: string[];
  /** The record's position in the file, the header being row 1 (the row a spreadsheet shows). */
  row: number;
  /** Set when the record cannot be read (a quote left open at the end of the file). */
  error?: string;
}

const CANDIDATES = [",", ";", "\t"] as const;
/** How much of the file may pass before the header line must have ended. */
const HEADER_LOOKAHEAD = 64 * 1024;

/** The delimiter a header line uses: the candidate found most often outside quotes. */
export function detectDelimiter(headerLine: string): string {
  const counts = new Map<string, number>(CANDIDATES.map((c) => [c, 0]));
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best = ",";
  for (const c of CANDIDATES) if (counts.get(c)! > counts.get(best)!) best = c;
  return best;
}

export class CsvReader {
  #delimiter: string | null;
  /** Text held back until the header line ends (delimiter detection). */
  #head = "";
  #started = false;
  #field = "";
  #fields: string[] = [];
  /** 0: at a field's start, 1: in an unquoted field, 2: in quotes, 3: just after a closing quote. */
  #state = 0;
  #skipLf = false;
  #row = 0;
  #out: CsvRecord[] = [];

  constructor(opts: { delimiter?: string } = {}) {
    this.#delimiter = opts.delimiter ?? null;
  }

  /** Feeds text; returns the records it completed. */
  push(text: string): CsvRecord[] {
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#delimiter === null) {
      this.#head += text;
      const end = headerLineEnd(this.#head);
      if (end === -1 && this.#head.length < HEADER_LOOKAHEAD) return [];
      this.#delimiter = detectDelimiter(end === -1 ? this.#head : this.#head.slice(0, end));
      text = this.#head;
      this.#head = "";
    }
    this.#consume(text);
    return this.#take();
  }

  /** Ends the input; returns the last records. */
  end(): CsvRecord[] {
    if (this.#delimiter === null) {
      this.#delimiter = detectDelimiter(this.#head);
      const text = this.#head;
      this.#head = "";
      this.#consume(text);
    }
    if (this.#state === 2) {
      this.#fields.push(this.#field);
      this.#emit('a quoted field is not closed (a " is missing)');
    } else if (this.#state !== 0 || this.#fields.length > 0) {
      this.#fields.push(this.#field);
      this.#emit();
    }
    return this.#take();
  }

  #take(): CsvRecord[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #emit(error?: string) {
    this.#row++;
    this.#out.push({ fields: this.#fields, row: this.#row, ...(error ? { error } : {}) });
    this.#fields = [];
    this.#field = "";
    this.#state = 0;
  }

  #endField() {
    this.#fields.push(this.#field);
    this.#field = "";
    this.#state = 0;
  }

  #consume(text: string) {
    const d = this.#delimiter!;
    let i = 0;
    const n = text.length;
    while (i < n) {
      const ch = text[i];
      if (this.#skipLf) {
        this.#skipLf = false;
        if (ch === "\n") {
          i++;
          continue;
        }
      }
      switch (this.#state) {
        case 2: {
          // In quotes: everything up to the next quote is the field's.
          const q = text.indexOf('"', i);
          if (q === -1) {
            this.#field += text.slice(i);
            i = n;
          } else {
            this.#field += text.slice(i, q);
            this.#state = 3;
            i = q + 1;
          }
          continue;
        }
        case 3:
          if (ch === '"') {
            this.#field += '"';
            this.#state = 2;
            i++;
            continue;
          }
          if (ch !== d && ch !== "\n" && ch !== "\r") {
            // Text after a closing quote (`"a"b`): kept, as spreadsheets read it.
            this.#state = 1;
            continue;
          }
          break;
        case 0:
          if (ch === '"') {
            this.#state = 2;
            i++;
            continue;
          }
          break;
      }
      if (ch === d) {
        this.#endField();
        i++;
      } else if (ch === "\n" || ch === "\r") {
        this.#fields.push(this.#field);
        this.#emit();
        this.#skipLf = ch === "\r";
        i++;
      } else {
        // An unquoted run: up to the next delimiter or line break (a quote inside is literal).
        this.#state = 1;
        let j = i;
        while (j < n) {
          const c = text[j];
          if (c === d || c === "\n" || c === "\r") break;
          j++;
        }
        this.#field += text.slice(i, j);
        i = j;
      }
    }
  }
}

/** Where the first line ends outside quotes, or -1 if it has not ended yet. */
function headerLineEnd(text: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === "\n" || ch === "\r")) return i;
  }
  return -1;
}

/** Reads a whole CSV text at once (tests and small inputs). */
export function parseCsv(text: string, opts: { delimiter?: string } = {}): CsvRecord[] {
  const r = new CsvReader(opts);
  return [...r.push(text), ...r.end()];
}
