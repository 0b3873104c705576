/**
 * joi's memory: per-channel encrypted, hash-chained stores.
 *
 * @module
 */
export * from "./chain.ts";
export * from "./crypto.ts";
export * from "./heads.ts";
export * from "./layout.ts";
export * from "./store.ts";
export * from "./verify.ts";
export * from "./stores.ts";
