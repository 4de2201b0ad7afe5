// Field schemas shared by the functions' request validation.
import { z } from "zod";

export const uuid = z.uuid({ message: "must be a UUID" });
export const e164 = z.string().regex(
  /^\+[1-9][0-9]{6,14}$/,
  "must be an E.164 number like +15551234567",
);
export const phoneSid = z.string().regex(
  /^PN[0-9a-fA-F]{32}$/,
  "must be a Twilio number SID (PN + 32 hex)",
);
