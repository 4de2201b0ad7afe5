// The LiveKit trunks of a user's numbers, each with whether LiveKit still has it (drift).
// Imports nothing of the carrier side, so list-trunks never loads `twilio`.
import { requireAssistant } from "../_shared/assistants.ts";
import { takeRateLimit } from "../_shared/rate_limit.ts";
import { z } from "zod";
import type { User } from "../_shared/auth.ts";
import { asUser } from "../_shared/db.ts";
import type { Deps } from "../_shared/deps.ts";
import { liveKitError } from "../_shared/livekit.ts";
import type { NumberRow } from "../_shared/provision.ts";
import { uuid } from "../_shared/schemas.ts";

export const TrunkFilter = z.strictObject({
  assistantId: uuid.optional(),
  direction: z.enum(["inbound", "outbound"], { error: "must be inbound or outbound" }).optional(),
});

/** The user's numbers' LiveKit trunks, each with whether LiveKit still has it. */
export async function listTrunks(deps: Deps, user: User, filter: z.infer<typeof TrunkFilter>) {
  const rows = await asUser(deps.sql, user.claims, async (tx) => {
    if (filter.assistantId) {
      await requireAssistant(deps.sql, tx, filter.assistantId);
    }
    return await tx<NumberRow[]>`
      select * from public.phone_number
      where (inbound_trunk_id is not null or outbound_trunk_id is not null)
        ${filter.assistantId ? tx`and assistant_id = ${filter.assistantId}` : tx``}
      order by e164`;
  });
  const want = (d: "inbound" | "outbound") => !filter.direction || filter.direction === d;
  const inboundIds = want("inbound")
    ? rows.flatMap((r) => r.inbound_trunk_id ? [r.inbound_trunk_id] : [])
    : [];
  const outboundIds = want("outbound")
    ? rows.flatMap((r) => r.outbound_trunk_id ? [r.outbound_trunk_id] : [])
    : [];

  // Drift check: which of these trunks LiveKit actually has.
  const present = new Set<string>();
  if (inboundIds.length + outboundIds.length > 0) {
    const per = deps.config.liveKitRequestsPerMinutePerUser;
    await takeRateLimit(deps, user.userId, "livekit", per, "trunk listings and transfers");
    const lk = deps.liveKit;
    try {
      const [inb, outb] = await Promise.all([
        inboundIds.length ? lk.sip.listSipInboundTrunk({ trunkIds: inboundIds }) : [],
        outboundIds.length ? lk.sip.listSipOutboundTrunk({ trunkIds: outboundIds }) : [],
      ]);
      for (const t of [...inb, ...outb]) present.add(t.sipTrunkId);
    } catch (e) {
      throw liveKitError("list trunks", e);
    }
  }
  const trunks = rows.flatMap((r) => {
    const common = {
      e164: r.e164,
      phoneNumberId: r.id,
      assistantId: r.assistant_id,
      status: r.trunk_status,
    };
    const out = [];
    if (want("inbound") && r.inbound_trunk_id) {
      out.push({
        direction: "inbound" as const,
        trunkId: r.inbound_trunk_id,
        name: r.inbound_trunk_name,
        ...common,
        dispatchRuleId: r.dispatch_rule_id,
        inLiveKit: present.has(r.inbound_trunk_id),
      });
    }
    if (want("outbound") && r.outbound_trunk_id) {
      out.push({
        direction: "outbound" as const,
        trunkId: r.outbound_trunk_id,
        name: r.outbound_trunk_name,
        ...common,
        carrierTrunk: r.carrier_trunk,
        inLiveKit: present.has(r.outbound_trunk_id),
      });
    }
    return out;
  });
  return { trunks };
}
