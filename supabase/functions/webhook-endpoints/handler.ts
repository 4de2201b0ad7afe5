import { z } from "zod";
import { authenticate, requireUser } from "../_shared/auth.ts";
import { json, readJson, readQuery, serve, validate } from "../_shared/http.ts";
import {
  CreateBody,
  createEndpoint,
  DeleteBody,
  deleteEndpoint,
  listEndpoints,
  ReplayBody,
  replayEvents,
} from "./endpoints.ts";
import { resolveWithDns } from "../_shared/webhooks.ts";

export const handler = serve(
  "webhook-endpoints",
  ["GET", "POST", "DELETE"],
  async (req, ctx) => {
    const user = requireUser(await authenticate(req, ctx));
    const owner = { userId: user.userId, claims: user.claims };
    const sql = ctx.sql;
    if (req.method === "GET") return await listEndpoints(sql, owner);
    if (req.method === "DELETE") {
      const body = new URL(req.url).searchParams.has("id")
        ? readQuery(req, DeleteBody)
        : await readJson(req, DeleteBody);
      return await deleteEndpoint(sql, owner, body.id);
    }
    // Validated as sent (one schema or the other), so unknown fields are named, not dropped.
    const raw = await readJson(req, z.unknown());
    if (raw && typeof raw === "object" && "replay" in raw) {
      return await replayEvents(sql, owner, validate(ReplayBody, raw));
    }
    return json(
      await createEndpoint(ctx, owner, validate(CreateBody, raw), resolveWithDns),
      201,
    );
  },
);
