import { type FormEvent, useEffect, useState } from "react";
import { supabase } from "../config.ts";
import { invoke, must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { ActionButton, Badge, ErrorBox, fmtTime, Pager } from "../ui.tsx";
import { EVENT_TYPES } from "../../../supabase/functions/_shared/event_types.ts";

const PAGE = 25;

export function Webhooks() {
  const [endpoints, setEndpoints] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<Row | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const load = async () => {
    try {
      // The table holds what the function's list lacks (why an endpoint was disabled).
      const r = must(await supabase.from("webhook_endpoints").select("*").order("created_at"));
      setEndpoints(r);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), []);
  return (
    <>
      <h1>Webhooks</h1>
      <NewEndpoint
        onCreated={async (e) => {
          setCreated(e);
          await load();
        }}
      />
      {created
        ? (
          <div className="card secret" role="status" data-testid="secret-once">
            <p>
              The signing secret of{" "}
              <span className="mono wrap">{created.url}</span>. It is shown only now: keep it to
              verify deliveries.
            </p>
            <code className="wrap" data-testid="secret">{created.secret}</code>
            <button type="button" onClick={() => setCreated(null)}>I have saved it</button>
          </div>
        )
        : null}
      <ErrorBox error={error} />
      <div className="scroll">
        <table aria-label="Endpoints">
          <thead>
            <tr>
              <th>URL</th>
              <th>Events</th>
              <th>State</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {endpoints.map((e) => (
              <tr key={e.id} data-endpoint={e.id}>
                <td className="mono wrap">{e.url}</td>
                <td className="small wrap">
                  {e.events.length === EVENT_TYPES.length ? "all" : e.events.join(", ")}
                </td>
                <td>
                  <Badge value={e.enabled ? "enabled" : "disabled"} />
                  {e.disabled_reason
                    ? <div className="muted small wrap">{e.disabled_reason}</div>
                    : null}
                </td>
                <td className="actions">
                  <button type="button" onClick={() => setSelected(e.id)}>Deliveries</button>
                  {e.enabled ? null : (
                    <ActionButton
                      onClick={async () => {
                        must(
                          await supabase.from("webhook_endpoints").update({ enabled: true }).eq(
                            "id",
                            e.id,
                          ),
                        );
                        await load();
                      }}
                    >
                      Enable
                    </ActionButton>
                  )}
                  <ActionButton
                    className="danger"
                    confirm="Delete this endpoint and its queue?"
                    onClick={async () => {
                      await invoke("webhook-endpoints", { method: "DELETE", body: { id: e.id } });
                      if (selected === e.id) setSelected(null);
                      await load();
                    }}
                  >
                    Delete
                  </ActionButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {endpoints.length === 0 && !error ? <p className="muted">No endpoint yet.</p> : null}
      {selected ? <Deliveries endpointId={selected} key={selected} /> : null}
    </>
  );
}

function NewEndpoint({ onCreated }: { onCreated: (e: Row) => Promise<void> }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState<string[]>([...EVENT_TYPES]);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await invoke("webhook-endpoints", { body: { url, events } });
      setUrl("");
      await onCreated(r.endpoint);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-label="New endpoint">
      <div className="row-form">
        <label className="grow">
          URL
          <input
            required
            type="url"
            placeholder="https://crm.example.com/hooks/voice"
            value={url}
            onChange={(e) => setUrl(e.target.value)}
          />
        </label>
        <button type="submit" className="primary" disabled={events.length === 0}>
          Add endpoint
        </button>
      </div>
      <fieldset className="checks" aria-label="Events">
        {EVENT_TYPES.map((t) => (
          <label key={t} className="check">
            <input
              type="checkbox"
              value={t}
              checked={events.includes(t)}
              onChange={(e) =>
                setEvents(e.target.checked ? [...events, t] : events.filter((x) => x !== t))}
            />
            {t}
          </label>
        ))}
      </fieldset>
      <ErrorBox error={error} />
    </form>
  );
}

function Deliveries({ endpointId }: { endpointId: string }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(0);
  const [error, setError] = useState<unknown>(null);
  useLive(["webhook_deliveries"], async () => {
    try {
      const r = await supabase.from("webhook_deliveries").select(
        "id, event_id, event_type, sequence, replay, status, attempt_count, last_status_code, last_error, next_attempt_at, delivered_at, created_at",
        { count: "exact" },
      ).eq("endpoint_id", endpointId).order("id", { ascending: false })
        .range(page * PAGE, page * PAGE + PAGE - 1);
      setRows(must(r));
      setTotal(r.count ?? 0);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [endpointId, page]);
  return (
    <section className="card" aria-label="Deliveries">
      <h2>Deliveries</h2>
      <Replay endpointId={endpointId} />
      <ErrorBox error={error} />
      <div className="scroll">
        <table>
          <thead>
            <tr>
              <th>Event</th>
              <th>State</th>
              <th>Attempts</th>
              <th>Last answer</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id}>
                <td className="wrap">
                  {d.event_type} <span className="muted small mono">{d.event_id}</span>
                  {d.replay ? <Badge value="replay" /> : null}
                </td>
                <td>
                  <Badge value={d.status} />
                </td>
                <td className="num">{d.attempt_count}</td>
                <td className="wrap small">
                  {d.last_status_code ?? ""} {d.last_error ?? ""}
                  {d.status === "pending" && d.attempt_count > 0
                    ? <div className="muted">next {fmtTime(d.next_attempt_at)}</div>
                    : null}
                </td>
                <td>{fmtTime(d.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager page={page} size={PAGE} total={total} onPage={setPage} label="deliveries" />
    </section>
  );
}

function Replay({ endpointId }: { endpointId: string }) {
  const [since, setSince] = useState("");
  const [campaignId, setCampaignId] = useState("");
  const [callId, setCallId] = useState("");
  const [campaigns, setCampaigns] = useState<Row[]>([]);
  const [result, setResult] = useState<Row | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    supabase.from("campaigns").select("id, name").order("name").then((r) => {
      if (r.error) setError(r.error);
      else setCampaigns(r.data);
    });
  }, []);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    const replay: Row = {};
    if (since) replay.since = new Date(since).toISOString();
    if (campaignId) replay.campaignId = campaignId;
    if (callId) replay.callId = callId.trim();
    try {
      setResult(await invoke("webhook-endpoints", { body: { id: endpointId, replay } }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="row-form" onSubmit={submit} aria-label="Replay">
      <label>
        Since
        <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
      </label>
      <label>
        Campaign
        <select value={campaignId} onChange={(e) => setCampaignId(e.target.value)}>
          <option value="">any</option>
          {campaigns.map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
        </select>
      </label>
      <label>
        Call id
        <input value={callId} onChange={(e) => setCallId(e.target.value)} />
      </label>
      <button type="submit">Replay</button>
      {result
        ? (
          <span role="status" data-testid="replay-result">
            {result.queued}{" "}
            events queued again{result.more ? " (more: continue with a later since)" : ""}
          </span>
        )
        : null}
      <ErrorBox error={error} />
    </form>
  );
}
