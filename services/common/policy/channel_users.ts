/**
 * Schema of `channel_users.yaml`: the default-deny whitelist of channel ->
 * channel user. A channel that is not listed is refused. Every entry must
 * follow from `recipients.yaml` (checked across files by `crossCheck`).
 *
 * @module
 */
import { z } from "zod";
import { channelName, unixName } from "./primitives.ts";

/** The whole `channel_users.yaml`. */
export const ChannelUsersSchema = z.object({
  allowed_channel_users: z.record(channelName, unixName("user")),
}).strict();

/** A validated `channel_users.yaml`. */
export type ChannelUsers = z.infer<typeof ChannelUsersSchema>;
