import { type FormEvent, useState } from "react";
import { supabase } from "../config.ts";
import { invoke, must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { ActionButton, Badge, ErrorBox } from "../ui.tsx";

/** Assistants, each with its numbers and their provisioning status; assign, move, release, retry. */
export function Assistants() {
  const [assistants, setAssistants] = useState<Row[]>([]);
  const [numbers, setNumbers] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    try {
      const [a, n] = await Promise.all([
        supabase.from("assistant").select("*").order("created_at"),
        supabase.from("phone_number").select("*").order("e164"),
      ]);
      setAssistants(must(a));
      setNumbers(must(n));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useLive(["phone_number"], load, []);
  const unassigned = numbers.filter((n) => !n.assistant_id);
  return (
    <>
      <h1>Assistants &amp; numbers</h1>
      <ErrorBox error={error} />
      <NewAssistant onDone={load} />
      {assistants.length === 0 ? <p className="muted">No assistant yet.</p> : null}
      {assistants.map((a) => (
        <section key={a.id} className="card" aria-label={`Assistant ${a.name}`}>
          <h2 className="wrap">
            {a.name} <span className="muted small">agent {a.agent_name}</span>
          </h2>
          <NumberTable
            numbers={numbers.filter((n) =>
              n.assistant_id === a.id
            )}
            assistants={assistants}
            onDone={load}
          />
          <AssignNumber assistantId={a.id} onDone={load} />
        </section>
      ))}
      {unassigned.length
        ? (
          <section className="card" aria-label="Numbers without an assistant">
            <h2>Numbers without an assistant</h2>
            <NumberTable numbers={unassigned} assistants={assistants} onDone={load} />
          </section>
        )
        : null}
    </>
  );
}

function NewAssistant({ onDone }: { onDone: () => Promise<void> }) {
  const [name, setName] = useState("");
  const [agentName, setAgentName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      must(await supabase.from("assistant").insert({ name, agent_name: agentName }));
      setName("");
      setAgentName("");
      setError(null);
      await onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card row-form" onSubmit={submit} aria-label="New assistant">
      <label>
        Assistant name
        <input required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Agent name (LiveKit)
        <input
          required
          pattern="[A-Za-z0-9_.\-]{1,128}"
          value={agentName}
          title="letters, digits, _ . - (up to 128)"
          onChange={(e) => setAgentName(e.target.value)}
        />
      </label>
      <button type="submit" className="primary">Add assistant</button>
      <ErrorBox error={error} />
    </form>
  );
}

function AssignNumber(
  { assistantId, onDone }: { assistantId: string; onDone: () => Promise<void> },
) {
  const [phone, setPhone] = useState("");
  const [label, setLabel] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await invoke("map-number", {
        body: { phoneNumber: phone, assistantId, ...(label ? { label } : {}) },
      });
      setPhone("");
      setLabel("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
      await onDone();
    }
  };
  return (
    <form className="row-form" onSubmit={submit} aria-label="Assign a number">
      <label>
        Number (E.164)
        <input
          required
          placeholder="+14155550100"
          value={phone}
          onChange={(e) => setPhone(e.target.value)}
        />
      </label>
      <label>
        Label
        <input maxLength={200} value={label} onChange={(e) => setLabel(e.target.value)} />
      </label>
      <button type="submit" disabled={busy}>{busy ? "Assigning…" : "Assign number"}</button>
      <ErrorBox error={error} />
    </form>
  );
}

function NumberTable(
  { numbers, assistants, onDone }: {
    numbers: Row[];
    assistants: Row[];
    onDone: () => Promise<void>;
  },
) {
  if (numbers.length === 0) return <p className="muted">No number.</p>;
  return (
    <div className="scroll">
      <table>
        <thead>
          <tr>
            <th>Number</th>
            <th>Label</th>
            <th>Status</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {numbers.map((n) => (
            <tr key={n.id} data-number={n.e164}>
              <td className="mono">{n.e164}</td>
              <td className="wrap">{n.label}</td>
              <td>
                <Badge value={n.trunk_status} />
                {n.trunk_error
                  ? <div className="error small" data-testid="trunk-error">{n.trunk_error}</div>
                  : null}
              </td>
              <td>
                <NumberActions n={n} assistants={assistants} onDone={onDone} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NumberActions(
  { n, assistants, onDone }: { n: Row; assistants: Row[]; onDone: () => Promise<void> },
) {
  const [target, setTarget] = useState("");
  const [conflict, setConflict] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const others = assistants.filter((a) => a.id !== n.assistant_id);
  const move = async (force: boolean) => {
    setError(null);
    try {
      await invoke("map-number", {
        body: { phoneNumber: n.e164, assistantId: target, ...(force ? { force: true } : {}) },
      });
      setConflict(null);
      setTarget("");
    } catch (e) {
      // map-number asks for a confirmation (force) before moving an assigned number.
      if ((e as { code?: string }).code === "conflict" && !force) setConflict((e as Error).message);
      else setError(e);
    }
    await onDone();
  };
  return (
    <div className="actions">
      {n.trunk_status === "error"
        ? (
          <ActionButton
            data-testid="retry"
            onClick={async () => {
              try {
                await invoke("create-trunks", { body: { phoneNumberId: n.id } });
              } finally {
                await onDone();
              }
            }}
          >
            Retry
          </ActionButton>
        )
        : null}
      {others.length
        ? (
          <span className="inline">
            <select
              aria-label={`Move ${n.e164} to`}
              value={target}
              onChange={(e) => setTarget(e.target.value)}
            >
              <option value="">{n.assistant_id ? "Move to…" : "Assign to…"}</option>
              {others.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
            </select>
            <button type="button" disabled={!target} onClick={() => move(false)}>
              {n.assistant_id ? "Move" : "Assign"}
            </button>
          </span>
        )
        : null}
      {conflict
        ? (
          <span className="confirm" role="group" aria-label="Confirm move">
            <span>{conflict}</span>
            <button type="button" className="danger" onClick={() => move(true)}>Move it</button>
            <button type="button" onClick={() => setConflict(null)}>Cancel</button>
          </span>
        )
        : null}
      {n.assistant_id
        ? (
          <ActionButton
            className="danger"
            confirm={`Release ${n.e164}? Its trunks are removed.`}
            onClick={async () => {
              try {
                await invoke("map-number", { body: { phoneNumber: n.e164, assistantId: null } });
              } finally {
                await onDone();
              }
            }}
          >
            Release
          </ActionButton>
        )
        : null}
      <ErrorBox error={error} />
    </div>
  );
}
