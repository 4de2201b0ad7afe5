// The event types an endpoint can subscribe to (api.md, webhook-endpoints), as
// internal.webhook_event_types() states them (tests/e2e/rules.test.ts ties the two). A module of
// its own, importing nothing, so the console's browser build can import it too.
export const EVENT_TYPES = [
  "call.started",
  "call.answered",
  "call.ended",
  "call.reported",
  "campaign.started",
  "campaign.paused",
  "campaign.completed",
  "number.ready",
  "number.error",
] as const;
export type EventType = typeof EVENT_TYPES[number];
