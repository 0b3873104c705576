/**
 * The knowledge broker's wire format: one JSON object per line over a Unix
 * socket that only the `joi` user can open.
 *
 * Request:  `{"id": 1, "channel": "family_group", "type": "search", "query": {"q": "...", "limit": 5}}`
 * Response: `{"id": 1, "outcome": {"status": "ok", "results": [...], "truncated": false}}`
 *
 * The broker never trusts the request beyond these shapes: the channel is
 * looked up in `channel_users.yaml` (default deny) and the query is validated
 * and re-serialised canonically by the retrieve caller before sudo runs.
 *
 * @module
 */
import { z } from "zod";
import type { RetrieveOutcome } from "../joi/knowledge/caller.ts";

/** Longest request line accepted (the query itself is capped at 4096 bytes). */
export const MAX_REQUEST_BYTES = 8192;

/** Longest response line (retrieve's output is capped at 1 MB). */
export const MAX_RESPONSE_BYTES = 1024 * 1024 + 64 * 1024;

/** A request line. */
export const RequestSchema = z.object({
  id: z.number().int().nonnegative(),
  channel: z.string().min(1).max(64).regex(/^[a-z0-9_]+$/),
  type: z.string().min(1).max(16),
  query: z.record(z.string(), z.unknown()),
}).strict();

/** A parsed request. */
export type BrokerRequest = z.infer<typeof RequestSchema>;

/** A response line. */
export interface BrokerResponse {
  id: number | null;
  outcome: RetrieveOutcome;
}

/** The error outcome for a malformed request. */
export const INVALID: RetrieveOutcome = { status: "error", results: [], reason: "invalid_query" };
