import { useEffect, useState } from "react";
import { supabase } from "../config.ts";
import { must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { Badge, ErrorBox, fmtTime, Pager } from "../ui.tsx";
import { OUTCOMES as DIAL_OUTCOMES } from "../../../supabase/functions/_shared/outcomes.ts";

const PAGE = 50;
/** The outcomes a call can end with (the functions' list, tied to internal.call_outcome by a test). */
export const OUTCOMES = [...DIAL_OUTCOMES, "not_dialed"];

/** Calls with filters (campaign, outcome, SIP status, date); the filters live in the URL. */
export function Calls({ query }: { query: URLSearchParams }) {
  const filters = {
    campaign: query.get("campaign") ?? "",
    outcome: query.get("outcome") ?? "",
    sip: query.get("sip") ?? "",
    from: query.get("from") ?? "",
    to: query.get("to") ?? "",
  };
  const page = Number(query.get("page") ?? 0);
  const [campaigns, setCampaigns] = useState<Row[]>([]);
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const setFilter = (k: string, v: string) => {
    const q = new URLSearchParams(query);
    if (v) q.set(k, v);
    else q.delete(k);
    if (k !== "page") q.delete("page");
    location.hash = `#/calls?${q}`;
  };
  useEffect(() => {
    supabase.from("campaigns").select("id, name").order("name").then((r) => {
      if (r.error) setError(r.error);
      else setCampaigns(r.data);
    });
  }, []);
  const key = JSON.stringify([filters, page]);
  useLive(["outbound_calls"], async () => {
    try {
      let q = supabase.from("outbound_calls").select(
        "id, created_at, campaign_id, from_number, to_number, status, outcome, sip_status_code, sip_status, duration_sec, disposition",
        { count: "exact" },
      );
      if (filters.campaign) q = q.eq("campaign_id", filters.campaign);
      if (filters.outcome) q = q.eq("outcome", filters.outcome);
      if (filters.sip) q = q.eq("sip_status_code", Number(filters.sip));
      if (filters.from) q = q.gte("created_at", new Date(`${filters.from}T00:00`).toISOString());
      if (filters.to) {
        const end = new Date(`${filters.to}T00:00`);
        end.setDate(end.getDate() + 1);
        q = q.lt("created_at", end.toISOString());
      }
      const r = await q.order("created_at", { ascending: false }).order("id")
        .range(page * PAGE, page * PAGE + PAGE - 1);
      setRows(must(r));
      setTotal(r.count ?? 0);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [key]);
  const names = new Map(campaigns.map((c) => [c.id, c.name]));
  return (
    <>
      <h1>Calls</h1>
      <form className="card row-form" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Campaign
          <select
            name="campaign"
            value={filters.campaign}
            onChange={(e) => setFilter("campaign", e.target.value)}
          >
            <option value="">all</option>
            {campaigns.map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
          </select>
        </label>
        <label>
          Outcome
          <select
            name="outcome"
            value={filters.outcome}
            onChange={(e) => setFilter("outcome", e.target.value)}
          >
            <option value="">all</option>
            {OUTCOMES.map((o) => <option key={o} value={o}>{o.replace("_", " ")}</option>)}
          </select>
        </label>
        <label>
          SIP status
          <input
            name="sip"
            type="number"
            min={100}
            max={699}
            value={filters.sip}
            onChange={(e) => setFilter("sip", e.target.value)}
          />
        </label>
        <label>
          From
          <input
            name="from"
            type="date"
            value={filters.from}
            onChange={(e) => setFilter("from", e.target.value)}
          />
        </label>
        <label>
          To
          <input
            name="to"
            type="date"
            value={filters.to}
            onChange={(e) => setFilter("to", e.target.value)}
          />
        </label>
      </form>
      <ErrorBox error={error} />
      <div className="scroll">
        <table aria-label="Calls">
          <thead>
            <tr>
              <th>Placed</th>
              <th>Callee</th>
              <th>Campaign</th>
              <th>Status</th>
              <th>Outcome</th>
              <th>SIP</th>
              <th>Length</th>
              <th>Report</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id} data-call={c.id}>
                <td>
                  <a href={`#/calls/${c.id}`}>{fmtTime(c.created_at)}</a>
                </td>
                <td className="mono">{c.to_number}</td>
                <td className="wrap">
                  {c.campaign_id ? names.get(c.campaign_id) ?? "" : "direct"}
                </td>
                <td>
                  <Badge value={c.status} />
                </td>
                <td>{c.outcome}</td>
                <td className="num" title={c.sip_status ?? ""}>{c.sip_status_code}</td>
                <td className="num">{c.duration_sec ?? ""}</td>
                <td>{c.disposition}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        page={page}
        size={PAGE}
        total={total}
        onPage={(p) => setFilter("page", String(p))}
        label="calls"
      />
    </>
  );
}
