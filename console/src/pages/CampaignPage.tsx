import { type DragEvent, useState } from "react";
import { supabase } from "../config.ts";
import { invoke, must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { ActionButton, Badge, ErrorBox, fmtTime, Pager, pct, ProgressBar } from "../ui.tsx";
import { OutcomeChart } from "../chart.tsx";
import { finished } from "./Campaigns.tsx";

const COUNTS: [string, string][] = [
  ["queued", "Queued"],
  ["dialing", "Dialing"],
  ["in_progress", "Talking"],
  ["completed", "Done"],
  ["busy", "Busy"],
  ["no_answer", "No answer"],
  ["retrying", "Retrying"],
  ["skipped", "Skipped"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];
const CONTACTS_PAGE = 50;
/** The chart reads at most this many of the latest ended calls. */
const CHART_CALLS = 5000;

/** Where the owner may move a campaign from each status (the database's transitions). */
const CONTROLS: Record<string, [string, string][]> = {
  draft: [["running", "Start"], ["scheduled", "Schedule"]],
  scheduled: [["running", "Start now"], ["paused", "Pause"]],
  running: [["paused", "Pause"]],
  paused: [["running", "Resume"]],
  completed: [["running", "Run again"]],
  cancelled: [],
};

export function CampaignPage({ id }: { id: string }) {
  const [campaign, setCampaign] = useState<Row | null>(null);
  const [progress, setProgress] = useState<Row | null>(null);
  const [rates, setRates] = useState<{ ended: number; answered: number } | null>(null);
  const [chartCalls, setChartCalls] = useState<Row[]>([]);
  const [next, setNext] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>(null);
  useLive(["campaigns", "campaign_calls", "outbound_calls"], async () => {
    try {
      const calls = () =>
        supabase.from("outbound_calls").select("id", { count: "exact", head: true })
          .eq("campaign_id", id).not("ended_at", "is", null);
      const [c, p, ended, answered, chart, n] = await Promise.all([
        supabase.from("campaigns").select("*").eq("id", id).single(),
        supabase.from("campaign_progress").select("*").eq("campaign_id", id).single(),
        calls(),
        calls().not("answered_at", "is", null),
        supabase.from("outbound_calls").select("ended_at, outcome").eq("campaign_id", id)
          .not("ended_at", "is", null).order("ended_at", { ascending: false }).limit(CHART_CALLS),
        supabase.from("campaign_calls").select(
          "id, e164, name, attempts, next_attempt_at, timezone, last_outcome",
        )
          .eq("campaign_id", id).eq("status", "queued").order("next_attempt_at").order("id").limit(
            10,
          ),
      ]);
      setCampaign(must(c));
      setProgress(must(p));
      must(ended);
      must(answered);
      setRates({ ended: ended.count ?? 0, answered: answered.count ?? 0 });
      setChartCalls(must(chart));
      setNext(must(n));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [id]);
  if (!campaign || !progress) {
    return (
      <>
        <p>Loading…</p>
        <ErrorBox error={error} />
      </>
    );
  }
  const setStatus = async (status: string) => {
    must(await supabase.from("campaigns").update({ status }).eq("id", id));
  };
  const effective = progress.concurrency_limit ?? campaign.max_concurrent;
  const overCap = Number(progress.abandonment_rate) > Number(campaign.abandon_cap);
  return (
    <>
      <div className="heading">
        <h1 className="wrap">{campaign.name}</h1>
        <span className="buttons">
          {(CONTROLS[campaign.status] ?? []).map(([to, label]) => (
            <ActionButton
              key={to}
              className={to === "running" ? "primary" : ""}
              onClick={() => setStatus(to)}
            >
              {label}
            </ActionButton>
          ))}
          {campaign.status !== "cancelled" && campaign.status !== "completed"
            ? (
              <ActionButton
                className="danger"
                confirm="Cancel this campaign? Queued contacts end cancelled."
                onClick={() => setStatus("cancelled")}
              >
                Cancel campaign
              </ActionButton>
            )
            : null}
          <a className="button" href={`#/campaigns/${id}/edit`}>Edit</a>
          <a className="button" href={`#/calls?campaign=${id}`}>Calls</a>
        </span>
      </div>
      <ErrorBox error={error} />
      <p>
        <Badge value={campaign.status} />{" "}
        <span className="wrap" data-testid="status-reason">{campaign.status_reason}</span>
      </p>
      <ProgressBar done={finished(progress)} total={progress.total} label="Progress" />
      <dl className="counts" aria-label="Contacts by state">
        {COUNTS.map(([k, label]) => (
          <div key={k} data-count={k}>
            <dt>{label}</dt>
            <dd>{progress[k]}</dd>
          </div>
        ))}
        <div data-count="total">
          <dt>Total</dt>
          <dd>{progress.total}</dd>
        </div>
      </dl>
      <dl className="counts" aria-label="Rates">
        <div data-rate="answer">
          <dt>Answer rate</dt>
          <dd>{rates && rates.ended ? pct(rates.answered / rates.ended) : "–"}</dd>
          <span className="muted small">
            {rates?.answered ?? 0} of {rates?.ended ?? 0} ended calls
          </span>
        </div>
        <div data-rate="abandonment" className={overCap ? "bad" : ""}>
          <dt>Abandonment (30 days)</dt>
          <dd>{pct(progress.abandonment_rate)}</dd>
          <span className="muted small">
            cap {pct(campaign.abandon_cap)}; {progress.abandoned_30d} of {progress.answered_30d}
            {" "}
            answered
          </span>
        </div>
        <div data-rate="concurrency">
          <dt>Concurrency</dt>
          <dd>{effective}</dd>
          <span className="muted small">
            {progress.concurrency_limit ? `lowered from ${campaign.max_concurrent}` : "as set"}
          </span>
        </div>
        <div data-rate="throttle">
          <dt>Throttle</dt>
          <dd className="wrap small">{progress.throttle_reason ?? "none"}</dd>
        </div>
      </dl>
      <section className="card">
        <h2>Outcomes over time</h2>
        <OutcomeChart calls={chartCalls} />
        {chartCalls.length === CHART_CALLS
          ? <p className="muted small">The latest {CHART_CALLS} ended calls.</p>
          : null}
      </section>
      <section className="card">
        <h2>Next attempts</h2>
        {next.length === 0
          ? <p className="muted">No contact is waiting.</p>
          : (
            <div className="scroll">
              <table>
                <thead>
                  <tr>
                    <th>Callee</th>
                    <th>Attempts</th>
                    <th>Next attempt</th>
                    <th>Callee's local time</th>
                  </tr>
                </thead>
                <tbody>
                  {next.map((c) => (
                    <tr key={c.id}>
                      <td className="wrap">
                        <span className="mono">{c.e164}</span> {c.name}
                      </td>
                      <td className="num">{c.attempts}</td>
                      <td>{fmtTime(c.next_attempt_at)}</td>
                      <td>
                        {c.timezone ? fmtTime(c.next_attempt_at, c.timezone) : ""}{" "}
                        <span className="muted small">{c.timezone}</span>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
      </section>
      <Import campaignId={id} />
      <Contacts campaignId={id} />
    </>
  );
}

/** Contacts from a CSV file, dropped or chosen, with the import's report. */
function Import({ campaignId }: { campaignId: string }) {
  const [report, setReport] = useState<Row | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [over, setOver] = useState(false);
  const [page, setPage] = useState(0);
  const upload = async (file: File | undefined) => {
    if (!file) return;
    setBusy(true);
    setError(null);
    setReport(null);
    try {
      const form = new FormData();
      form.append("file", file);
      form.append("campaignId", campaignId);
      setReport(await invoke("import-contacts", { body: form }));
      setPage(0);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    void upload(e.dataTransfer.files[0]);
  };
  const rejected: Row[] = report?.rejected ?? [];
  return (
    <section className="card" aria-label="Import contacts">
      <h2>Import contacts</h2>
      <div
        className={`drop ${over ? "over" : ""}`}
        data-testid="drop-zone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={drop}
      >
        <p>
          Drop a CSV file here, or{" "}
          <label className="link">
            choose one
            <input
              type="file"
              accept=".csv,text/csv"
              className="visually-hidden"
              data-testid="csv-input"
              onChange={(e) => void upload(e.target.files?.[0])}
            />
          </label>
          . The header names the columns: <code>phone</code> (or <code>phone_number</code>,{" "}
          <code>number</code>, <code>e164</code>), optional <code>name</code> and{" "}
          <code>timezone</code>; other columns become variables for the agent.
        </p>
        {busy ? <p>Importing…</p> : null}
      </div>
      <ErrorBox error={error} />
      {report
        ? (
          <div data-testid="import-report">
            <dl className="counts">
              <div data-report="added">
                <dt>Added</dt>
                <dd>{report.added}</dd>
              </div>
              <div data-report="duplicates">
                <dt>Duplicates</dt>
                <dd>{report.duplicates}</dd>
              </div>
              <div data-report="skipped">
                <dt>Skipped</dt>
                <dd>{report.skipped}</dd>
              </div>
              <div data-report="rejected">
                <dt>Rejected</dt>
                <dd>{report.rejectedCount ?? rejected.length}</dd>
              </div>
            </dl>
            {rejected.length
              ? (
                <>
                  <div className="scroll">
                    <table aria-label="Rejected rows">
                      <thead>
                        <tr>
                          <th>Row</th>
                          <th>Number</th>
                          <th>Reason</th>
                        </tr>
                      </thead>
                      <tbody>
                        {rejected.slice(page * 20, page * 20 + 20).map((r) => (
                          <tr key={`${r.row}-${r.phoneNumber}`}>
                            <td className="num">{r.row}</td>
                            <td className="mono wrap">{r.phoneNumber}</td>
                            <td className="wrap">{r.reason}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                  <Pager
                    page={page}
                    size={20}
                    total={rejected.length}
                    onPage={setPage}
                    label="rejected rows listed"
                  />
                </>
              )
              : null}
          </div>
        )
        : null}
    </section>
  );
}

function Contacts({ campaignId }: { campaignId: string }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(0);
  const [status, setStatus] = useState("");
  const [error, setError] = useState<unknown>(null);
  useLive(["campaign_calls"], async () => {
    try {
      let q = supabase.from("campaign_calls").select(
        "id, e164, name, status, attempts, last_outcome, last_error, next_attempt_at",
        { count: "exact" },
      ).eq("campaign_id", campaignId);
      if (status) q = q.eq("status", status);
      const r = await q.order("created_at").order("id")
        .range(page * CONTACTS_PAGE, page * CONTACTS_PAGE + CONTACTS_PAGE - 1);
      setRows(must(r));
      setTotal(r.count ?? 0);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [campaignId, page, status]);
  return (
    <section className="card" aria-label="Contacts">
      <div className="heading">
        <h2>Contacts</h2>
        <label className="inline">
          State{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value);
              setPage(0);
            }}
          >
            <option value="">all</option>
            {[
              "queued",
              "dialing",
              "in_progress",
              "completed",
              "busy",
              "no_answer",
              "failed",
              "skipped",
              "cancelled",
            ]
              .map((s) => <option key={s} value={s}>{s.replace("_", " ")}</option>)}
          </select>
        </label>
      </div>
      <ErrorBox error={error} />
      <div className="scroll">
        <table>
          <thead>
            <tr>
              <th>Callee</th>
              <th>State</th>
              <th>Attempts</th>
              <th>Last outcome</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id}>
                <td className="wrap">
                  <span className="mono">{c.e164}</span> {c.name}
                </td>
                <td>
                  <Badge value={c.status} />
                </td>
                <td className="num">{c.attempts}</td>
                <td className="wrap">
                  {c.last_outcome}
                  {c.last_error ? <div className="muted small">{c.last_error}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager page={page} size={CONTACTS_PAGE} total={total} onPage={setPage} label="contacts" />
    </section>
  );
}
