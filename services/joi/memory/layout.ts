/**
 * Where each channel's memory lives, per the architecture document's `data/`
 * tree: a recipient's private DM in `data/<recipient>/private.db`, their
 * regular DM in `data/<recipient>/public.db`, a group in `data/group/<name>.db`
 * and the critical group in `data/critical.db`.
 *
 * @module
 */
import {
  channelOfGroup,
  channelOfRecipient,
  CRITICAL_GROUP,
} from "../../common/policy/household.ts";

/** The parts of recipients.yaml the layout reads: only the recipient ids and group names. */
export interface RecipientsShape {
  /** Recipient id -> its users. */
  recipients: Readonly<Record<string, unknown>>;
  /** Group name -> its user. */
  groups: Readonly<Record<string, unknown>>;
}

/** A channel name is a plain identifier; anything else is refused before it names a file. */
const SAFE = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * Channel -> database path relative to the state directory, derived from
 * recipients.yaml (the same derivation as channel_users.yaml).
 */
export function memoryPaths(recipients: RecipientsShape): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of Object.keys(recipients.recipients)) {
    if (!SAFE.test(id)) {
      throw new Error(
        `memory layout: recipient id ${JSON.stringify(id)} is not a plain identifier`,
      );
    }
    out[channelOfRecipient(id, "private")] = `data/${id}/private.db`;
    out[channelOfRecipient(id, "regular")] = `data/${id}/public.db`;
  }
  for (const name of Object.keys(recipients.groups)) {
    if (!SAFE.test(name)) {
      throw new Error(
        `memory layout: group name ${JSON.stringify(name)} is not a plain identifier`,
      );
    }
    out[channelOfGroup(name)] = name === CRITICAL_GROUP
      ? "data/critical.db"
      : `data/group/${name}.db`;
  }
  return out;
}

/** joi's own state database, relative to the state directory. */
export const STATE_DB = "joi.db";
