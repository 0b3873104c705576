/**
 * The agent: loop, notices, prompt templates, context window, proactive limits.
 *
 * @module
 */
export * from "./agent.ts";
export * from "./notices.ts";
export * from "./proactive.ts";
export * from "./prompt.ts";
export * from "./window.ts";
