/**
 * Web search, the first external tool: a request to an allowed search API
 * host, sent **only** through the configured HTTP proxy (the mesh's Squid in
 * production; joi itself never reaches the internet). The query is checked
 * against the blocked patterns first; the URL's host against the domain
 * allowlist; the results are sanitized and wrapped as search results.
 *
 * @module
 */
import type { Tool } from "../../common/policy/mod.ts";
import type { ToolRunner } from "./router.ts";
import { ToolError } from "./router.ts";
import { normalizeForRules } from "../guard/normalize.ts";
import { type RawResult, wrapSearchResults } from "./sanitize.ts";

/** Options of {@link webSearchRunner}. */
export interface WebSearchOptions {
  /** Builds the search URL for a query (default: DuckDuckGo's instant answer API). */
  searchUrl?: (query: string) => string;
  /** fetch through a proxy client, for tests. Default: `fetch` with `Deno.createHttpClient({proxy})`. */
  fetchVia?: (proxyUrl: string) => typeof fetch;
  /** Request timeout, ms (default 15 000). */
  timeoutMs?: number;
}

/** DuckDuckGo's instant answer API. */
export function duckDuckGoUrl(query: string): string {
  return `https://api.duckduckgo.com/?q=${
    encodeURIComponent(query)
  }&format=json&no_html=1&skip_disambig=1`;
}

function proxiedFetch(proxyUrl: string): typeof fetch {
  const client = Deno.createHttpClient({ proxy: { url: proxyUrl } });
  return (input, init) => fetch(input, { ...init, client });
}

/** Checks a query against `blocked_query_patterns`; throws when one matches. */
export function checkQuery(tool: Tool, query: string): void {
  if (query.trim() === "" || query.length > 300) {
    throw new ToolError("blocked_query", "web_search: the query must be 1-300 characters");
  }
  const q = normalizeForRules(query);
  for (const p of tool.policy.blocked_query_patterns ?? []) {
    if (new RegExp(p.pattern, "iu").test(q)) {
      throw new ToolError("blocked_query", `web_search: ${p.reason}`);
    }
  }
}

/** Parses DuckDuckGo's JSON into results. */
export function parseDuckDuckGo(json: unknown): RawResult[] {
  const out: RawResult[] = [];
  const j = json as {
    Heading?: string;
    AbstractText?: string;
    AbstractSource?: string;
    RelatedTopics?: { Text?: string; FirstURL?: string; Topics?: { Text?: string }[] }[];
  };
  if (j.AbstractText) {
    out.push({ title: j.Heading ?? "", text: j.AbstractText, source: j.AbstractSource });
  }
  for (const t of j.RelatedTopics ?? []) {
    if (t.Text) out.push({ title: "", text: t.Text });
    for (const s of t.Topics ?? []) if (s.Text) out.push({ title: "", text: s.Text });
  }
  return out;
}

/** The `web_search` runner. */
export function webSearchRunner(o: WebSearchOptions = {}): ToolRunner {
  const build = o.searchUrl ?? duckDuckGoUrl;
  const via = o.fetchVia ?? proxiedFetch;
  return async (tool, params) => {
    const query = typeof params.query === "string" ? params.query : "";
    checkQuery(tool, query);
    const url = new URL(build(query));
    const allowed = tool.policy.allowed_domains ?? [];
    if (!allowed.includes(url.hostname)) {
      throw new ToolError(
        "blocked_domain",
        `web_search: ${url.hostname} is not in allowed_domains`,
      );
    }
    const res = await via(tool.endpoint)(url, {
      signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`search API answered HTTP ${res.status}`);
    }
    const text = await res.text();
    if (text.length > 1_000_000) throw new Error("search API answer too large");
    const results = parseDuckDuckGo(JSON.parse(text));
    return wrapSearchResults(
      results,
      tool.policy.max_result_length ?? 500,
      tool.policy.max_results ?? 5,
    );
  };
}
