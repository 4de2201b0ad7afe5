import { type FormEvent, useEffect, useState } from "react";
import { supabase } from "../config.ts";
import { must, type Row } from "../api.ts";
import { ActionButton, ErrorBox, fmtTime, Pager } from "../ui.tsx";

const PAGE = 50;

export function DoNotCall() {
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(0);
  const [search, setSearch] = useState("");
  const [e164, setE164] = useState("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [addError, setAddError] = useState<unknown>(null);
  const load = async () => {
    try {
      let q = supabase.from("do_not_call").select("*", { count: "exact" });
      if (search) q = q.like("e164", `%${search.replace(/[^0-9+]/g, "")}%`);
      const r = await q.order("created_at", { ascending: false }).order("id")
        .range(page * PAGE, page * PAGE + PAGE - 1);
      setRows(must(r));
      setTotal(r.count ?? 0);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), [page, search]);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setAddError(null);
    try {
      must(await supabase.from("do_not_call").insert({ e164, reason: reason || null }));
      setE164("");
      setReason("");
      await load();
    } catch (err) {
      setAddError(err);
    }
  };
  return (
    <>
      <h1>Do not call</h1>
      <p className="muted">No campaign dials these numbers; an import skips them.</p>
      <form className="card row-form" onSubmit={add} aria-label="Add to the do-not-call list">
        <label>
          Number (E.164)
          <input
            required
            placeholder="+12125550123"
            value={e164}
            onChange={(e) => setE164(e.target.value)}
          />
        </label>
        <label>
          Reason
          <input maxLength={500} value={reason} onChange={(e) => setReason(e.target.value)} />
        </label>
        <button type="submit" className="primary">Add</button>
        <ErrorBox error={addError} />
      </form>
      <label className="inline">
        Search{" "}
        <input
          type="search"
          value={search}
          onChange={(e) => {
            setSearch(e.target.value);
            setPage(0);
          }}
        />
      </label>
      <ErrorBox error={error} />
      <div className="scroll">
        <table aria-label="Do-not-call list">
          <thead>
            <tr>
              <th>Number</th>
              <th>Reason</th>
              <th>Added</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-number={r.e164}>
                <td className="mono">{r.e164}</td>
                <td className="wrap">
                  {r.reason}
                  {r.call_id
                    ? (
                      <>
                        (<a href={`#/calls/${r.call_id}`}>call</a>)
                      </>
                    )
                    : null}
                </td>
                <td>{fmtTime(r.created_at)}</td>
                <td>
                  <ActionButton
                    className="danger"
                    confirm="Remove it from the list?"
                    onClick={async () => {
                      must(await supabase.from("do_not_call").delete().eq("id", r.id));
                      await load();
                    }}
                  >
                    Remove
                  </ActionButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager page={page} size={PAGE} total={total} onPage={setPage} label="numbers" />
    </>
  );
}
