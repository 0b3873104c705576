/**
 * The structural edits of a revocation: each policy file is parsed with the
 * `yaml` Document API, the recipient's nodes are removed, and the text is
 * printed back, so comments and formatting of everything else survive (no
 * `sed`). Pure: texts in, texts out.
 *
 * @module
 */
import { isMap, isSeq } from "yaml";
import type { Document } from "yaml";
import { deriveChannels, type Recipients } from "../../services/common/policy/mod.ts";
// the policy loader's parser: same options, and it keeps `yaml` from reading the environment
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";

/** The file names a revocation may edit. */
export const EDITED_FILES = [
  "recipients.yaml",
  "channel_users.yaml",
  "identities.yaml",
  "groups.yaml",
  "policy.yaml",
] as const;

/** One of {@link EDITED_FILES}. */
export type EditedFile = typeof EDITED_FILES[number];

/** What a revocation removes, derived from the current recipients.yaml. */
export interface Revocation {
  /** The recipient id. */
  id: string;
  /** Its channel users (private, public). */
  users: string[];
  /** Its reader group (kept on the system: the public folder stays readable by its readers). */
  readerGroup: string;
  /** The channels that disappear (`<id>_private_dm`, `<id>_regular_dm`). */
  channels: string[];
}

/** Describes the revocation of `id`; throws a clear error for an unknown id. */
export function revocationOf(recipients: Recipients, id: string): Revocation {
  const r = recipients.recipients[id];
  if (!Object.hasOwn(recipients.recipients, id) || r === undefined) {
    const known = Object.keys(recipients.recipients).sort().join(", ") || "none";
    throw new RevokeUsageError(
      `unknown recipient ${JSON.stringify(id)} (recipients.yaml has: ${known}); nothing changed`,
    );
  }
  const before = deriveChannels(recipients);
  const users = [r.private_user, r.public_user];
  const channels = Object.entries(before).filter(([, user]) => users.includes(user)).map(([c]) =>
    c
  );
  return { id, users, readerGroup: r.reader_group, channels };
}

/** A refusal before anything changed (unknown id, bad arguments). */
export class RevokeUsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "RevokeUsageError";
  }
}

function doc(text: string, file: string): Document.Parsed {
  const { doc: d, problems } = parseYaml(text);
  const first = problems[0]?.message ?? d.errors[0]?.message;
  if (first !== undefined) {
    throw new Error(`${file}: cannot parse: ${first}; fix it before revoking`);
  }
  return d;
}

function print(d: Document.Parsed): string {
  return d.toString({ lineWidth: 0 });
}

/** Removes every item equal to one of `values` from the sequence at `path`. */
function pruneSeq(d: Document.Parsed, path: (string | number)[], values: string[]): void {
  const node = d.getIn(path, true);
  if (!isSeq(node)) return;
  for (let i = node.items.length - 1; i >= 0; i--) {
    const item = node.items[i] as { value?: unknown } | string;
    const v = typeof item === "object" && item !== null && "value" in item ? item.value : item;
    if (typeof v === "string" && values.includes(v)) node.delete(i);
  }
}

/** Keys of the map at `path`. */
function keysAt(d: Document.Parsed, path: (string | number)[]): string[] {
  const node = d.getIn(path, true);
  if (!isMap(node)) return [];
  return node.items.map((p) => String((p.key as { value?: unknown })?.value ?? p.key));
}

/** The new text of each edited file (unchanged files are left out). */
export function editTexts(
  texts: Record<EditedFile, string>,
  rev: Revocation,
): Partial<Record<EditedFile, string>> {
  const out: Partial<Record<EditedFile, string>> = {};
  const keep = (name: EditedFile, d: Document.Parsed) => {
    const t = print(d);
    if (t !== texts[name]) out[name] = t;
  };

  // recipients.yaml: the recipient, and its public user wherever it reads
  const rec = doc(texts["recipients.yaml"], "recipients.yaml");
  rec.deleteIn(["recipients", rev.id]);
  for (const other of keysAt(rec, ["recipients"])) {
    pruneSeq(rec, ["recipients", other, "public_readers"], rev.users);
  }
  for (const g of keysAt(rec, ["groups"])) pruneSeq(rec, ["groups", g, "readers"], rev.users);
  keep("recipients.yaml", rec);

  // channel_users.yaml: its channels
  const cu = doc(texts["channel_users.yaml"], "channel_users.yaml");
  for (const c of rev.channels) cu.deleteIn(["allowed_channel_users", c]);
  keep("channel_users.yaml", cu);

  // identities.yaml: its phones, its place in groups, groups feeding its channels
  const ids = doc(texts["identities.yaml"], "identities.yaml");
  for (const phone of keysAt(ids, ["identities"])) {
    if (ids.getIn(["identities", phone, "recipient_id"]) === rev.id) {
      ids.deleteIn(["identities", phone]);
    }
  }
  for (const gid of keysAt(ids, ["groups"])) {
    if (rev.channels.includes(String(ids.getIn(["groups", gid, "channel"])))) {
      ids.deleteIn(["groups", gid]);
    } else pruneSeq(ids, ["groups", gid, "expected_members"], [rev.id]);
  }
  keep("identities.yaml", ids);

  // groups.yaml: the same for the membership monitor
  const grp = doc(texts["groups.yaml"], "groups.yaml");
  for (const channel of keysAt(grp, ["groups"])) {
    if (rev.channels.includes(channel)) grp.deleteIn(["groups", channel]);
    else pruneSeq(grp, ["groups", channel, "expected_members"], [rev.id]);
  }
  keep("groups.yaml", grp);

  // policy.yaml: retention periods of its channels
  const pol = doc(texts["policy.yaml"], "policy.yaml");
  for (const c of rev.channels) pol.deleteIn(["memory", "retention_days", c]);
  keep("policy.yaml", pol);
  return out;
}
