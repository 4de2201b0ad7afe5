import { z } from "zod";
import { authenticate, requireService } from "../_shared/auth.ts";
import { readJson, serve } from "../_shared/http.ts";
import { uuid } from "../_shared/schemas.ts";
import { deliverWebhooks } from "./delivery.ts";

const Body = z.strictObject({
  endpointId: uuid.optional(),
  budgetSec: z.number().min(0.1).max(120).optional(),
  maxLanes: z.number().int().min(1).max(64).optional(),
});

export const handler = serve("webhook-deliver", ["POST"], async (req, ctx) => {
  requireService(await authenticate(req, ctx));
  const body = await readJson(req, Body);
  return await deliverWebhooks(ctx, {
    endpointId: body.endpointId,
    budgetMs: body.budgetSec === undefined ? undefined : body.budgetSec * 1000,
    maxLanes: body.maxLanes,
  });
});
