/**
 * The household's vocabulary, named once: how the recipients and groups of
 * `recipients.yaml` become channels, how a channel name is read back, and who
 * plays the household's roles. No other module builds or parses a channel
 * name (a test greps the tree for it).
 *
 * - recipient R -> `R_private_dm` (its private_user) and `R_regular_dm` (its
 *   public_user); group G -> `G_group` (its user);
 * - the owner is the first recipient of `recipients.yaml`; the owner's DM is
 *   the owner's private channel; the critical channel is the channel of the
 *   group named `critical`, the family group that of the group named `family`.
 *
 * @module
 */
import type { Recipients } from "./recipients.ts";

/** The group of `recipients.yaml` whose channel carries life-safety alerts. */
export const CRITICAL_GROUP = "critical";
/** The group of `recipients.yaml` the whole household talks in. */
export const FAMILY_GROUP = "family";

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

/** A channel name read back: whose channel it is and of which kind. */
export type Channel =
  | { kind: RecipientChannelKind; recipient: string }
  | { kind: "group"; group: string };

const CHANNEL = /^([a-z][a-z0-9_]*?)_(?:(private|regular)_dm|(group))$/;

/**
 * Reads a channel name (`owner_private_dm`, `partner_regular_dm`,
 * `family_group`); undefined for anything else. The inverse of
 * {@link channelOfRecipient} and {@link channelOfGroup}.
 */
export function parseChannel(name: string): Channel | undefined {
  const m = CHANNEL.exec(name);
  if (!m) return undefined;
  const [, id = "", kind, group] = m;
  if (group) return { kind: "group", group: id };
  return { kind: kind === "private" ? "private" : "regular", recipient: id };
}

/** True for a recipient's private channel (`R_private_dm`, a direct conversation). */
export function isPrivateChannel(name: string): boolean {
  return parseChannel(name)?.kind === "private";
}

/** The recipient a channel belongs to (`R_private_dm`, `R_regular_dm` -> R); undefined for groups. */
export function recipientOfChannel(name: string): string | undefined {
  const c = parseChannel(name);
  return c && c.kind !== "group" ? c.recipient : undefined;
}

/** Who and what plays each role of the household. */
export interface HouseholdRoles {
  /** The owner's recipient id: the first recipient of `recipients.yaml`. */
  owner: string;
  /** The owner's direct channel (`<owner>_private_dm`). */
  ownerDm: string;
  /** The channel of life-safety alerts (`critical_group`). */
  criticalChannel: string;
  /** The household's group channel (`family_group`). */
  familyChannel: string;
}

/**
 * The roles of a household. `recipients.yaml` must list at least one
 * recipient (its schema requires it); the owner is the first.
 */
export function householdRoles(recipients: Pick<Recipients, "recipients">): HouseholdRoles {
  const owner = Object.keys(recipients.recipients)[0];
  if (owner === undefined) {
    throw new Error("recipients.yaml lists no recipient: the first one is the owner; add them");
  }
  return {
    owner,
    ownerDm: channelOfRecipient(owner, "private"),
    criticalChannel: channelOfGroup(CRITICAL_GROUP),
    familyChannel: channelOfGroup(FAMILY_GROUP),
  };
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
