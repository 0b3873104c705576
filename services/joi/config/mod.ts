/**
 * joi's configuration manager (atomic snapshot, SIGHUP reload).
 *
 * @module
 */
export * from "./manager.ts";
export * from "./passwd.ts";
