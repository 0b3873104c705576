/**
 * ai-switch: exactly one domain bridge reaches `net-ai-tools`, switched in
 * one nftables transaction, with the GPU flushed in between.
 *
 * @module
 */
export * from "./config.ts";
export * from "./exec.ts";
export * from "./gpu.ts";
export * from "./history.ts";
export * from "./lock.ts";
export * from "./nft.ts";
export * from "./ruleset.ts";
export * from "./services.ts";
export * from "./state.ts";
export * from "./status.ts";
export * from "./switch.ts";
export * from "./infra_source.ts";
export { main, parseOptions } from "./cli.ts";
export * from "./sandbox.ts";
