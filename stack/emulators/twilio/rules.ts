// Twilio's validation rules and wire formats, as pure functions.

/** A REST error shaped the way Twilio sends it. */
export class TwilioApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "TwilioApiError";
  }

  toBody(): { code: number; message: string; more_info: string; status: number } {
    return {
      code: this.code,
      message: this.message,
      more_info: `https://www.twilio.com/docs/errors/${this.code}`,
      status: this.status,
    };
  }
}

/** Error codes from Twilio's error dictionary that the emulator answers with. */
export const ErrorCode = {
  missingParameter: 20001,
  authenticate: 20003,
  methodNotAllowed: 20004,
  notFound: 20404,
  invalidParameter: 20422,
  tooManyRequests: 20429,
  invalidUrl: 21402,
  invalidMethod: 21403,
  phoneNumberNotAvailable: 21422,
  invalidPageToken: 21481,
  credentialListValidation: 21240,
  credentialListDependencies: 21241,
  credentialValidation: 21243,
  trunkValidation: 21245,
  trunkDependencies: 21247,
  trunkDomainTaken: 21248,
} as const;

export function missingParameter(name: string): TwilioApiError {
  return new TwilioApiError(
    400,
    ErrorCode.missingParameter,
    `Missing required parameter ${name} in the post body`,
  );
}

export function notFound(path: string): TwilioApiError {
  return new TwilioApiError(
    404,
    ErrorCode.notFound,
    `The requested resource ${path} was not found`,
  );
}

const E164 = /^\+[1-9]\d{1,14}$/;

export function isE164(value: string): boolean {
  return E164.test(value);
}

/** Twilio's default friendly name for a number: "(415) 555-0100" for NANP, else E.164. */
export function defaultFriendlyName(phoneNumber: string): string {
  const nanp = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(phoneNumber);
  return nanp ? `(${nanp[1]}) ${nanp[2]}-${nanp[3]}` : phoneNumber;
}

/**
 * The IncomingPhoneNumbers `PhoneNumber` filter: partial numbers match, and `*` stands for
 * any one digit.
 */
export function phoneNumberMatches(filter: string, phoneNumber: string): boolean {
  const pattern = filter.replace(/[^0-9*]/g, "");
  if (pattern === "") return filter.trim() === "";
  const regex = new RegExp(pattern.replaceAll("*", "\\d"));
  return regex.test(phoneNumber.replace(/\D/g, ""));
}

export const MAX_FRIENDLY_NAME = 64;
export const MAX_USERNAME = 32;
export const MIN_PASSWORD = 12;

/** Why a SIP credential password is refused, or null when it is strong enough. */
export function passwordProblem(password: string): string | null {
  const missing: string[] = [];
  if (password.length < MIN_PASSWORD) missing.push(`at least ${MIN_PASSWORD} characters`);
  if (!/\d/.test(password)) missing.push("a digit");
  if (!/[A-Z]/.test(password)) missing.push("an upper case letter");
  if (!/[a-z]/.test(password)) missing.push("a lower case letter");
  if (missing.length === 0) return null;
  return `Password is too weak: it must have ${missing.join(", ")}`;
}

export function usernameProblem(username: string): string | null {
  if (username.length === 0) return "A Username is required";
  if (username.length > MAX_USERNAME) {
    return `Username must be ${MAX_USERNAME} characters or less`;
  }
  if (/[\s:@]/.test(username)) return "Username contains characters not allowed in SIP";
  return null;
}

const TRUNK_DOMAIN = /^([a-z0-9-]+\.)+pstn\.twilio\.com$/;

/** Why a trunk domain name is refused (format only), or null. */
export function trunkDomainProblem(domain: string): string | null {
  if (!TRUNK_DOMAIN.test(domain)) {
    return `DomainName ${domain} is invalid: it may contain letters, digits and - and must end with pstn.twilio.com`;
  }
  const labels = domain.slice(0, -"pstn.twilio.com".length - 1).split(".");
  if (labels.some((l) => l.startsWith("-") || l.endsWith("-") || l.length > 63)) {
    return `DomainName ${domain} is invalid: a label may not start or end with - or exceed 63 characters`;
  }
  return null;
}

/** The parent of a trunk subdomain (`a.b.pstn.twilio.com` -> `b.pstn.twilio.com`), or null. */
export function parentTrunkDomain(domain: string): string | null {
  const head = domain.slice(0, -"pstn.twilio.com".length - 1);
  const dot = head.indexOf(".");
  return dot < 0 ? null : `${head.slice(dot + 1)}.pstn.twilio.com`;
}

/**
 * The trunk domain a termination address names: drops a `sip:` scheme, user part, port and
 * parameters, and maps a localized URI (`x.pstn.ashburn.twilio.com`) to its trunk domain.
 */
export function terminationDomain(address: string): string {
  let host = address.trim().toLowerCase().replace(/^sips?:/, "");
  const at = host.lastIndexOf("@");
  if (at >= 0) host = host.slice(at + 1);
  host = host.split(/[;:/?]/, 1)[0];
  const localized = /^(.+)\.pstn\.[a-z0-9-]+(\.[a-z0-9-]+)?\.twilio\.com$/.exec(host);
  return localized ? `${localized[1]}.pstn.twilio.com` : host;
}

/** A phone number as it appears in a SIP From/To user part, normalized to E.164 when possible. */
export function sipNumber(value: string): string {
  let user = value.trim().replace(/^(sips?|tel):/i, "");
  const at = user.indexOf("@");
  if (at >= 0) user = user.slice(0, at);
  user = user.split(";", 1)[0].replace(/[\s().-]/g, "");
  if (/^\d+$/.test(user)) user = `+${user}`;
  return user;
}

/** `true`/`false` as Twilio accepts them in form bodies, or undefined for anything else. */
export function parseBool(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (v === "true") return true;
  if (v === "false") return false;
  return undefined;
}

export function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

/** The 2010-04-01 API's date format: `Thu, 30 Jul 2015 20:00:00 +0000`. */
export function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

/** The v1 APIs' date format: `2015-07-30T20:00:00Z`. */
export function iso8601(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function newSid(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function sidPattern(prefix: string): RegExp {
  return new RegExp(`^${prefix}[0-9a-fA-F]{32}$`);
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
