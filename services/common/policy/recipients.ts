/**
 * Schema of `recipients.yaml`: who lives here, their channel users, and who
 * may read their public knowledge.
 *
 * Every channel follows from this file (see `household.ts`). The rules here
 * keep the kernel-enforced separation sound: each channel user is used once,
 * and a private user never appears as a reader (private folders have no readers).
 *
 * @module
 */
import { z } from "zod";
import { identifier, unixName } from "./primitives.ts";
import type { RuleIssue } from "./source.ts";
import { formatPath, type PathSegment } from "./path.ts";
import { CRITICAL_GROUP } from "./household.ts";

/** One person: a private and a public channel user, and who reads the public folder. */
export const RecipientSchema = z.object({
  private_user: unixName("user"),
  public_user: unixName("user"),
  reader_group: unixName("group"),
  public_readers: z.array(unixName("user")).default([]),
}).strict();

/** A group conversation (family, critical): one channel user and its readers. */
export const RecipientGroupSchema = z.object({
  user: unixName("user"),
  reader_group: unixName("group").optional(),
  readers: z.array(unixName("user")).default([]),
}).strict();

/** The whole `recipients.yaml`. */
export const RecipientsSchema = z.object({
  service_user: unixName("user"),
  all_channels_group: unixName("group"),
  recipients: z.record(identifier("recipient id"), RecipientSchema),
  groups: z.record(identifier("group name"), RecipientGroupSchema).default({}),
}).strict();

/** A validated `recipients.yaml`. */
export type Recipients = z.infer<typeof RecipientsSchema>;
/** One validated recipient. */
export type Recipient = z.infer<typeof RecipientSchema>;
/** One validated group of `recipients.yaml`. */
export type RecipientGroup = z.infer<typeof RecipientGroupSchema>;

/** Every channel user of the file with the path where it is declared. */
export function channelUsersOf(r: Recipients): { user: string; path: PathSegment[] }[] {
  const out: { user: string; path: PathSegment[] }[] = [];
  for (const [id, rec] of Object.entries(r.recipients)) {
    out.push({ user: rec.private_user, path: ["recipients", id, "private_user"] });
    out.push({ user: rec.public_user, path: ["recipients", id, "public_user"] });
  }
  for (const [name, g] of Object.entries(r.groups)) {
    out.push({ user: g.user, path: ["groups", name, "user"] });
  }
  return out;
}

/**
 * Single-file rules: channel users are distinct from each other, from the
 * service user and from every group name; readers are known, public channel users.
 */
export function recipientsRules(r: Recipients): RuleIssue[] {
  const issues: RuleIssue[] = [];
  if (Object.keys(r.recipients).length === 0) {
    issues.push({
      path: ["recipients"],
      message: "lists no recipient: the first recipient is the household's owner; add them",
    });
  }
  const users = channelUsersOf(r);
  const firstUse = new Map<string, string>();
  for (const { user, path } of users) {
    const prior = firstUse.get(user);
    if (prior !== undefined) {
      issues.push({
        path,
        message: `channel user ${JSON.stringify(user)} is already used by ${prior}: ` +
          `each channel needs its own user, or the kernel cannot keep their knowledge apart`,
      });
    } else firstUse.set(user, formatPath(path));
    if (user === r.service_user) {
      issues.push({
        path,
        message: `channel user ${JSON.stringify(user)} is the service user: ` +
          `the writer must never be a channel user`,
      });
    }
  }
  const groupNames = new Set([r.all_channels_group]);
  const reader = (path: PathSegment[], name: string | undefined) => {
    if (name === undefined) return;
    if (groupNames.has(name) || firstUse.has(name)) {
      issues.push({
        path,
        message: `group name ${JSON.stringify(name)} is already used in this file: ` +
          `every reader group needs its own name`,
      });
    } else groupNames.add(name);
  };
  for (const [id, rec] of Object.entries(r.recipients)) {
    reader(["recipients", id, "reader_group"], rec.reader_group);
  }
  for (const [name, g] of Object.entries(r.groups)) {
    if (g.reader_group === undefined && name !== CRITICAL_GROUP) {
      issues.push({
        path: ["groups", name],
        at: "key",
        message: `reader_group is missing: every group but ${JSON.stringify(CRITICAL_GROUP)} ` +
          `needs one (it owns the group's knowledge folder)`,
      });
    }
    reader(["groups", name, "reader_group"], g.reader_group);
  }

  const privateUsers = new Set(Object.values(r.recipients).map((x) => x.private_user));
  const known = new Set(users.map((u) => u.user));
  const checkReaders = (
    base: PathSegment[],
    list: readonly string[],
    own: string,
  ) => {
    const seen = new Set<string>();
    list.forEach((entry, i) => {
      const path = [...base, i];
      if (privateUsers.has(entry)) {
        issues.push({
          path,
          message: `${JSON.stringify(entry)} is a private channel user: ` +
            `private knowledge is never shared, so it cannot read another folder`,
        });
      } else if (!known.has(entry)) {
        issues.push({ path, message: `unknown channel user ${JSON.stringify(entry)}` });
      } else if (entry === own) {
        issues.push({
          path,
          message: `${JSON.stringify(entry)} owns this folder; remove it from the readers`,
        });
      } else if (seen.has(entry)) {
        issues.push({ path, message: `${JSON.stringify(entry)} is listed twice` });
      }
      seen.add(entry);
    });
  };
  for (const [id, rec] of Object.entries(r.recipients)) {
    checkReaders(["recipients", id, "public_readers"], rec.public_readers, rec.public_user);
  }
  for (const [name, g] of Object.entries(r.groups)) {
    checkReaders(["groups", name, "readers"], g.readers, g.user);
  }
  return issues;
}
