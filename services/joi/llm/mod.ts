/**
 * joi's LLM side: the OpenAI-compatible client with GPU fallback, its call
 * budget, the GPU health monitor and token accounting.
 *
 * @module
 */
export * from "./budget.ts";
export * from "./client.ts";
export * from "./errors.ts";
export * from "./health.ts";
export * from "./tokens.ts";
