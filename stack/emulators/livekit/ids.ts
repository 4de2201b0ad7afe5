/**
 * LiveKit-style resource ids: a prefix plus 12 characters of the base57 alphabet
 * (the shortuuid alphabet LiveKit's guid package uses, without look-alikes).
 */

const ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const ID_LENGTH = 12;

export const ID_PREFIX = {
  trunk: "ST_",
  dispatchRule: "SDR_",
  participant: "PA_",
  room: "RM_",
  agentDispatch: "AD_",
  sipCall: "SCL_",
  sipTransfer: "STR_",
  webhookEvent: "EV_",
  track: "TR_",
} as const;

/** Appends characters drawn from `bytes` (6 bits each, rejection-sampled) until `out` is full. */
function fill(out: string[], bytes: Uint8Array): void {
  for (const b of bytes) {
    if (out.length === ID_LENGTH) return;
    const v = b & 0x3f;
    if (v < ALPHABET.length) out.push(ALPHABET[v]);
  }
}

export function newId(prefix: string): string {
  const out: string[] = [];
  // Each byte is accepted with probability 57/64, so two rounds almost always suffice.
  for (let round = 0; round < 16 && out.length < ID_LENGTH; round++) {
    fill(out, crypto.getRandomValues(new Uint8Array(ID_LENGTH * 2)));
  }
  return prefix + out.join("");
}
