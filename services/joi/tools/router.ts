/**
 * The tool router: reads tools.yaml, refuses disabled or unknown tools,
 * rate-limits each tool (`policy.max_per_hour`), runs the tool and hands back
 * sanitized results only. Every call is logged (tool, outcome; never the query).
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { Tool, Tools } from "../../common/policy/mod.ts";
import { RateLimiter } from "../../common/rate_limit.ts";

/** A refused or failed tool call. */
export class ToolError extends Error {
  /** Why. */
  readonly code:
    | "unknown"
    | "disabled"
    | "rate_limited"
    | "blocked_query"
    | "blocked_domain"
    | "failed";
  /** Creates the error. */
  constructor(code: ToolError["code"], message: string) {
    super(message);
    this.name = "ToolError";
    this.code = code;
  }
}

/** Runs one tool with its validated config. Returns text already sanitized and wrapped. */
export type ToolRunner = (tool: Tool, params: Record<string, unknown>) => Promise<string>;

/** Options of {@link ToolRouter}. */
export interface ToolRouterOptions {
  /** tools.yaml. */
  tools: Tools;
  /** Runners by tool name (e.g. `web_search`). */
  runners: Record<string, ToolRunner>;
  /** Logger. */
  log: Logger;
  /** Clock. */
  now?: () => number;
}

/** Routes tool calls through the policy. */
export class ToolRouter {
  #o: ToolRouterOptions;
  #limiters = new Map<string, RateLimiter>();

  /** Creates the router. */
  constructor(o: ToolRouterOptions) {
    this.#o = o;
    for (const [name, tool] of Object.entries(o.tools.tools)) {
      this.#limiters.set(
        name,
        new RateLimiter({ per_hour: tool.policy.max_per_hour }, { now: o.now }),
      );
    }
  }

  /** Whether `name` is enabled and has a runner. */
  enabled(name: string): boolean {
    const tool = Object.hasOwn(this.#o.tools.tools, name) ? this.#o.tools.tools[name] : undefined;
    return tool?.enabled === true && Object.hasOwn(this.#o.runners, name);
  }

  /** Calls `name`; throws {@link ToolError} when refused. */
  async call(name: string, params: Record<string, unknown>): Promise<string> {
    const log = this.#o.log;
    const tool = Object.hasOwn(this.#o.tools.tools, name) ? this.#o.tools.tools[name] : undefined;
    if (!tool) throw new ToolError("unknown", `tool ${name} is not configured in tools.yaml`);
    if (!tool.enabled) {
      log.info("tool_refused", { tool: name, reason: "disabled" });
      throw new ToolError("disabled", `tool ${name} is disabled in tools.yaml`);
    }
    const runner = Object.hasOwn(this.#o.runners, name) ? this.#o.runners[name] : undefined;
    if (!runner) throw new ToolError("unknown", `tool ${name} has no implementation in joi`);
    const v = this.#limiters.get(name)!.check(name);
    if (!v.allowed) {
      log.warn("tool_refused", {
        tool: name,
        reason: "rate_limited",
        retry_after: v.retryAfterSeconds,
      });
      throw new ToolError(
        "rate_limited",
        `tool ${name}: over ${tool.policy.max_per_hour} calls per hour`,
      );
    }
    try {
      const out = await runner(tool, params);
      log.info("tool_used", { tool: name, chars: out.length });
      return out;
    } catch (e) {
      if (e instanceof ToolError) {
        const level = e.code === "blocked_query" || e.code === "blocked_domain"
          ? "security"
          : "warn";
        log[level]("tool_refused", { tool: name, reason: e.code });
        throw e;
      }
      log.warn("tool_failed", { tool: name, error: (e as Error).message });
      throw new ToolError("failed", `tool ${name} failed`);
    }
  }
}
