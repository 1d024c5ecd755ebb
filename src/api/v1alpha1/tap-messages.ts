// What a tap asks proxies for and the events they send back (contracts.md, section Tap): schemas checked on the config
// stream, and types the control plane's API and the dashboard share. Needs valibot only (the dashboard bundles it).

import * as v from 'valibot';

const str = v.string();

/** What a tap asks a proxy for (the query of GET /api/v1/tap; see src/telemetry/tap.ts). */
export const TapFilter = v.object({
  service: v.optional(v.pipe(str, v.minLength(1), v.maxLength(253))),
  path: v.optional(v.pipe(str, v.maxLength(1024))),
  method: v.optional(v.pipe(str, v.maxLength(20))),
  status: v.optional(v.pipe(str, v.regex(/^(?:[1-5]\d\d|[1-5]xx)$/))),
  direction: v.optional(v.picklist(['inbound', 'outbound'])),
});
export type TapFilter = v.InferOutput<typeof TapFilter>;

/** Tap events cut their path and authority here, so that a batch stays far below MAX_PROXY_MESSAGE_BYTES. */
export const TAP_MAX_TEXT = 2048;
/** At most this many events in one tap-events message. */
export const TAP_MAX_BATCH = 100;

const text = (max: number) => v.pipe(str, v.maxLength(max));
const maybe = (max: number) => v.nullable(text(max));
/** One request as tap shows it (contracts.md, section Tap). */
export const TapEvent = v.object({
  time: v.number(),
  proxy: text(200),
  direction: text(16),
  sourceService: maybe(253),
  destinationService: maybe(253),
  sourceIdentity: maybe(TAP_MAX_TEXT),
  destinationIdentity: maybe(TAP_MAX_TEXT),
  method: text(64),
  authority: text(TAP_MAX_TEXT),
  path: text(TAP_MAX_TEXT),
  status: v.number(),
  grpcStatus: maybe(16),
  latencyMs: v.number(),
  route: maybe(600),
  endpoint: maybe(300),
  retries: v.number(),
  error: maybe(64),
  traceId: maybe(64),
});
export type TapEvent = v.InferOutput<typeof TapEvent>;
