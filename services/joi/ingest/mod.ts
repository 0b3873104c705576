/**
 * openHAB ingest: endpoints, normalizer, batching, pipeline.
 *
 * @module
 */
export * from "./types.ts";
export * from "./errors.ts";
export * from "./untrusted.ts";
export * from "./items.ts";
export * from "./schemas.ts";
export * from "./normalize.ts";
export * from "./openhab_events.ts";
export * from "./event_ids.ts";
export * from "./context.ts";
export * from "./batcher.ts";
export * from "./pipeline.ts";
export * from "./batch.ts";
export * from "./app.ts";
