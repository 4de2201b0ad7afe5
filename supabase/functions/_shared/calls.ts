// A call's record as the functions read it (public.outbound_calls) and what they show of it.
// Every write to it is a SQL function of 20261202000650_call_transitions.sql.
import type { CallStatus } from "./outcomes.ts";

export interface CallRow {
  id: string;
  owner_id: string;
  assistant_id: string | null;
  phone_number_id: string | null;
  campaign_id: string | null;
  campaign_call_id: string | null;
  attempt: number | null;
  from_number: string;
  to_number: string;
  room_name: string;
  participant_identity: string;
  participant_id: string | null;
  sip_call_id: string | null;
  dispatch_id: string | null;
  outbound_trunk_id: string;
  carrier_trunk: string | null;
  status: CallStatus;
  outcome: string | null;
  sip_status_code: number | null;
  sip_status: string | null;
  disconnect_reason: string | null;
  error: string | null;
  answered_at: Date | null;
  ended_at: Date | null;
  duration_sec: number | null;
  dialed_at: Date | null;
  dial_returned_at: Date | null;
  checked_at: Date | null;
  created_at: Date;
}

export function callView(c: CallRow) {
  return {
    id: c.id,
    roomName: c.room_name,
    participantId: c.participant_id,
    participantIdentity: c.participant_identity,
    sipCallId: c.sip_call_id,
    outboundTrunkId: c.outbound_trunk_id,
    fromNumber: c.from_number,
    toNumber: c.to_number,
    status: c.status,
    outcome: c.outcome,
  };
}
