// The service's check of the upstreams with the functions' own credentials (create-trunks
// `{check: true}`, which `deno task doctor` sends): LiveKit's SIP trunks are listed, and the
// Twilio account's Elastic SIP trunk is looked up with its origination towards LiveKit. Each
// upstream is reported ok, or failed with its error code and HTTP status, or not configured
// with the missing variables. It changes nothing, and no credential is ever part of the answer.
import {
  findAccountTrunk,
  requireOrigination,
  trunkDomain,
  twilioError,
  twilioOf,
} from "../_shared/carrier_trunk.ts";
import type { Deps } from "../_shared/deps.ts";
import { NotConfiguredError, type UpstreamError } from "../_shared/errors.ts";
import { liveKitError } from "../_shared/livekit.ts";

type Failed = {
  status: "failed";
  /** The upstream's error code (LiveKit's Twirp code, Twilio's numeric code) and HTTP status. */
  code: string | number | null;
  httpStatus: number | null;
  message: string;
};

function failed(e: UpstreamError): Failed {
  const details = e.details ?? {};
  return {
    status: "failed",
    code: (details.code as string | number | null | undefined) ?? null,
    httpStatus: (details.status as number | null | undefined) ?? null,
    message: e.message,
  };
}
type NotConfigured = { status: "not_configured"; variables: string[]; message?: string };

export type LiveKitCheck =
  | { status: "ok"; inboundTrunks: number; outboundTrunks: number }
  | Failed
  | NotConfigured;

export type TwilioCheck =
  | {
    status: "ok";
    /** The account's trunk (by its domain), or null until the first number is provisioned. */
    trunk: { sid: string; domain: string } | null;
    domain: string;
    /** Whether the trunk's origination sends inbound calls to LIVEKIT_SIP_HOST. */
    origination: "ok" | "missing" | null;
  }
  | { status: "skipped"; reason: string }
  | Failed
  | NotConfigured;

export interface UpstreamCheck {
  livekit: LiveKitCheck;
  twilio: TwilioCheck;
}

type Upstreams = Pick<Deps, "config" | "liveKit" | "twilio">;

async function checkLiveKit(deps: Upstreams): Promise<LiveKitCheck> {
  if (!deps.config.livekit) {
    return { status: "not_configured", variables: deps.config.missing.livekit };
  }
  try {
    const sip = deps.liveKit.sip;
    const [inbound, outbound] = await Promise.all([
      sip.listSipInboundTrunk(),
      sip.listSipOutboundTrunk(),
    ]);
    return { status: "ok", inboundTrunks: inbound.length, outboundTrunks: outbound.length };
  } catch (e) {
    return failed(liveKitError("list SIP trunks", e));
  }
}

async function checkTwilio(deps: Upstreams): Promise<TwilioCheck> {
  const config = deps.config;
  if (config.staticSip) {
    return { status: "skipped", reason: "static SIP provider mode (SIP_PROVIDER_ADDRESS)" };
  }
  if (!config.twilio) return { status: "not_configured", variables: config.missing.twilio };
  const domain = trunkDomain(config.twilio);
  let sipUrl: string | null = null;
  let originationProblem: NotConfiguredError | null = null;
  try {
    sipUrl = requireOrigination(config);
  } catch (e) {
    if (!(e instanceof NotConfiguredError)) throw e;
    originationProblem = e;
  }
  try {
    const tw = await twilioOf(deps);
    const found = await findAccountTrunk(tw, domain);
    let origination: "ok" | "missing" | null = null;
    if (found && sipUrl) {
      const urls = await tw.trunking.v1.trunks(found.sid).originationUrls.list();
      origination = urls.some((u) => u.enabled && u.sipUrl === sipUrl) ? "ok" : "missing";
    }
    if (originationProblem) {
      return {
        status: "not_configured",
        variables: originationProblem.variables,
        message: originationProblem.message,
      };
    }
    const trunk = found ? { sid: found.sid, domain } : null;
    return { status: "ok", trunk, domain, origination };
  } catch (e) {
    return failed(twilioError("list the account's SIP trunks", e));
  }
}

/** Both upstreams checked side by side with the functions' own configuration. */
export async function checkUpstreams(deps: Upstreams): Promise<UpstreamCheck> {
  const [livekit, twilio] = await Promise.all([checkLiveKit(deps), checkTwilio(deps)]);
  return { livekit, twilio };
}
