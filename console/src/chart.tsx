import type { Row } from "./api.ts";

const COLORS: Record<string, string> = {
  answered: "#2e7d32",
  completed: "#2e7d32",
  busy: "#f9a825",
  no_answer: "#8d6e63",
  unavailable: "#a1887f",
  failed: "#c62828",
};
const color = (o: string) => COLORS[o] ?? "#6a1b9a";
const BINS = 24;

/** Ended calls per time bin, stacked by outcome: plain SVG. */
export function OutcomeChart({ calls }: { calls: Row[] }) {
  if (calls.length === 0) return <p className="muted">No call has ended yet.</p>;
  const times = calls.map((c) => new Date(c.ended_at).getTime());
  const from = Math.min(...times);
  const to = Math.max(...times);
  const span = Math.max(1, to - from);
  const outcomes = [...new Set(calls.map((c) => c.outcome ?? "unknown"))].sort();
  const bins = Array.from({ length: BINS }, () => new Map<string, number>());
  calls.forEach((c, i) => {
    const b = Math.min(BINS - 1, Math.floor(((times[i] - from) / span) * BINS));
    const o = c.outcome ?? "unknown";
    bins[b].set(o, (bins[b].get(o) ?? 0) + 1);
  });
  const max = Math.max(...bins.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  const W = 600;
  const H = 160;
  const bw = W / BINS;
  const fmt = (t: number) => new Date(t).toLocaleTimeString();
  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${W} ${H + 20}`}
        role="img"
        aria-label={`${calls.length} ended calls from ${fmt(from)} to ${fmt(to)}`}
      >
        {bins.map((m, i) => {
          let y = H;
          return outcomes.map((o) => {
            const n = m.get(o) ?? 0;
            if (!n) return null;
            const h = (n / max) * (H - 10);
            y -= h;
            return (
              <rect
                key={`${i}-${o}`}
                x={i * bw + 1}
                y={y}
                width={bw - 2}
                height={h}
                fill={color(o)}
              >
                <title>{`${n} ${o}`}</title>
              </rect>
            );
          });
        })}
        <line x1="0" y1={H} x2={W} y2={H} stroke="currentColor" />
        <text x="0" y={H + 15} fontSize="11" fill="currentColor">{fmt(from)}</text>
        <text x={W} y={H + 15} fontSize="11" textAnchor="end" fill="currentColor">{fmt(to)}</text>
      </svg>
      <figcaption className="legend">
        {outcomes.map((o) => (
          <span key={o} data-outcome={o}>
            <i style={{ background: color(o) }} /> {o.replace("_", " ")}{" "}
            {calls.filter((c) => (c.outcome ?? "unknown") === o).length}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
