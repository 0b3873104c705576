/**
 * The guard: flood protection, content rules, critical templates, acknowledgement.
 *
 * @module
 */
export * from "./device_types.ts";
export * from "./flood.ts";
export * from "./content_rules.ts";
export * from "./templates.ts";
export * from "./acknowledge.ts";
