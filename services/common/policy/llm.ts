/**
 * Schema of `llm.yaml`: the local LLM behind Ollama's OpenAI-compatible API.
 *
 * Two trust rules are enforced at load: the endpoint is a loopback or private
 * address (joi is offline), and no configured model belongs to a banned family.
 *
 * @module
 */
import { z } from "zod";
import { inCidr, isIPv4, nonEmpty, nonNegativeInt, positiveInt } from "./primitives.ts";
import type { RuleIssue } from "./source.ts";

/** Families that must always be banned, whatever the file says. */
export const REQUIRED_BANNED_FAMILIES: readonly string[] = ["qwen", "deepseek"];

/** The whole `llm.yaml`. */
export const LlmSchema = z.object({
  endpoint: nonEmpty,
  primary_model: nonEmpty,
  fallback_models: z.array(nonEmpty).default([]),
  banned_families: z.array(z.string().min(1)).min(1),
  timeout_seconds: positiveInt,
  max_retries: nonNegativeInt.max(10),
  context_tokens: positiveInt,
  temperature: z.number().min(0).max(2),
}).strict();

/** A validated `llm.yaml`. */
export type Llm = z.infer<typeof LlmSchema>;

const PRIVATE_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/**
 * True when `url` is an http(s) URL whose host is a loopback or private
 * address literal (or `localhost`). Other host names are refused: a name can
 * resolve anywhere.
 */
export function isLocalEndpoint(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return false;
  const host = u.hostname.toLowerCase();
  if (host === "localhost") return true;
  if (isIPv4(host)) return PRIVATE_V4.some((c) => inCidr(host, c));
  if (host.startsWith("[") && host.endsWith("]")) {
    const v6 = host.slice(1, -1);
    return v6 === "::1" || /^f[cd][0-9a-f]{0,2}:/.test(v6);
  }
  return false;
}

/** The banned family a model name contains (case-insensitive), if any. */
export function bannedFamilyOf(model: string, banned: readonly string[]): string | undefined {
  const m = model.toLowerCase();
  return banned.find((f) => m.includes(f.toLowerCase()));
}

/**
 * Single-file rules: local endpoint; `banned_families` contains at least
 * qwen and deepseek; neither the primary nor a fallback model is banned.
 */
export function llmRules(l: Llm): RuleIssue[] {
  const issues: RuleIssue[] = [];
  if (!isLocalEndpoint(l.endpoint)) {
    issues.push({
      path: ["endpoint"],
      message: `${JSON.stringify(l.endpoint)} is not a loopback or private address URL: ` +
        `joi is offline (e.g. "http://127.0.0.1:11434/v1")`,
    });
  }
  const lower = new Set(l.banned_families.map((f) => f.toLowerCase()));
  const missing = REQUIRED_BANNED_FAMILIES.filter((f) => !lower.has(f));
  if (missing.length > 0) {
    issues.push({
      path: ["banned_families"],
      message: `must include ${missing.map((f) => JSON.stringify(f)).join(" and ")} ` +
        `(the model trust policy of the architecture)`,
    });
  }
  const models: { model: string; path: (string | number)[] }[] = [
    { model: l.primary_model, path: ["primary_model"] },
    ...l.fallback_models.map((model, i) => ({ model, path: ["fallback_models", i] })),
  ];
  for (const { model, path } of models) {
    const family = bannedFamilyOf(model, l.banned_families);
    if (family !== undefined) {
      issues.push({
        path,
        message: `model ${JSON.stringify(model)} belongs to the banned family ${
          JSON.stringify(family)
        }`,
      });
    }
  }
  return issues;
}
