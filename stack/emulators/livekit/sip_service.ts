/**
 * livekit.SIP over Twirp: trunks and dispatch rules (stored here, validated by
 * sip_validation.ts) and outbound calls (simulated by calls.ts).
 */
import {
  CreateSIPDispatchRuleRequest,
  CreateSIPInboundTrunkRequest,
  CreateSIPOutboundTrunkRequest,
  CreateSIPParticipantRequest,
  DeleteSIPDispatchRuleRequest,
  DeleteSIPTrunkRequest,
  GetSIPInboundTrunkRequest,
  GetSIPInboundTrunkResponse,
  GetSIPOutboundTrunkRequest,
  GetSIPOutboundTrunkResponse,
  ListSIPDispatchRuleRequest,
  ListSIPDispatchRuleResponse,
  ListSIPInboundTrunkRequest,
  ListSIPInboundTrunkResponse,
  ListSIPOutboundTrunkRequest,
  ListSIPOutboundTrunkResponse,
  ListSIPTrunkRequest,
  ListSIPTrunkResponse,
  type Pagination,
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  type SIPInboundTrunkUpdate,
  SIPOutboundTrunkInfo,
  type SIPOutboundTrunkUpdate,
  SIPParticipantInfo,
  SIPTransferReason,
  SIPTransferStatus,
  SIPTransport,
  SIPTrunkInfo,
  SIPTrunkInfo_TrunkKind,
  TransferSIPParticipantRequest,
  TransferSIPParticipantResponse,
  UpdateSIPDispatchRuleRequest,
  UpdateSIPInboundTrunkRequest,
  UpdateSIPOutboundTrunkRequest,
} from "@livekit/protocol";
import { canAdminRoom, canAdminSip, canCallSip } from "./auth.ts";
import { DEFAULT_RINGING_TIMEOUT_S, MAX_CALL_DURATION_S } from "./call_outcomes.ts";
import type { Calls } from "./calls.ts";
import { ID_PREFIX, newId } from "./ids.ts";
import type { Rooms } from "./rooms.ts";
import {
  applyDispatchRuleUpdate,
  applyInboundUpdate,
  applyOutboundUpdate,
  createParticipantProblem,
  dispatchRuleConflict,
  dispatchRuleProblem,
  dispatchRuleUpdateProblem,
  durationSeconds,
  inboundMatchesNumbers,
  inboundTrunkConflict,
  inboundTrunkProblem,
  inboundUpdateProblem,
  outboundMatchesNumbers,
  outboundTrunkProblem,
  outboundUpdateProblem,
  type Problem,
  requestUriProblem,
  ruleMatchesTrunks,
  transferProblem,
} from "./sip_validation.ts";
import { type CallContext, type JsonValue, method, type Service, TwirpError } from "./twirp.ts";

export const TRUNK_NOT_FOUND = "requested sip trunk does not exist";
export const RULE_NOT_FOUND = "requested sip dispatch rule does not exist";
export const PERMISSION_DENIED = "permissions denied";

/** Trunks and dispatch rules, keyed by id. */
export class SipStore {
  inbound = new Map<string, SIPInboundTrunkInfo>();
  outbound = new Map<string, SIPOutboundTrunkInfo>();
  rules = new Map<string, SIPDispatchRuleInfo>();

  clear(): void {
    this.inbound.clear();
    this.outbound.clear();
    this.rules.clear();
  }

  snapshot(): {
    inboundTrunks: JsonValue[];
    outboundTrunks: JsonValue[];
    dispatchRules: JsonValue[];
  } {
    return {
      inboundTrunks: byId(this.inbound).map((t) => t.toJson()),
      outboundTrunks: byId(this.outbound).map((t) => t.toJson()),
      dispatchRules: byId(this.rules).map((r) => r.toJson()),
    };
  }
}

export interface SipServiceDeps {
  store: SipStore;
  rooms: Rooms;
  calls: Calls;
  maxConcurrentCalls(): number;
}

/** Store order, as LiveKit's Redis store lists: sorted by id. */
function byId<T>(map: Map<string, T>): T[] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

function page<T>(items: T[], id: (t: T) => string, p: Pagination | undefined): T[] {
  let out = items;
  if (p?.afterId) out = out.filter((t) => id(t) > p.afterId);
  const limit = p && p.limit > 0 ? p.limit : 1000;
  return out.slice(0, limit);
}

function invalid(msg: string): TwirpError {
  return new TwirpError("invalid_argument", msg);
}

function requireSipAdmin(ctx: CallContext): void {
  if (!canAdminSip(ctx.grants)) throw new TwirpError("unauthenticated", PERMISSION_DENIED);
}

/**
 * livekit-server 1.13.5 answers psrpc errors that a handler returns unwrapped with this prefix on
 * their message (and their own code): "twirp error unknown: participant does not exist".
 */
export const PSRPC_PREFIX = "twirp error unknown: ";

/**
 * The order in which LiveKit validates a new trunk or rule against the stored ones it lists:
 * iters.MultiIter alternates the stored list (sorted by id) with the new item, so the new one
 * comes second (livekit pkg/service/sip.go ListSIPInboundTrunk / ListSIPDispatchRule with `add`).
 * A conflict names the later of the two: "<new>" when the clash is with a stored item listed
 * after the first.
 */
function withNew<T>(stored: T[], candidate: T): T[] {
  return stored.length === 0 ? [candidate] : [stored[0], candidate, ...stored.slice(1)];
}

/** What differs between updating an inbound and an outbound trunk. */
interface TrunkRules<Info, Update> {
  trunks: Map<string, Info>;
  problem(info: Info): Problem | null;
  updateProblem(update: Update): string | null;
  apply(current: Info, update: Update): { trunk: Info } | { problem: Problem };
  /** Conflicts with other trunks, checked on the result (inbound numbers). */
  check?(info: Info): void;
}

type UpdateAction<Info, Update> =
  | { case: "replace"; value: Info }
  | { case: "update"; value: Update }
  | { case: undefined; value?: undefined };

/** UpdateSIPInboundTrunk / UpdateSIPOutboundTrunk: the replace and update-fields forms. */
function updateTrunk<
  Info extends { sipTrunkId: string; clone(): Info },
  Update,
>(sipTrunkId: string, action: UpdateAction<Info, Update>, rules: TrunkRules<Info, Update>): Info {
  if (sipTrunkId === "") throw invalid("trunk id must be set");
  if (action.case === undefined) throw invalid("missing or unsupported update action");
  if (action.case === "replace") {
    if (action.value.sipTrunkId !== "" && action.value.sipTrunkId !== sipTrunkId) {
      throw invalid("trunk id in the info must be empty or match the id in the update");
    }
    const problem = rules.problem(action.value);
    if (problem) throw invalid(problem.msg);
  } else {
    const problem = rules.updateProblem(action.value);
    if (problem) throw invalid(problem);
  }
  const current = rules.trunks.get(sipTrunkId);
  if (!current) throw new TwirpError("not_found", TRUNK_NOT_FOUND);
  let info: Info;
  if (action.case === "replace") {
    info = action.value.clone();
    info.sipTrunkId = current.sipTrunkId;
  } else {
    // LiveKit returns these validation errors unwrapped, so they surface as `unknown` (500), or
    // with their own code and the psrpc prefix when they carry one.
    const applied = rules.apply(current, action.value);
    if ("problem" in applied) {
      const { code, msg } = applied.problem;
      throw code ? new TwirpError(code, PSRPC_PREFIX + msg) : new TwirpError("unknown", msg);
    }
    info = applied.trunk;
  }
  rules.check?.(info);
  // livekit-server 1.13.5 sets neither created_at nor updated_at (both null in its answers).
  rules.trunks.set(info.sipTrunkId, info);
  return info;
}

function transportName(t: SIPTransport): string {
  switch (t) {
    case SIPTransport.SIP_TRANSPORT_UDP:
      return "udp";
    case SIPTransport.SIP_TRANSPORT_TCP:
      return "tcp";
    case SIPTransport.SIP_TRANSPORT_TLS:
      return "tls";
    default:
      return "auto";
  }
}

export function sipService(deps: SipServiceDeps): Service {
  const { store } = deps;

  const inboundConflicts = (candidate: SIPInboundTrunkInfo, replaceId?: string) => {
    const existing = byId(store.inbound).filter((t) => inboundMatchesNumbers(t, candidate.numbers));
    // On update LiveKit swaps the stored trunk for the updated one only where the filter kept it.
    const list = replaceId
      ? existing.map((t) => (t.sipTrunkId === replaceId ? candidate : t))
      : withNew(existing, candidate);
    const err = inboundTrunkConflict(list);
    if (err) throw err;
  };

  const ruleConflicts = (
    candidate: SIPDispatchRuleInfo,
    trunkIds: string[],
    replaceId?: string,
  ) => {
    const existing = byId(store.rules).filter((r) => ruleMatchesTrunks(r, trunkIds));
    const list = replaceId
      ? existing.map((r) => (r.sipDispatchRuleId === replaceId ? candidate : r))
      : withNew(existing, candidate);
    const err = dispatchRuleConflict(list);
    if (err) throw err;
  };

  return {
    methods: {
      CreateSIPInboundTrunk: method(CreateSIPInboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (!req.trunk) throw invalid("missing trunk");
        if (req.trunk.sipTrunkId !== "") throw invalid("trunk id must not be set");
        const problem = inboundTrunkProblem(req.trunk);
        if (problem) throw invalid(problem.msg);
        const info = req.trunk.clone();
        inboundConflicts(info);
        info.sipTrunkId = newId(ID_PREFIX.trunk);
        store.inbound.set(info.sipTrunkId, info);
        return info;
      }),

      CreateSIPOutboundTrunk: method(CreateSIPOutboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (!req.trunk) throw invalid("missing trunk");
        if (req.trunk.sipTrunkId !== "") throw invalid("trunk id must not be set");
        const problem = outboundTrunkProblem(req.trunk);
        if (problem) throw invalid(problem.msg);
        const info = req.trunk.clone();
        info.sipTrunkId = newId(ID_PREFIX.trunk);
        store.outbound.set(info.sipTrunkId, info);
        return info;
      }),

      UpdateSIPInboundTrunk: method(UpdateSIPInboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        return updateTrunk<SIPInboundTrunkInfo, SIPInboundTrunkUpdate>(req.sipTrunkId, req.action, {
          trunks: store.inbound,
          problem: inboundTrunkProblem,
          updateProblem: inboundUpdateProblem,
          apply: applyInboundUpdate,
          check: (info) => inboundConflicts(info, req.sipTrunkId),
        });
      }),

      UpdateSIPOutboundTrunk: method(UpdateSIPOutboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        return updateTrunk<SIPOutboundTrunkInfo, SIPOutboundTrunkUpdate>(
          req.sipTrunkId,
          req.action,
          {
            trunks: store.outbound,
            problem: outboundTrunkProblem,
            updateProblem: outboundUpdateProblem,
            apply: applyOutboundUpdate,
          },
        );
      }),

      GetSIPInboundTrunk: method(GetSIPInboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (req.sipTrunkId === "") throw invalid("trunk ID is required");
        const trunk = store.inbound.get(req.sipTrunkId);
        if (!trunk) throw new TwirpError("not_found", TRUNK_NOT_FOUND);
        return new GetSIPInboundTrunkResponse({ trunk });
      }),

      GetSIPOutboundTrunk: method(GetSIPOutboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (req.sipTrunkId === "") throw invalid("trunk ID is required");
        const trunk = store.outbound.get(req.sipTrunkId);
        if (!trunk) throw new TwirpError("not_found", TRUNK_NOT_FOUND);
        return new GetSIPOutboundTrunkResponse({ trunk });
      }),

      ListSIPInboundTrunk: method(ListSIPInboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        const items = byId(store.inbound).filter((t) =>
          (req.trunkIds.length === 0 || req.trunkIds.includes(t.sipTrunkId)) &&
          inboundMatchesNumbers(t, req.numbers)
        );
        return new ListSIPInboundTrunkResponse({
          items: page(items, (t) => t.sipTrunkId, req.page),
        });
      }),

      ListSIPOutboundTrunk: method(ListSIPOutboundTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        const items = byId(store.outbound).filter((t) =>
          (req.trunkIds.length === 0 || req.trunkIds.includes(t.sipTrunkId)) &&
          outboundMatchesNumbers(t, req.numbers)
        );
        return new ListSIPOutboundTrunkResponse({
          items: page(items, (t) => t.sipTrunkId, req.page),
        });
      }),

      ListSIPTrunk: method(ListSIPTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        const inbound = byId(store.inbound).map((t) =>
          new SIPTrunkInfo({
            sipTrunkId: t.sipTrunkId,
            kind: SIPTrunkInfo_TrunkKind.TRUNK_INBOUND,
            name: t.name,
            metadata: t.metadata,
            outboundNumber: t.numbers[0] ?? "",
            inboundAddresses: t.allowedAddresses,
            inboundNumbers: t.allowedNumbers,
            inboundUsername: t.authUsername,
            inboundPassword: t.authPassword,
          })
        );
        const outbound = byId(store.outbound).map((t) =>
          new SIPTrunkInfo({
            sipTrunkId: t.sipTrunkId,
            kind: SIPTrunkInfo_TrunkKind.TRUNK_OUTBOUND,
            name: t.name,
            metadata: t.metadata,
            outboundAddress: t.address,
            transport: t.transport,
            outboundNumber: t.numbers[0] ?? "",
            outboundUsername: t.authUsername,
            outboundPassword: t.authPassword,
          })
        );
        const items = [...inbound, ...outbound].sort((
          a,
          b,
        ) => (a.sipTrunkId < b.sipTrunkId ? -1 : 1));
        return new ListSIPTrunkResponse({ items: page(items, (t) => t.sipTrunkId, req.page) });
      }),

      DeleteSIPTrunk: method(DeleteSIPTrunkRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (req.sipTrunkId === "") throw invalid("trunk ID is required");
        // Like the open-source server, deleting an unknown trunk succeeds.
        store.inbound.delete(req.sipTrunkId);
        store.outbound.delete(req.sipTrunkId);
        return new SIPTrunkInfo({ sipTrunkId: req.sipTrunkId });
      }),

      CreateSIPDispatchRule: method(CreateSIPDispatchRuleRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        let info: SIPDispatchRuleInfo;
        if (req.dispatchRule) {
          if (req.dispatchRule.sipDispatchRuleId !== "") throw invalid("rule id must not be set");
          info = req.dispatchRule.clone();
        } else {
          // The SDK sends the deprecated top-level fields.
          info = new SIPDispatchRuleInfo({
            rule: req.rule,
            trunkIds: req.trunkIds,
            inboundNumbers: req.inboundNumbers,
            hidePhoneNumber: req.hidePhoneNumber,
            name: req.name,
            metadata: req.metadata,
            attributes: req.attributes,
            roomPreset: req.roomPreset,
            roomConfig: req.roomConfig,
          });
        }
        const problem = dispatchRuleProblem(info);
        if (problem) throw invalid(problem);
        ruleConflicts(info, req.trunkIds);
        info.sipDispatchRuleId = newId(ID_PREFIX.dispatchRule);
        store.rules.set(info.sipDispatchRuleId, info);
        return info;
      }),

      UpdateSIPDispatchRule: method(UpdateSIPDispatchRuleRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (req.sipDispatchRuleId === "") throw invalid("rule id must be set");
        const action = req.action;
        if (action.case === undefined) throw invalid("missing or unsupported update action");
        if (action.case === "replace") {
          if (
            action.value.sipDispatchRuleId !== "" &&
            action.value.sipDispatchRuleId !== req.sipDispatchRuleId
          ) {
            throw invalid("rule id in the info must be empty or match the id in the update");
          }
          const problem = dispatchRuleProblem(action.value);
          if (problem) throw invalid(problem);
        } else {
          const problem = dispatchRuleUpdateProblem(action.value);
          if (problem) throw invalid(problem);
        }
        const current = store.rules.get(req.sipDispatchRuleId);
        if (!current) throw new TwirpError("not_found", RULE_NOT_FOUND);
        let info: SIPDispatchRuleInfo;
        if (action.case === "replace") {
          info = action.value.clone();
          info.sipDispatchRuleId = current.sipDispatchRuleId;
        } else {
          const applied = applyDispatchRuleUpdate(current, action.value);
          if ("problem" in applied) throw new TwirpError("unknown", applied.problem);
          info = applied.rule;
        }
        ruleConflicts(info, info.trunkIds, req.sipDispatchRuleId);
        store.rules.set(info.sipDispatchRuleId, info);
        return info;
      }),

      ListSIPDispatchRule: method(ListSIPDispatchRuleRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        const items = byId(store.rules).filter((r) =>
          (req.dispatchRuleIds.length === 0 || req.dispatchRuleIds.includes(r.sipDispatchRuleId)) &&
          ruleMatchesTrunks(r, req.trunkIds)
        );
        return new ListSIPDispatchRuleResponse({
          items: page(items, (r) => r.sipDispatchRuleId, req.page),
        });
      }),

      DeleteSIPDispatchRule: method(DeleteSIPDispatchRuleRequest, (req, ctx) => {
        requireSipAdmin(ctx);
        if (req.sipDispatchRuleId === "") throw invalid("dispatch rule ID is required");
        const info = store.rules.get(req.sipDispatchRuleId);
        if (!info) throw new TwirpError("not_found", RULE_NOT_FOUND);
        store.rules.delete(req.sipDispatchRuleId);
        return info;
      }),

      CreateSIPParticipant: method(CreateSIPParticipantRequest, async (req, ctx) => {
        if (!canCallSip(ctx.grants)) throw new TwirpError("unauthenticated", PERMISSION_DENIED);
        const problem = createParticipantProblem(req);
        if (problem) throw invalid(problem);

        let trunk: SIPOutboundTrunkInfo | undefined;
        if (req.sipTrunkId !== "") {
          trunk = store.outbound.get(req.sipTrunkId);
          if (!trunk) throw new TwirpError("not_found", TRUNK_NOT_FOUND);
        }
        const address = trunk?.address ?? req.trunk?.hostname ?? "";
        const transport = trunk?.transport ?? req.trunk?.transport ??
          SIPTransport.SIP_TRANSPORT_AUTO;
        let fromNumber = req.sipNumber;
        if (fromNumber === "") {
          if (!trunk || trunk.numbers.length === 0) {
            throw new TwirpError("failed_precondition", "no numbers on outbound trunk");
          }
          fromNumber = trunk.numbers[Math.floor(Math.random() * trunk.numbers.length)];
        }
        // LiveKit adds the "+" Twilio requires.
        if (address.endsWith("twilio.com") && !fromNumber.startsWith("+")) {
          fromNumber = "+" + fromNumber;
        }
        const uriProblem = requestUriProblem(address);
        if (uriProblem) throw invalid(uriProblem);

        const cap = deps.maxConcurrentCalls();
        if (cap > 0 && deps.calls.activeCount() >= cap) {
          throw new TwirpError("resource_exhausted", "concurrent SIP call limit exceeded");
        }

        const sipCallId = newId(ID_PREFIX.sipCall);
        const attributes: Record<string, string> = {
          ...req.participantAttributes,
          "sip.callID": sipCallId,
          "sip.trunkID": req.sipTrunkId,
        };
        if (!req.hidePhoneNumber) {
          attributes["sip.phoneNumber"] = req.sipCallTo;
          attributes["sip.hostname"] = address;
          attributes["sip.trunkPhoneNumber"] = fromNumber;
        }
        const ringing = durationSeconds(req.ringingTimeout);
        const maxDuration = durationSeconds(req.maxCallDuration);
        const identity = req.participantIdentity || `sip_${req.sipCallTo}`;
        const joined = await deps.calls.dial(sipCallId, {
          room: req.roomName,
          identity,
          name: req.participantName,
          metadata: req.participantMetadata,
          attributes,
          trunkId: req.sipTrunkId,
          address,
          transport: transportName(transport),
          username: trunk?.authUsername ?? req.trunk?.authUsername ?? "",
          password: trunk?.authPassword ?? req.trunk?.authPassword ?? "",
          fromNumber,
          toNumber: req.sipCallTo,
          ringingTimeoutS: ringing > 0 ? ringing : DEFAULT_RINGING_TIMEOUT_S,
          maxCallDurationS: maxDuration > 0 && maxDuration < MAX_CALL_DURATION_S
            ? maxDuration
            : MAX_CALL_DURATION_S,
          waitUntilAnswered: req.waitUntilAnswered,
          requestId: ctx.requestId,
          region: ctx.region,
          receivedAt: ctx.receivedAt,
        });
        return new SIPParticipantInfo({
          participantId: joined.participantId,
          participantIdentity: joined.identity,
          roomName: req.roomName,
          sipCallId,
        });
      }),

      // livekit-server checks the grants (sip.call, and room admin on this room: any token
      // with those grants, an agent's room token included), finds the participant and its
      // SIP session, then waits for the SIP service's result (up to the ringing timeout).
      TransferSIPParticipant: method(TransferSIPParticipantRequest, async (req, ctx) => {
        if (req.roomName === "") throw invalid("Missing room name");
        if (req.participantIdentity === "") throw invalid("Missing participant identity");
        if (!canCallSip(ctx.grants) || !canAdminRoom(ctx.grants, req.roomName)) {
          throw new TwirpError("unauthenticated", PERMISSION_DENIED);
        }
        const problem = transferProblem(req);
        if (problem) throw invalid(problem);
        const participant = deps.rooms.participant(req.roomName, req.participantIdentity);
        if (!participant) {
          throw new TwirpError("not_found", `${PSRPC_PREFIX}participant does not exist`);
        }
        const sipCallId = participant.attributes["sip.callID"];
        if (!sipCallId) throw invalid("no SIP session associated with participant");
        await deps.calls.transfer(sipCallId, req.transferTo);
        return new TransferSIPParticipantResponse({
          transferId: newId(ID_PREFIX.sipTransfer),
          status: SIPTransferStatus.STS_TRANSFER_SUCCESSFUL,
          reason: SIPTransferReason.STR_COMPLETED,
        });
      }),
    },
  };
}
