/**
 * Where each channel's memory lives, per the architecture document's `data/`
 * tree: a recipient's private DM in `data/<recipient>/private.db`, their
 * regular DM in `data/<recipient>/public.db`, a group in `data/group/<name>.db`
 * and the critical group in `data/critical.db`.
 *
 * @module
 */

/** The parts of recipients.yaml the layout needs. */
export interface RecipientsShape {
  /** Recipient id -> its users. */
  recipients: Record<string, unknown>;
  /** Group name -> its user. */
  groups: Record<string, unknown>;
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
    out[`${id}_private_dm`] = `data/${id}/private.db`;
    out[`${id}_regular_dm`] = `data/${id}/public.db`;
  }
  for (const name of Object.keys(recipients.groups)) {
    if (!SAFE.test(name)) {
      throw new Error(
        `memory layout: group name ${JSON.stringify(name)} is not a plain identifier`,
      );
    }
    out[`${name}_group`] = name === "critical" ? "data/critical.db" : `data/group/${name}.db`;
  }
  return out;
}

/** joi's own state database, relative to the state directory. */
export const STATE_DB = "joi.db";
