/**
 * External tools: router, sanitizing, web search through the proxy.
 *
 * @module
 */
export * from "./router.ts";
export * from "./sanitize.ts";
export * from "./web_search.ts";
