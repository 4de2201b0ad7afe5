import { z } from "zod";
import { authenticate, requireService } from "../_shared/auth.ts";
import { tick } from "./tick.ts";
import { readJson, serve } from "../_shared/http.ts";
import { uuid } from "../_shared/schemas.ts";

const Body = z.strictObject({
  campaignId: uuid.optional(),
  maxCalls: z.number().int().min(1).max(10_000).optional(),
  budgetSec: z.number().min(0.1).max(120).optional(),
});

export const handler = serve("campaign-tick", ["POST"], async (req, ctx) => {
  requireService(await authenticate(req, ctx));
  const body = await readJson(req, Body);
  return await tick(ctx, {
    campaignId: body.campaignId,
    maxCalls: body.maxCalls,
    budgetMs: body.budgetSec === undefined ? undefined : body.budgetSec * 1000,
  });
});
