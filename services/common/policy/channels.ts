/**
 * Channel names: how recipients and groups of `recipients.yaml` become the
 * channels of `channel_users.yaml`.
 *
 * recipient R -> `R_private_dm` (its private_user) and `R_regular_dm` (its
 * public_user); group G -> `G_group` (its user).
 *
 * @module
 */
import type { Recipients } from "./recipients.ts";

/** The two channels of a recipient. */
export type RecipientChannelKind = "private" | "regular";

/** The channel of recipient `recipientId` of the given kind. */
export function channelOfRecipient<R extends string>(
  recipientId: R,
  kind: "private",
): `${R}_private_dm`;
/** The channel of recipient `recipientId` of the given kind. */
export function channelOfRecipient<R extends string>(
  recipientId: R,
  kind: "regular",
): `${R}_regular_dm`;
/** The channel of recipient `recipientId` of the given kind. */
export function channelOfRecipient<R extends string>(
  recipientId: R,
  kind: RecipientChannelKind,
): `${R}_private_dm` | `${R}_regular_dm`;
export function channelOfRecipient(recipientId: string, kind: RecipientChannelKind): string {
  if (kind !== "private" && kind !== "regular") {
    throw new TypeError(
      `channelOfRecipient: kind must be "private" or "regular", got ${JSON.stringify(kind)}`,
    );
  }
  return `${recipientId}_${kind}_dm`;
}

/** The channel of group `group` of `recipients.yaml`. */
export function channelOfGroup<G extends string>(group: G): `${G}_group` {
  return `${group}_group`;
}

/** Every channel that follows from `recipients.yaml`, with its channel user. */
export function deriveChannels(recipients: {
  recipients: Readonly<Record<string, { private_user: string; public_user: string }>>;
  groups: Readonly<Record<string, { user: string }>>;
}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, r] of Object.entries(recipients.recipients)) {
    out[channelOfRecipient(id, "private")] = r.private_user;
    out[channelOfRecipient(id, "regular")] = r.public_user;
  }
  for (const [name, g] of Object.entries(recipients.groups)) {
    out[channelOfGroup(name)] = g.user;
  }
  return out;
}

/** The private channels (`R_private_dm`) that follow from `recipients.yaml`. */
export function privateChannels(recipients: Recipients): Set<string> {
  return new Set(Object.keys(recipients.recipients).map((id) => channelOfRecipient(id, "private")));
}
