/**
 * What joi accepts back from a retrieval: the outcome type the agent sees and
 * the validation of retrieve's output document. Every field of every result
 * is checked, the kernel identity it ran under must be the channel user's
 * uid, and each result must come from a folder that user may read; anything
 * else is refused as a whole (and logged as a security event by the caller).
 *
 * @module
 */
import { isUuidV4, type Result } from "./retrieve_protocol.ts";

/**
 * One result as joi hands it to the agent: retrieve's {@link Result}, except
 * that `accessed_as` (retrieve's kernel identity `uid:<n>`) has been checked
 * against the channel user and replaced by that user's name.
 */
export type RetrievedDocument = Result;

/** Why a retrieval gave nothing. */
export type RetrieveFailure =
  | "denied"
  | "invalid_query"
  | "timeout"
  | "failed"
  | "invalid_output"
  | "output_too_large";

/** What a retrieval returns. Errors carry a reason code, never retrieve's stderr. */
export type RetrieveOutcome =
  | { status: "ok"; results: RetrievedDocument[]; truncated: boolean }
  | { status: "error"; results: []; reason: RetrieveFailure };

/**
 * Validates retrieve's stdout for `user` (whose uid is `uid`): the envelope,
 * every field of every result, the kernel identity it ran under, and that
 * each result comes from a folder `user` may read (`readable`). Returns the
 * outcome with `accessed_as` set to the user name, or a problem description.
 */
export function validateRetrieveOutput(
  stdout: Uint8Array,
  user: string,
  uid: number,
  readable: string[],
): RetrieveOutcome | string {
  let out: unknown;
  try {
    out = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(stdout));
  } catch {
    return "not JSON";
  }
  if (typeof out !== "object" || out === null) return "not an object";
  const o = out as Record<string, unknown>;
  if (o.status !== "ok" || !Array.isArray(o.results) || typeof o.truncated !== "boolean") {
    return "missing status/results/truncated";
  }
  const results: RetrievedDocument[] = [];
  for (const r of o.results as unknown[]) {
    if (typeof r !== "object" || r === null) return "result not an object";
    const x = r as Record<string, unknown>;
    for (
      const k of [
        "id",
        "title",
        "snippet",
        "source",
        "accessed_as",
        "category",
        "updated_at",
        "folder",
      ]
    ) {
      if (typeof x[k] !== "string") return `result field ${k} not a string`;
    }
    if (!isUuidV4(x.id as string)) return "result id not a UUIDv4";
    if (x.accessed_as !== `uid:${uid}`) return "result read under another uid";
    const folder = x.folder as string;
    const source = x.source as string;
    if (!readable.includes(folder) || !source.startsWith(`${folder}/`) || source.includes("..")) {
      return "result from a folder this channel may not read";
    }
    if (x.score !== undefined && typeof x.score !== "number") return "score not a number";
    results.push({
      id: x.id as string,
      title: x.title as string,
      snippet: x.snippet as string,
      source,
      accessed_as: user,
      category: x.category as string,
      updated_at: x.updated_at as string,
      folder,
      ...(typeof x.score === "number" ? { score: x.score } : {}),
    });
  }
  return { status: "ok", results, truncated: o.truncated as boolean };
}
