/**
 * Who may talk to joi, and on which channel. The channel is decided here,
 * never by joi:
 *
 * - a DM from a known recipient is `<recipient_id>_private_dm`;
 * - a group message takes the channel of the group's id in identities.yaml;
 * - anyone not in identities.yaml (by number, or by uuid when signal-cli
 *   reports `sourceNumber: null`) is unknown, in DMs and groups alike; so is
 *   a known sender in a group that is not listed.
 *
 * The configuration is swapped atomically (one reference assignment): a
 * lookup sees either the old or the new configuration, never a mix.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Identities, identitiesRules, IdentitiesSchema } from "../common/policy/identities.ts";
import { identitiesHash } from "../common/policy/identities_hash.ts";
import { channelOfRecipient, parseChannel } from "../common/policy/household.ts";

/** identities.yaml, as validated by the policy schema. */
export type IdentitiesConfig = Identities;

/** A known sender, resolved from a Signal address. */
export interface KnownSender {
  /** Canonical recipient id (`owner`, `partner`, ...). */
  recipientId: string;
  /** The registered phone number (E.164), the identity's key. */
  number: string;
  /** The registered uuid, when configured. */
  uuid: string | null;
  /** Configured display name. */
  name: string | null;
}

/** Where an outbound message goes, as signal-cli `send` params want it. */
export type SendTarget =
  | { kind: "direct"; channel: string; recipientId: string; number: string }
  | { kind: "group"; channel: string; groupId: string };

/** sha256 hex of a phone number or uuid, for logs and `X-Signal-Sender-Hash`. */
export function addressHash(address: string): string {
  return createHash("sha256").update(address).digest("hex");
}

/** An immutable, indexed view of one identities configuration. */
export class IdentityView {
  readonly config: IdentitiesConfig;
  readonly hash: string;
  readonly #byNumber = new Map<string, KnownSender>();
  readonly #byUuid = new Map<string, KnownSender>();
  readonly #byRecipient = new Map<string, KnownSender>();
  readonly #groupById = new Map<string, string>();
  readonly #groupByChannel = new Map<string, string>();

  constructor(config: IdentitiesConfig, hash: string) {
    this.config = config;
    this.hash = hash;
    for (const [number, entry] of Object.entries(config.identities)) {
      const s: KnownSender = {
        recipientId: entry.recipient_id,
        number,
        uuid: entry.uuid ? entry.uuid.toLowerCase() : null,
        name: entry.name ?? null,
      };
      this.#byNumber.set(number, s);
      if (s.uuid) this.#byUuid.set(s.uuid, s);
      if (!this.#byRecipient.has(s.recipientId)) this.#byRecipient.set(s.recipientId, s);
    }
    for (const [groupId, g] of Object.entries(config.groups ?? {})) {
      this.#groupById.set(groupId, g.channel);
      this.#groupByChannel.set(g.channel, groupId);
    }
  }

  /**
   * The known sender for a Signal address, or null. The number is matched
   * first; with `sourceNumber: null` the uuid is. When both are present and
   * the identity has a uuid, they must agree (a number claimed by another
   * account is refused).
   */
  sender(number: string | null, uuid: string | null): KnownSender | null {
    const u = uuid ? uuid.toLowerCase() : null;
    if (number !== null) {
      const s = this.#byNumber.get(number);
      if (!s) return null;
      if (s.uuid && u && s.uuid !== u) return null;
      return s;
    }
    if (u !== null) return this.#byUuid.get(u) ?? null;
    return null;
  }

  /** The known sender registered for a canonical recipient id. */
  recipient(recipientId: string): KnownSender | null {
    return this.#byRecipient.get(recipientId) ?? null;
  }

  /** The channel of a group id, or null when the group is not listed. */
  groupChannel(groupId: string): string | null {
    return this.#groupById.get(groupId) ?? null;
  }

  /** The configuration of group `groupId` (channel, expected members, respond rule), or null. */
  group(groupId: string): IdentitiesConfig["groups"][string] | null {
    return Object.hasOwn(this.config.groups, groupId) ? this.config.groups[groupId] ?? null : null;
  }

  /** The group id of a channel, or null when no group carries it. */
  groupIdOf(channel: string): string | null {
    return this.#groupByChannel.get(channel) ?? null;
  }

  /** Channel of an inbound message: the DM channel or the group's; null = drop. */
  channelFor(sender: KnownSender, groupId: string | null): string | null {
    if (groupId === null) return channelOfRecipient(sender.recipientId, "private");
    return this.groupChannel(groupId);
  }

  /**
   * Resolves an outbound target from joi's request. `id` is a canonical
   * recipient id or a channel; `groupId` (delivery.group_id) a channel or a
   * Signal group id. Returns null when it is outside the allowlist.
   */
  target(
    id: string,
    delivery: "direct" | "group",
    groupId?: string,
    transportId?: string,
  ): SendTarget | null {
    if (delivery === "group") {
      const key = groupId ?? id;
      const byChannel = this.groupIdOf(key);
      if (byChannel) return { kind: "group", channel: key, groupId: byChannel };
      const channel = this.groupChannel(key);
      if (channel) return { kind: "group", channel, groupId: key };
      return null;
    }
    const channel = parseChannel(id);
    const r = this.recipient(channel?.kind === "private" ? channel.recipient : id);
    if (!r) {
      // a channel carried by a group (e.g. owner_regular_dm) is a group send
      const gid = this.groupIdOf(id);
      return gid ? { kind: "group", channel: id, groupId: gid } : null;
    }
    if (transportId !== undefined && transportId !== r.number) return null;
    return {
      kind: "direct",
      channel: channelOfRecipient(r.recipientId, "private"),
      recipientId: r.recipientId,
      number: r.number,
    };
  }

  /** Canonical id of a group member (by number, else uuid), or null if unknown. */
  memberId(number: string | null, uuid: string | null): string | null {
    const u = uuid ? uuid.toLowerCase() : null;
    if (number !== null) {
      const s = this.#byNumber.get(number);
      if (s) return s.recipientId;
    }
    if (u !== null) return this.#byUuid.get(u)?.recipientId ?? null;
    return null;
  }

  /** Whether a canonical recipient is still present. */
  hasRecipient(recipientId: string): boolean {
    return this.#byRecipient.has(recipientId);
  }
}

/** Holds the current {@link IdentityView}; swaps are atomic. */
export class IdentityStore {
  #view: IdentityView;
  #lastSync: { at: number; result: string } | null = null;

  constructor(view: IdentityView) {
    this.#view = view;
  }

  /** The configuration in force now. */
  get current(): IdentityView {
    return this.#view;
  }

  /** Replaces the configuration in one step. */
  swap(view: IdentityView, at: number, result = "synced"): void {
    this.#view = view;
    this.#lastSync = { at, result };
  }

  /** Records a sync attempt that did not change the configuration. */
  noteSync(at: number, result: string): void {
    this.#lastSync = { at, result };
  }

  /** The last sync attempt, for `/health`. */
  get lastSync(): { at: number; result: string } | null {
    return this.#lastSync;
  }
}

/** Validates identities fetched from joi with the policy schema and its rules. */
export function validateIdentities(raw: unknown): IdentitiesConfig {
  const r = IdentitiesSchema.safeParse(raw);
  if (!r.success) {
    throw new Error(
      "identities: " + r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  const issues = identitiesRules(r.data);
  if (issues.length) {
    throw new Error(
      "identities: " + issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  return r.data;
}

/** sha256 of the canonical JSON of an identities config (`X-Config-Hash`). */
export function hashIdentities(config: IdentitiesConfig): string {
  return identitiesHash(config);
}
