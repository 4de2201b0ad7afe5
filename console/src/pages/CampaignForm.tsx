import { type FormEvent, type ReactNode, useEffect, useState } from "react";
import { supabase } from "../config.ts";
import { ApiError, message, must, type Row } from "../api.ts";
import { countries, DEFAULTS, fieldOf, NUMBER_FIELDS, validate, WEEKDAYS } from "../settings.ts";
import { ErrorBox } from "../ui.tsx";

type Values = Record<string, unknown>;

/** `2026-12-07T10:00` in the browser's zone <-> ISO with offset. */
const toLocalInput = (iso: string | null) => {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${
    pad(d.getMinutes())
  }`;
};

function fromRow(c: Row): Values {
  const v: Values = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) if (c[k] !== undefined && c[k] !== null) v[k] = c[k];
  v.phone_number_id = c.phone_number_id ?? "";
  v.caller_number_ids = c.caller_number_ids ?? [];
  v.starts_at = toLocalInput(c.starts_at);
  v.ends_at = toLocalInput(c.ends_at);
  v.allowed_countries = (c.allowed_countries ?? []).join(", ");
  v.window_start = String(c.window_start).replace(/:00$/, "");
  v.window_end = String(c.window_end).replace(/:00$/, "");
  return v;
}

function toRow(v: Values, creating: boolean): Row {
  const row: Row = {
    name: String(v.name).trim(),
    phone_number_id: v.phone_number_id || null,
    caller_number_ids: (v.caller_number_ids as string[]).length ? v.caller_number_ids : null,
    caller_id_strategy: v.caller_id_strategy,
    starts_at: v.starts_at ? new Date(String(v.starts_at)).toISOString() : null,
    ends_at: v.ends_at ? new Date(String(v.ends_at)).toISOString() : null,
    window_start: v.window_start,
    window_end: v.window_end,
    weekdays: [...(v.weekdays as number[])].sort(),
    default_timezone: v.default_timezone,
    default_country: v.default_country,
    allowed_countries: countries(String(v.allowed_countries)),
  };
  for (const f of NUMBER_FIELDS) row[f.key] = Number(v[f.key]);
  if (creating) row.assistant_id = v.assistant_id;
  return row;
}

/** Create or edit a campaign: every setting, checked as the database checks it. */
export function CampaignForm({ id }: { id?: string }) {
  const [values, setValues] = useState<Values | null>(id ? null : { ...DEFAULTS });
  const [assistants, setAssistants] = useState<Row[]>([]);
  const [numbers, setNumbers] = useState<Row[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    (async () => {
      try {
        const [a, n] = await Promise.all([
          supabase.from("assistant").select("id, name").order("created_at"),
          supabase.from("phone_number").select("id, e164, label, assistant_id, trunk_status")
            .order("e164"),
        ]);
        setAssistants(must(a));
        setNumbers(must(n));
        if (id) {
          setValues(
            fromRow(must(await supabase.from("campaigns").select("*").eq("id", id).single())),
          );
        }
      } catch (e) {
        setFormError(e);
      }
    })();
  }, [id]);
  if (!values) {
    return (
      <>
        <p>Loading…</p>
        <ErrorBox error={formError} />
      </>
    );
  }
  const set = (k: string, x: unknown) => {
    const next = { ...values, [k]: x };
    setValues(next);
    // Errors update as fields change once the form was submitted.
    if (Object.keys(errors).length) setErrors(validate(next));
  };
  const assistantNumbers = numbers.filter((n) => n.assistant_id === values.assistant_id);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const found = validate(values);
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      const row = toRow(values, !id);
      const saved = id
        ? must(await supabase.from("campaigns").update(row).eq("id", id).select("id").single())
        : must(await supabase.from("campaigns").insert(row).select("id").single());
      location.hash = `#/campaigns/${saved.id}`;
    } catch (err) {
      const field = fieldOf(message(err));
      if (err instanceof ApiError && field) setErrors({ [field]: message(err) });
      else setFormError(err);
    } finally {
      setBusy(false);
    }
  };
  const field = (k: string, label: string, input: ReactNode, help?: string) => (
    <div className={`field ${errors[k] ? "invalid" : ""}`} key={k}>
      <label htmlFor={`f-${k}`}>{label}</label>
      {input}
      {help ? <span className="muted small">{help}</span> : null}
      {errors[k]
        ? <span className="error small" role="alert" data-field-error={k}>{errors[k]}</span>
        : null}
    </div>
  );
  const text = (k: string, props: Record<string, unknown> = {}) => (
    <input
      id={`f-${k}`}
      name={k}
      value={String(values[k] ?? "")}
      aria-invalid={!!errors[k]}
      onChange={(e) => set(k, e.target.value)}
      {...props}
    />
  );
  return (
    <form onSubmit={submit} noValidate aria-label={id ? "Edit campaign" : "New campaign"}>
      <h1>{id ? "Edit campaign" : "New campaign"}</h1>
      <ErrorBox error={formError} />
      <fieldset className="card grid">
        <legend>Campaign</legend>
        {field("name", "Name", text("name", { maxLength: 200 }), "1-200 characters")}
        {field(
          "assistant_id",
          "Assistant",
          <select
            id="f-assistant_id"
            name="assistant_id"
            value={String(values.assistant_id)}
            disabled={!!id}
            onChange={(e) => {
              setValues({
                ...values,
                assistant_id: e.target.value,
                phone_number_id: "",
                caller_number_ids: [],
              });
            }}
          >
            <option value="">Choose…</option>
            {assistants.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>,
          id ? "a campaign keeps its assistant" : "whose agent takes the calls",
        )}
        {field(
          "phone_number_id",
          "Caller number",
          <select
            id="f-phone_number_id"
            name="phone_number_id"
            value={String(values.phone_number_id)}
            onChange={(e) => set("phone_number_id", e.target.value)}
          >
            <option value="">The assistant's first ready number</option>
            {assistantNumbers.map((n) => (
              <option key={n.id} value={n.id}>{n.e164} ({n.trunk_status})</option>
            ))}
          </select>,
        )}
        {field(
          "caller_number_ids",
          "Number pool",
          <div id="f-caller_number_ids" className="checks">
            {assistantNumbers.filter((n) => n.trunk_status === "ready").map((n) => (
              <label key={n.id} className="check">
                <input
                  type="checkbox"
                  checked={(values.caller_number_ids as string[]).includes(n.id)}
                  onChange={(e) =>
                    set(
                      "caller_number_ids",
                      e.target.checked
                        ? [...(values.caller_number_ids as string[]), n.id]
                        : (values.caller_number_ids as string[]).filter((x) =>
                          x !== n.id
                        ),
                    )}
                />
                {n.e164}
              </label>
            ))}
          </div>,
          "ready numbers of the assistant; none: the caller number alone",
        )}
        {field(
          "caller_id_strategy",
          "Caller ID",
          <select
            id="f-caller_id_strategy"
            name="caller_id_strategy"
            value={String(values.caller_id_strategy)}
            onChange={(e) => set("caller_id_strategy", e.target.value)}
          >
            <option value="fixed">fixed: the first usable number</option>
            <option value="local_presence">local presence: a number near the callee</option>
          </select>,
        )}
      </fieldset>
      <fieldset className="card grid">
        <legend>When</legend>
        {field(
          "starts_at",
          "Starts at",
          text("starts_at", { type: "datetime-local" }),
          "optional; your time zone",
        )}
        {field(
          "ends_at",
          "Ends at",
          text("ends_at", { type: "datetime-local" }),
          "optional; after the start",
        )}
        {field(
          "window_start",
          "Window from",
          text("window_start", { placeholder: "09:00" }),
          "the callee's local time, HH:MM",
        )}
        {field(
          "window_end",
          "Window to",
          text("window_end", { placeholder: "20:00" }),
          "after the window's start",
        )}
        {field(
          "weekdays",
          "Days",
          <div id="f-weekdays" className="checks">
            {WEEKDAYS.map((d, i) => (
              <label key={d} className="check">
                <input
                  type="checkbox"
                  name={`weekday-${i + 1}`}
                  checked={(values.weekdays as number[]).includes(i + 1)}
                  onChange={(e) =>
                    set(
                      "weekdays",
                      e.target.checked
                        ? [...(values.weekdays as number[]), i + 1]
                        : (values.weekdays as number[]).filter((x) => x !== i + 1),
                    )}
                />
                {d}
              </label>
            ))}
          </div>,
          "in the callee's local time",
        )}
        {field(
          "default_timezone",
          "Default time zone",
          text("default_timezone"),
          "when neither contact nor number says, e.g. America/Chicago",
        )}
        {field(
          "default_country",
          "Default country",
          text("default_country", { maxLength: 2 }),
          "for numbers written without +",
        )}
        {field(
          "allowed_countries",
          "Allowed countries",
          text("allowed_countries"),
          "two-letter codes, comma separated",
        )}
      </fieldset>
      <fieldset className="card grid">
        <legend>Limits and retries</legend>
        {NUMBER_FIELDS.map((f) =>
          field(
            f.key,
            f.label,
            text(f.key, {
              type: "number",
              step: f.kind === "int" ? 1 : "any",
              inputMode: "decimal",
            }),
            `${f.help}; ${f.minExclusive ? `over ${f.min}` : f.min}-${f.max}${
              f.unit ? ` ${f.unit}` : ""
            }`,
          )
        )}
      </fieldset>
      <div className="buttons">
        <button type="submit" className="primary" disabled={busy}>
          {id ? "Save" : "Create campaign"}
        </button>
        <a className="button" href={id ? `#/campaigns/${id}` : "#/campaigns"}>Cancel</a>
      </div>
    </form>
  );
}
