/**
 * Schema of `groups.yaml`: the Signal group membership the mesh expects,
 * checked every `check_interval_hours`. Informational only: the sender
 * whitelist of `identities.yaml` is what keeps strangers out.
 *
 * @module
 */
import { z } from "zod";
import { signalGroupId } from "./identities.ts";
import { channelName, identifier, positiveInt } from "./primitives.ts";

/** One monitored group, keyed by its channel. */
export const MonitoredGroupSchema = z.object({
  signal_group_id: signalGroupId,
  expected_members: z.array(identifier("recipient id")),
  alert_on_change: z.boolean(),
}).strict();

/** The whole `groups.yaml`. */
export const GroupsSchema = z.object({
  check_interval_hours: positiveInt,
  groups: z.record(channelName, MonitoredGroupSchema),
}).strict();

/** A validated `groups.yaml`. */
export type Groups = z.infer<typeof GroupsSchema>;
