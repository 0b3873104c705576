/**
 * Is a group line meant for joi? A group answers by its `respond` rule
 * (identities.yaml, per group): `always`, or `mentioned`, where joi answers a
 * line that mentions its account, addresses it by name, or quote-replies one
 * of its messages, and keeps every other line as context only.
 *
 * A mention is matched on the account's ACI (signal-cli may give only the
 * uuid) as well as its number. Addressing by name means the name opens the
 * line (`Joi, ...`, `hey joi ...`, `@Joi`), closes it (`..., joi?`) or is
 * written `@Joi` anywhere; a line that merely talks about joi in the middle
 * ("I asked joi yesterday") or opens with it as a possessive or part of a
 * word ("Joi's answer was wrong", "Joi-style") is not addressed to it.
 *
 * @module
 */
import type { Mention } from "./signal/envelope.ts";

/** The account the mesh speaks as. */
export interface SelfAccount {
  /** Its number, from signal-cli's `params.account` (or mesh.yaml). */
  number: string | null;
  /** Its ACI uuid (mesh.yaml `account.uuid`, or learnt from `listGroups`). */
  uuid: string | null;
  /** The name people call it by (mesh.yaml `assistant_name`). */
  name: string;
}

/** A group's respond rule. */
export type RespondRule = "mentioned" | "always";

/**
 * The rule of a group: its configured `respond`, else `mentioned` for a group
 * of several people (they talk among themselves) and `always` for a group of
 * one (the owner's own group, the critical group).
 */
export function respondRule(
  group: { respond?: RespondRule | undefined; expected_members: readonly string[] },
): RespondRule {
  return group.respond ?? (group.expected_members.length > 1 ? "mentioned" : "always");
}

/**
 * True when a mention names the account (by ACI, case-insensitively, or
 * number). Until the account's ACI is known (mesh.yaml `account.uuid`, or
 * learnt from `listGroups` shortly after start), a mention carrying only a
 * uuid that is no household member's (`isMember`) is taken to be joi's: in
 * a household group only joi's account is not a household member.
 */
export function mentionsSelf(
  mentions: readonly Mention[],
  self: SelfAccount,
  isMember?: (m: Mention) => boolean,
): boolean {
  const uuid = self.uuid?.toLowerCase() ?? null;
  return mentions.some((m) =>
    (uuid !== null && m.uuid !== null && m.uuid.toLowerCase() === uuid) ||
    (self.number !== null && m.number === self.number) ||
    (uuid === null && isMember !== undefined && m.number === null && m.uuid !== null &&
      !isMember(m))
  );
}

const GREETING = "(?:hey|hi|hello|ok|okay|please|ahoj|čau|cau|servus|prosím|prosim)";

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** True when `text` addresses `name` (see the module doc). */
export function addressedByName(text: string, name: string): boolean {
  const n = escape(name.trim());
  if (n === "") return false;
  const t = text.normalize("NFC");
  // the name, not a longer word, a possessive ("Joi's") or a compound ("Joi-style", "joi.example")
  const start = new RegExp(
    `^\\s*(?:${GREETING}[\\s,]+)?@?${n}(?![\\p{L}\\p{N}]|['’\\-.][\\p{L}\\p{N}])`,
    "iu",
  );
  const at = new RegExp(`(?:^|[^\\p{L}\\p{N}@])@${n}(?![\\p{L}\\p{N}])`, "iu");
  const end = new RegExp(`[,\\s]@?${n}\\s*[?!.]*\\s*$`, "iu");
  return start.test(t) || at.test(t) || end.test(t);
}

/**
 * The text with each mention's U+FFFC placeholder replaced by `@<label>`
 * (mentions point into the text by UTF-16 offsets, as Signal sends them). A
 * mention whose offset does not hold the placeholder is left alone.
 */
export function renderMentions(
  text: string,
  mentions: readonly Mention[],
  label: (m: Mention) => string,
): string {
  let out = text;
  const sorted = [...mentions].sort((a, b) => b.start - a.start);
  for (const m of sorted) {
    if (m.start < 0 || m.length < 1 || m.start + m.length > out.length) continue;
    if (out.slice(m.start, m.start + m.length) !== "\uFFFC".repeat(m.length)) continue;
    out = `${out.slice(0, m.start)}@${label(m)}${out.slice(m.start + m.length)}`;
  }
  return out;
}
