/**
 * The architecture document's access matrix, written out here independently
 * of the code (`knowledgeFolders`), so the tests check the code against the
 * document: for each knowledge folder, the channels whose user may read it.
 * The owner shares their public knowledge with the family; the partner-public
 * column, which the document leaves out, is filled in symmetrically to
 * owner-public (the partner does not share with the family).
 *
 * @module
 */

/** The channels of the example household (`policies/recipients.yaml`). */
export const CHANNELS = [
  "owner_private_dm",
  "owner_regular_dm",
  "partner_private_dm",
  "partner_regular_dm",
  "family_group",
  "critical_group",
] as const;

/** One of {@link CHANNELS}. */
export type Channel = typeof CHANNELS[number];

/** Folder (relative to the knowledge root) -> the channels that may read it. */
export const ACCESS_MATRIX: Readonly<Record<string, readonly Channel[]>> = {
  "owner/private": ["owner_private_dm"],
  "group/owner_public": ["owner_regular_dm", "family_group", "critical_group"],
  "partner/private": ["partner_private_dm"],
  "group/partner_public": ["partner_regular_dm", "critical_group"],
  "group/family": ["family_group", "critical_group"],
  "critical/safety": ["critical_group"],
  "shared": CHANNELS,
};
