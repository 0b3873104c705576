/**
 * The house heartbeat: every `watch.heartbeat_seconds` the openHAB relay posts
 * a signed `POST /api/v1/openhab/heartbeat` to joi's ingest (8445, the
 * openHAB->joi key, the same checks as its events) saying what it knows:
 *
 * ```json
 * {"source": "openhab", "sent_at": 1767225600000,
 *  "relay": {"started_at": 1767220000000, "failing_since": null,
 *            "pending_critical": 0, "buffered": 3},
 *  "openhab": {"reachable": true, "since": 1767220001000,
 *              "last_traffic_at": 1767225595000, "error": null},
 *  "cert": {"name": "openhab", "not_after": 1774000000000}}
 * ```
 *
 * `relay.started_at` and `relay.failing_since` (when its posts to joi began
 * to fail, null while they succeed) let joi tell, when heartbeats resume,
 * whether the relay had stopped or the link had been cut; `openhab` is the
 * relay's view of openHAB's event stream (a dead openHAB with a live relay).
 * Times are epoch ms of the relay's clock; `sent_at` also gives joi the
 * clock offset to the openHAB VM.
 *
 * @module
 */
import { z } from "zod";

/** The heartbeat's path on joi's ingest. */
export const HEARTBEAT_PATH = "/api/v1/openhab/heartbeat";

const ms = z.number().int().nonnegative().max(8.64e15);

/** Schema of a heartbeat body. */
export const heartbeatSchema = z.object({
  source: z.string().min(1).max(253),
  sent_at: ms,
  relay: z.object({
    started_at: ms,
    failing_since: ms.nullable(),
    pending_critical: z.number().int().nonnegative(),
    buffered: z.number().int().nonnegative(),
  }).strict(),
  openhab: z.object({
    reachable: z.boolean(),
    since: ms,
    last_traffic_at: ms.nullable(),
    error: z.string().max(300).nullable(),
  }).strict(),
  cert: z.union([
    z.object({ name: z.string().max(64), not_after: ms }).strict(),
    z.object({ error: z.string().max(300) }).strict(),
    z.null(),
  ]),
}).strict();

/** A heartbeat. */
export type Heartbeat = z.infer<typeof heartbeatSchema>;
