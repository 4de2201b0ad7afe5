import { z } from "zod";
import { authenticate, requireService } from "../_shared/auth.ts";
import { tick } from "../_shared/campaign.ts";
import { db } from "../_shared/db.ts";
import { readJson, serve } from "../_shared/http.ts";
import { liveKit } from "../_shared/livekit.ts";
import { uuid } from "../_shared/schemas.ts";

const Body = z.strictObject({
  campaignId: uuid.optional(),
  maxCalls: z.number().int().min(1).max(10_000).optional(),
  budgetSec: z.number().min(0.1).max(120).optional(),
});

export const handler = serve("campaign-tick", ["POST"], async (req, { config, log }) => {
  requireService(await authenticate(req, config));
  const body = await readJson(req, Body);
  return await tick(config, db(config.dbUrl), liveKit(config), {
    campaignId: body.campaignId,
    maxCalls: body.maxCalls,
    budgetMs: body.budgetSec === undefined ? undefined : body.budgetSec * 1000,
  }, log);
});
