import { useState } from "react";
import { supabase } from "../config.ts";
import { must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { Badge, ErrorBox, fmtTime } from "../ui.tsx";

/** One call: its timeline and what the agent reported. */
export function CallPage({ id }: { id: string }) {
  const [call, setCall] = useState<Row | null>(null);
  const [reports, setReports] = useState<Row[]>([]);
  const [events, setEvents] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>(null);
  useLive(["outbound_calls"], async () => {
    try {
      const [c, r, e] = await Promise.all([
        supabase.from("outbound_calls").select("*").eq("id", id).single(),
        supabase.from("call_reports").select("*").eq("call_id", id).order("created_at"),
        supabase.from("call_events").select("id, event, participant_identity, created_at")
          .eq("call_id", id).order("created_at").limit(100),
      ]);
      setCall(must(c));
      setReports(must(r));
      setEvents(must(e));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [id]);
  if (!call) {
    return (
      <>
        <p>Loading…</p>
        <ErrorBox error={error} />
      </>
    );
  }
  const steps: [string, string, string | null, string?][] = [
    ["recorded", "Call recorded", call.created_at],
    ["dialed", "Dialed", call.dialed_at, `${call.from_number} → ${call.to_number}`],
    ["agent_joined", "Agent joined", call.agent_joined_at, call.agent_identity ?? undefined],
    ["answered", "Answered", call.answered_at],
    [
      "ended",
      "Ended",
      call.ended_at,
      [
        call.outcome,
        call.sip_status_code ? `SIP ${call.sip_status_code} ${call.sip_status ?? ""}` : "",
        call.error,
      ]
        .filter(Boolean).join(" · "),
    ],
    ["report", "Report", call.reported_at, call.disposition ?? undefined],
    ["transfer", "Transferred", call.transferred_at, call.transferred_to ?? undefined],
  ];
  return (
    <>
      <p>
        <a href={call.campaign_id ? `#/calls?campaign=${call.campaign_id}` : "#/calls"}>← Calls</a>
      </p>
      <h1 className="mono">{call.to_number}</h1>
      <p>
        <Badge value={call.status} /> {call.outcome}
        {call.abandoned ? <Badge value="abandoned" /> : null}{" "}
        {call.duration_sec !== null ? `${call.duration_sec} s` : ""}
        {call.campaign_id
          ? (
            <>
              · <a href={`#/campaigns/${call.campaign_id}`}>campaign</a>
            </>
          )
          : null}
      </p>
      <ErrorBox error={error} />
      <section className="card">
        <h2>Timeline</h2>
        <ol className="timeline" aria-label="Timeline">
          {steps.map(([key, label, at, detail]) => (
            <li key={key} data-step={key} className={at ? "done" : "not"}>
              <strong>{label}</strong> <span data-at={at ?? ""}>{at ? fmtTime(at) : "—"}</span>
              {detail ? <div className="muted small wrap">{detail}</div> : null}
            </li>
          ))}
        </ol>
      </section>
      <section className="card" aria-label="Agent's report">
        <h2>Agent's report</h2>
        {call.disposition
          ? (
            <dl className="kv">
              <dt>Disposition</dt>
              <dd data-testid="disposition">{call.disposition}</dd>
              {call.summary
                ? (
                  <>
                    <dt>Summary</dt>
                    <dd className="wrap">{call.summary}</dd>
                  </>
                )
                : null}
              {call.callback_at
                ? (
                  <>
                    <dt>Call back</dt>
                    <dd>{fmtTime(call.callback_at)}</dd>
                  </>
                )
                : null}
              {call.report_data
                ? (
                  <>
                    <dt>Data</dt>
                    <dd>
                      <pre>{JSON.stringify(call.report_data, null, 2)}</pre>
                    </dd>
                  </>
                )
                : null}
            </dl>
          )
          : <p className="muted">The agent has not reported on this call.</p>}
        {reports.length > 1
          ? (
            <ul>
              {reports.map((r) => (
                <li key={r.id}>{fmtTime(r.created_at)}: {r.disposition} ({r.effect})</li>
              ))}
            </ul>
          )
          : null}
      </section>
      {events.length
        ? (
          <section className="card">
            <h2>LiveKit events</h2>
            <ul className="small">
              {events.map((e) => (
                <li key={e.id}>{fmtTime(e.created_at)} {e.event} {e.participant_identity}</li>
              ))}
            </ul>
          </section>
        )
        : null}
    </>
  );
}
