import { type ReactNode, useState } from "react";
import { message } from "./api.ts";

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return <p className="error" role="alert">{message(error)}</p>;
}

export function Badge({ value, title }: { value: string; title?: string }) {
  return <span className={`badge badge-${value}`} title={title}>{value.replace(/_/g, " ")}</span>;
}

/** Page through `total` rows, `size` at a time. */
export function Pager(
  { page, size, total, onPage, label }: {
    page: number;
    size: number;
    total: number;
    onPage: (p: number) => void;
    label: string;
  },
) {
  const pages = Math.max(1, Math.ceil(total / size));
  if (total <= size && page === 0) {
    return <p className="muted pager-info">{total} {label}</p>;
  }
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={page === 0} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span className="pager-info">
        {total === 0 ? 0 : page * size + 1}-{Math.min(total, (page + 1) * size)} of {total} {label}
      </span>
      <button type="button" disabled={page + 1 >= pages} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

export function ProgressBar(
  { done, total, label }: { done: number; total: number; label: string },
) {
  const pct = total === 0 ? 0 : Math.round((done / total) * 100);
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={total}
      aria-valuenow={done}
      title={`${done} of ${total}`}
    >
      <div className="progress-fill" style={{ width: `${pct}%` }} />
      <span className="progress-text">{done} / {total}</span>
    </div>
  );
}

/** A button that runs an async action, shows it is busy, and shows its error beside it. */
export function ActionButton(
  { onClick, children, className, confirm, ...rest }: {
    onClick: () => Promise<unknown>;
    children: ReactNode;
    className?: string;
    confirm?: string;
    "data-testid"?: string;
  },
) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [asking, setAsking] = useState(false);
  const run = async () => {
    setBusy(true);
    setError(null);
    setAsking(false);
    try {
      await onClick();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="action">
      {asking
        ? (
          <span className="confirm" role="group" aria-label="Confirm">
            <span>{confirm}</span>
            <button type="button" className="danger" onClick={run}>Yes</button>
            <button type="button" onClick={() => setAsking(false)}>No</button>
          </span>
        )
        : (
          <button
            type="button"
            className={className}
            disabled={busy}
            onClick={() => (confirm ? setAsking(true) : run())}
            {...rest}
          >
            {busy ? "…" : children}
          </button>
        )}
      {error ? <span className="error" role="alert">{message(error)}</span> : null}
    </span>
  );
}

export const fmtTime = (iso: string | null | undefined, timeZone?: string) =>
  iso
    ? new Date(iso).toLocaleString(undefined, {
      dateStyle: "medium",
      timeStyle: "medium",
      ...(timeZone ? { timeZone } : {}),
    })
    : "";

export const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : `${(Number(x) * 100).toFixed(1)} %`;
