/**
 * joi's inbound API (8443).
 *
 * @module
 */
export * from "./app.ts";
export * from "./ledger.ts";
export * from "./schema.ts";
