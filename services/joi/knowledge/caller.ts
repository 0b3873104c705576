/**
 * joi's side of knowledge retrieval: validates the query, re-serialises it
 * canonically, runs `sudo -n -u <channel user> <retrieve entry> <pinned argv>
 * <type> <json>` with an empty environment and a 30 s timeout, and validates
 * what comes back. Failures are logged (stderr is logged as a length and a
 * hash, never passed on) and returned to the agent as `{status: "error"}`.
 *
 * Memory: the pinned argv caps the V8 heap (`--max-old-space-size`) and the
 * sudoers rule sets `rlimit_data`/`rlimit_cpu` on the process (see
 * `scripts/provision/sudoers.ts`); stdout is read up to a hard cap.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Logger } from "../../common/log.ts";
import {
  canonicalQueryJson,
  isUuidV4,
  MAX_OUTPUT_BYTES,
  MAX_QUERY_BYTES,
  parseQuery,
  type Query,
  QueryError,
  type Result,
  validateQuery,
} from "../../../scripts/retrieve.ts";
import { knowledgeFolders } from "./folders.ts";
import { passwdUids } from "../config/passwd.ts";
import type { Recipients } from "../../common/policy/recipients.ts";

/** Default timeout of one retrieval. */
export const RETRIEVE_TIMEOUT_MS = 30_000;
/** Time between SIGTERM and SIGKILL when a retrieval is stopped. */
export const KILL_GRACE_MS = 2_000;

/**
 * One result as joi hands it to the agent: retrieve's {@link Result}, except
 * that `accessed_as` (retrieve's kernel identity `uid:<n>`) has been checked
 * against the channel user and replaced by that user's name.
 */
export type RetrievedDocument = Result;

/** What a retrieval returns. Errors carry a reason code, never retrieve's stderr. */
export type RetrieveOutcome =
  | { status: "ok"; results: RetrievedDocument[]; truncated: boolean }
  | {
    status: "error";
    results: [];
    reason:
      | "denied"
      | "invalid_query"
      | "timeout"
      | "failed"
      | "invalid_output"
      | "output_too_large";
  };

/** Options of {@link RetrieveCaller}. */
export interface RetrieveCallerOptions {
  /** sudo, absolute (`/usr/bin/sudo`). */
  sudoBin: string;
  /** The installed entry point (`/usr/local/bin/joi-retrieve`). */
  retrieveBin: string;
  /** The pinned argv from `retrieveFixedArgv` (after the entry point). */
  fixedArgv: string[];
  /** channel_users.yaml's `allowed_channel_users` (default deny). */
  allowedChannelUsers: Record<string, string>;
  /** recipients.yaml, to check each result comes from a folder the user may read. */
  recipients: Recipients;
  /** uid of a user name, undefined when it does not exist (default: /etc/passwd). */
  uidOf?: (user: string) => number | undefined;
  /** Logger. */
  logger: Logger;
  /** Timeout (default 30 s). */
  timeoutMs?: number;
}

/** Reads `/etc/passwd` for a user's uid. */
export function passwdUid(user: string, passwd = "/etc/passwd"): number | undefined {
  return passwdUids(Deno.readTextFileSync(passwd)).get(user);
}

const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** Runs retrievals for the agent. */
export class RetrieveCaller {
  readonly #o: RetrieveCallerOptions;

  /** Builds a caller. */
  constructor(options: RetrieveCallerOptions) {
    this.#o = options;
  }

  /** The exact argv (after sudo) joi runs for `user` and a canonical query. */
  argv(user: string, query: Query): string[] {
    return [
      "-n",
      "-u",
      user,
      "--",
      this.#o.retrieveBin,
      ...this.#o.fixedArgv,
      query.type,
      canonicalQueryJson(query),
    ];
  }

  /** Retrieves for `channel`: `type` is search/get/list, `query` the object (e.g. from the LLM). */
  async retrieve(channel: string, type: string, query: unknown): Promise<RetrieveOutcome> {
    const log = this.#o.logger;
    const fail = (reason: Extract<RetrieveOutcome, { status: "error" }>["reason"]) =>
      ({ status: "error", results: [], reason }) as RetrieveOutcome;
    const user = Object.hasOwn(this.#o.allowedChannelUsers, channel)
      ? this.#o.allowedChannelUsers[channel]
      : undefined;
    if (user === undefined) {
      log.security("retrieve_denied", { channel, reason: "channel not in allowed_channel_users" });
      return fail("denied");
    }
    const uid = (this.#o.uidOf ?? passwdUid)(user);
    if (uid === undefined) {
      log.security("retrieve_denied", { channel, user, reason: "channel user does not exist" });
      return fail("denied");
    }
    let q: Query;
    let json: string;
    try {
      q = validateQuery(type, query);
      json = canonicalQueryJson(q);
      // what retrieve will check, checked here first: a parser bug stays in joi
      parseQuery(q.type, json);
      if (new TextEncoder().encode(json).length > MAX_QUERY_BYTES) {
        throw new QueryError("query too large");
      }
    } catch (e) {
      log.warn("retrieve_invalid_query", {
        channel,
        reason: e instanceof QueryError ? e.message : "unserialisable",
      });
      return fail("invalid_query");
    }
    const started = performance.now();
    const child = new Deno.Command(this.#o.sudoBin, {
      args: this.argv(user, q),
      clearEnv: true,
      env: {},
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    let tooLarge = false;
    // SIGTERM, not SIGKILL: sudo relays SIGTERM from the invoking user to retrieve,
    // while a killed sudo would leave retrieve running; SIGKILL only after a grace
    let grace: ReturnType<typeof setTimeout> | undefined;
    const stop = () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      grace ??= setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, this.#o.timeoutMs ?? RETRIEVE_TIMEOUT_MS);
    const cap = MAX_OUTPUT_BYTES + 4096;
    const [stdout, stderr, status] = await Promise.all([
      readCapped(child.stdout, cap, () => {
        tooLarge = true;
        stop();
      }),
      readCapped(child.stderr, 16 * 1024, () => {}),
      child.status,
    ]).finally(() => {
      clearTimeout(timer);
      clearTimeout(grace);
    });
    const ms = Math.round(performance.now() - started);
    if (timedOut) {
      log.error("retrieve_timeout", { channel, user, type: q.type, ms });
      return fail("timeout");
    }
    if (tooLarge) {
      log.security("retrieve_output_too_large", { channel, user, type: q.type });
      return fail("output_too_large");
    }
    if (!status.success) {
      // stderr stays here: its length and hash identify it in joi's log
      log.error("retrieve_failed", {
        channel,
        user,
        type: q.type,
        code: status.code,
        stderr_bytes: stderr.length,
        stderr_sha256: digest(stderr),
        ms,
      });
      return fail("failed");
    }
    const readable = knowledgeFolders(this.#o.recipients)
      .filter((f) => f.readers.includes(user))
      .map((f) => f.path);
    const parsed = validateRetrieveOutput(stdout, user, uid, readable);
    if (typeof parsed === "string") {
      log.security("retrieve_invalid_output", { channel, user, problem: parsed });
      return fail("invalid_output");
    }
    log.debug("retrieve_ok", { channel, type: q.type, results: parsed.results.length, ms });
    return parsed;
  }
}

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

async function readCapped(
  stream: ReadableStream<Uint8Array>,
  cap: number,
  onOverflow: () => void,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let overflowed = false;
  for await (const chunk of stream) {
    if (overflowed) continue; // drain
    if (size + chunk.length > cap) {
      overflowed = true;
      onOverflow();
      continue;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  const buf = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    buf.set(c, off);
    off += c.length;
  }
  return buf;
}
