import { useState } from "react";
import { supabase } from "../config.ts";
import { must, type Row } from "../api.ts";
import { useLive } from "../live.ts";
import { ActionButton, ErrorBox, fmtTime, pct } from "../ui.tsx";

/** Each number's health, and clearing a rest (a column its owner may set to null). */
export function Health() {
  const [numbers, setNumbers] = useState<Row[]>([]);
  const [health, setHealth] = useState<Map<string, Row>>(new Map());
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    try {
      const [n, h] = await Promise.all([
        supabase.from("phone_number").select(
          "id, e164, label, trunk_status, rest_until, rest_reason",
        )
          .order("e164"),
        supabase.from("phone_number_health").select("*"),
      ]);
      setNumbers(must(n));
      setHealth(new Map(must(h).map((r: Row) => [r.phone_number_id, r])));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useLive(["phone_number", "phone_number_health"], load, []);
  return (
    <>
      <h1>Number health</h1>
      <p className="muted">Over each number's last 50 calls ended within 24 hours.</p>
      <ErrorBox error={error} />
      <div className="scroll">
        <table aria-label="Number health">
          <thead>
            <tr>
              <th>Number</th>
              <th>Calls</th>
              <th>Answer rate</th>
              <th>Short calls</th>
              <th>Rejections</th>
              <th>Rested until</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {numbers.map((n) => {
              const h = health.get(n.id);
              const resting = n.rest_until && new Date(n.rest_until) > new Date();
              return (
                <tr key={n.id} data-number={n.e164}>
                  <td className="wrap">
                    <span className="mono">{n.e164}</span> {n.label}
                  </td>
                  <td className="num" data-col="calls">{h?.calls ?? 0}</td>
                  <td className="num" data-col="answer_rate">
                    {pct(h?.answer_rate)}{" "}
                    <span className="muted small">{h?.answered ?? 0} answered</span>
                  </td>
                  <td className="num" data-col="short_calls">
                    {h?.short_calls ?? 0} <span className="muted small">{pct(h?.short_share)}</span>
                  </td>
                  <td className="num" data-col="carrier_rejections">
                    {h?.carrier_rejections ?? 0}{" "}
                    <span className="muted small">{pct(h?.rejection_share)}</span>
                  </td>
                  <td data-col="rest_until">
                    {n.rest_until ? fmtTime(n.rest_until) : ""}
                    {n.rest_reason ? <div className="muted small wrap">{n.rest_reason}</div> : null}
                    {h?.rests ? <div className="muted small">{h.rests} rests</div> : null}
                  </td>
                  <td>
                    {resting
                      ? (
                        <ActionButton
                          onClick={async () => {
                            must(
                              await supabase.from("phone_number").update({ rest_until: null })
                                .eq("id", n.id),
                            );
                            await load();
                          }}
                        >
                          Clear rest
                        </ActionButton>
                      )
                      : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {numbers.length === 0 && !error ? <p className="muted">No number yet.</p> : null}
    </>
  );
}
