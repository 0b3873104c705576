/**
 * Schema of `tools.yaml`: the external tools joi may call. Every tool is off
 * unless `enabled: true`; each has a gateway, a transport and a policy.
 *
 * @module
 */
import { z } from "zod";
import {
  hostOrIp,
  identifier,
  isHttpUrl,
  nonEmpty,
  positiveInt,
  regexPattern,
} from "./primitives.ts";
import type { RuleIssue } from "./source.ts";

/** The per-tool policy; keys beyond `max_per_hour` apply to the tools that use them. */
export const ToolPolicySchema = z.object({
  max_per_hour: positiveInt,
  max_results: positiveInt.optional(),
  max_result_length: positiveInt.optional(),
  max_result_size: positiveInt.optional(),
  allowed_domains: z.array(hostOrIp).optional(),
  blocked_query_patterns: z.array(
    z.object({ pattern: regexPattern, reason: nonEmpty }).strict(),
  ).optional(),
  max_resolution: z.string().regex(/^\d{1,5}x\d{1,5}$/, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a resolution as WIDTHxHEIGHT`,
  }).optional(),
  blocked_prompts: z.array(nonEmpty).optional(),
  max_text_length: positiveInt.optional(),
  timeout_seconds: positiveInt.optional(),
  allowed_languages: z.array(nonEmpty).optional(),
}).strict();

/** One tool. */
export const ToolSchema = z.object({
  enabled: z.boolean(),
  gateway: z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a gateway name (lowercase, digits, "-")`,
  }),
  transport: z.enum(["http_proxy", "tool_api"]),
  endpoint: nonEmpty,
  policy: ToolPolicySchema,
}).strict();

/** The whole `tools.yaml`. */
export const ToolsSchema = z.object({
  tools: z.record(identifier("tool name"), ToolSchema),
}).strict();

/** A validated `tools.yaml`. */
export type Tools = z.infer<typeof ToolsSchema>;
/** One validated tool. */
export type Tool = z.infer<typeof ToolSchema>;

/**
 * Single-file rules: an `http_proxy` tool's endpoint is an `http://` URL (the
 * mesh's Squid); a `tool_api` endpoint is an http(s) URL; `web_search` goes
 * through the proxy (joi never reaches the internet itself).
 */
export function toolsRules(t: Tools): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const web = Object.hasOwn(t.tools, "web_search") ? t.tools.web_search : undefined;
  if (web !== undefined && web.transport !== "http_proxy") {
    issues.push({
      path: ["tools", "web_search", "transport"],
      message: `web_search must use transport http_proxy (the mesh's proxy), got ` +
        `${JSON.stringify(web.transport)}: joi never reaches the internet itself`,
    });
  }
  for (const [name, tool] of Object.entries(t.tools)) {
    const path = ["tools", name, "endpoint"];
    if (tool.transport === "http_proxy" && !isHttpUrl(tool.endpoint, ["http:"])) {
      issues.push({
        path,
        message: `endpoint ${JSON.stringify(tool.endpoint)} of an http_proxy tool must be an ` +
          `http:// URL (e.g. "http://10.42.0.1:3128")`,
      });
    } else if (tool.transport === "tool_api" && !isHttpUrl(tool.endpoint)) {
      issues.push({
        path,
        message: `endpoint ${JSON.stringify(tool.endpoint)} of a tool_api tool must be an ` +
          `http:// or https:// URL`,
      });
    }
  }
  return issues;
}
