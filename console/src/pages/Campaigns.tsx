import { useState } from "react";
import { supabase } from "../config.ts";
import { must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { Badge, ErrorBox, Pager, ProgressBar } from "../ui.tsx";

const PAGE = 25;

/** Contacts whose outcome is final. */
export const finished = (p: Row) =>
  p.completed + p.busy + p.no_answer + p.failed + p.skipped + p.cancelled;

export function Campaigns() {
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(0);
  const [error, setError] = useState<unknown>(null);
  useLive(["campaigns", "campaign_calls"], async () => {
    try {
      const r = await supabase.from("campaign_progress").select("*", { count: "exact" })
        .order("name").order("campaign_id").range(page * PAGE, page * PAGE + PAGE - 1);
      setRows(must(r));
      setTotal(r.count ?? 0);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [page]);
  return (
    <>
      <div className="heading">
        <h1>Campaigns</h1>
        <a className="button primary" href="#/campaigns/new">New campaign</a>
      </div>
      <ErrorBox error={error} />
      <div className="scroll">
        <table>
          <thead>
            <tr>
              <th>Campaign</th>
              <th>Status</th>
              <th>Progress</th>
              <th>Contacts</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((p) => (
              <tr key={p.campaign_id} data-campaign={p.campaign_id}>
                <td className="wrap">
                  <a href={`#/campaigns/${p.campaign_id}`}>{p.name}</a>
                </td>
                <td>
                  <Badge value={p.status} />
                  {p.status_reason
                    ? <div className="muted small wrap">{p.status_reason}</div>
                    : null}
                </td>
                <td className="grow">
                  <ProgressBar done={finished(p)} total={p.total} label={`${p.name} progress`} />
                </td>
                <td className="num">{p.total}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && !error ? <p className="muted">No campaign yet.</p> : null}
      <Pager page={page} size={PAGE} total={total} onPage={setPage} label="campaigns" />
    </>
  );
}
