/**
 * The knowledge folders of a household, derived from `recipients.yaml`: where
 * each folder lives, which group owns it, exactly which channel users may read
 * it, and which channel writes into it. Provision builds the tree from this
 * table, joi's writer uses it to route writes, `index` to find the folders.
 *
 * @module
 */
import { CRITICAL_GROUP } from "../../common/policy/household.ts";
import type { Recipients } from "../../common/policy/recipients.ts";

/** One knowledge folder. */
export interface KnowledgeFolder {
  /** Path relative to the knowledge root, `/`-separated (e.g. `group/owner_public`). */
  path: string;
  /** What it holds, for plans and logs. */
  kind: "private" | "public" | "group" | "critical" | "shared";
  /** Owning group (file group of the folder, its documents and its index). */
  group: string;
  /** Exactly the channel users that may read it, sorted. */
  readers: string[];
  /** The channel user whose channel writes here (none for `shared`). */
  writer?: string;
  /** Subfolders created with it (same owner, group, mode). */
  subdirs: string[];
}

/** The channel users of a household (every user joi may switch to), sorted. */
export function channelUsers(config: Recipients): string[] {
  const users = new Set<string>();
  for (const r of Object.values(config.recipients)) {
    users.add(r.private_user);
    users.add(r.public_user);
  }
  for (const g of Object.values(config.groups)) users.add(g.user);
  return [...users].sort();
}

/** The critical channel user, or undefined when the household has none. */
export function criticalUser(config: Recipients): string | undefined {
  return config.groups[CRITICAL_GROUP]?.user;
}

const uniqSorted = (xs: (string | undefined)[]): string[] =>
  [...new Set(xs.filter((x): x is string => typeof x === "string"))].sort();

/**
 * Every knowledge folder with its group and readers. Critical always reads
 * every public and group folder and never a private one, whatever the file
 * says. Readers and reader groups are checked by the policy loader
 * (`recipients.yaml`'s rules), which is where a wrong one is refused.
 */
export function knowledgeFolders(config: Recipients): KnowledgeFolder[] {
  const users = channelUsers(config);
  const critical = criticalUser(config);
  const folders: KnowledgeFolder[] = [];
  for (const [id, r] of Object.entries(config.recipients)) {
    folders.push({
      path: `${id}/private`,
      kind: "private",
      group: r.private_user,
      readers: [r.private_user],
      writer: r.private_user,
      subdirs: [],
    });
    folders.push({
      path: `group/${id}_public`,
      kind: "public",
      group: r.reader_group,
      readers: uniqSorted([
        r.public_user,
        ...r.public_readers,
        critical,
      ]),
      writer: r.public_user,
      subdirs: [],
    });
  }
  for (const [id, g] of Object.entries(config.groups)) {
    if (id === CRITICAL_GROUP) {
      folders.push({
        path: "critical/safety",
        kind: "critical",
        group: g.user,
        readers: [g.user],
        writer: g.user,
        subdirs: [],
      });
      continue;
    }
    folders.push({
      path: `group/${id}`,
      kind: "group",
      // recipients.yaml's rules require reader_group here; the group's user is the narrower owner
      group: g.reader_group ?? g.user,
      readers: uniqSorted([g.user, ...g.readers, critical]),
      writer: g.user,
      subdirs: [],
    });
  }
  folders.push({
    path: "shared",
    kind: "shared",
    group: config.all_channels_group,
    readers: users,
    subdirs: ["common"],
  });
  for (const f of folders) {
    if (f.kind === "private" || f.kind === "critical") continue;
    if (critical && !f.readers.includes(critical)) f.readers = uniqSorted([...f.readers, critical]);
  }
  return folders;
}

/** The folder a channel user's channel writes into, or undefined (no such writer). */
export function writeFolderOf(config: Recipients, user: string): KnowledgeFolder | undefined {
  return knowledgeFolders(config).find((f) => f.writer === user);
}
