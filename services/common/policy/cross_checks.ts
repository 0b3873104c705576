/**
 * Checks that need more than one policy file. Each issue is positioned at the
 * offending node of the file it is reported in.
 *
 * - every channel of `channel_users.yaml` follows from `recipients.yaml` and
 *   maps to the same user; every derived channel is listed;
 * - identities name known recipients; identity groups feed known, non-private
 *   channels; their expected members are known recipients;
 * - `groups.yaml` matches the groups of `identities.yaml` (ids, channels,
 *   members), both ways;
 * - retention periods name known channels.
 *
 * @module
 */
import { deriveChannels, privateChannels } from "./household.ts";
import type { Issue } from "./errors.ts";
import { type Policies, policyFileNames, type PolicyName } from "./files.ts";
import { own } from "./own.ts";
import type { PathSegment } from "./path.ts";
import { locateIn, type RuleIssue } from "./source.ts";

function list(names: Iterable<string>): string {
  const all = [...names].sort();
  return all.length === 0 ? "none" : all.join(", ");
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

/** Runs every cross-file check on validated policies. */
export function crossCheck(p: Policies): Issue[] {
  const out: Issue[] = [];
  const report = (name: PolicyName, issue: RuleIssue) =>
    out.push(locateIn(p[name] as object, policyFileNames[name], issue));

  const derived = deriveChannels(p.recipients);
  const listed = p.channelUsers.allowed_channel_users;
  const recipientIds = new Set(Object.keys(p.recipients.recipients));
  const privates = privateChannels(p.recipients);
  const unknownMembers = (name: PolicyName, group: PathSegment[], members: readonly string[]) =>
    members.forEach((m, i) => {
      if (!recipientIds.has(m)) {
        report(name, {
          path: [...group, "expected_members", i],
          message: `unknown recipient ${JSON.stringify(m)} (recipients.yaml has: ${
            list(recipientIds)
          })`,
        });
      }
    });

  // channel_users.yaml <-> recipients.yaml
  for (const [channel, user] of Object.entries(listed)) {
    if (!Object.hasOwn(derived, channel)) {
      report("channelUsers", {
        path: ["allowed_channel_users", channel],
        at: "key",
        message: `channel ${JSON.stringify(channel)} does not follow from recipients.yaml ` +
          `(derived channels: ${list(Object.keys(derived))})`,
      });
    } else if (derived[channel] !== user) {
      report("channelUsers", {
        path: ["allowed_channel_users", channel],
        message: `channel user ${JSON.stringify(user)} does not match recipients.yaml, ` +
          `which gives ${JSON.stringify(derived[channel])}`,
      });
    }
  }
  for (const [channel, user] of Object.entries(derived)) {
    if (!Object.hasOwn(listed, channel)) {
      report("channelUsers", {
        path: ["allowed_channel_users", channel],
        at: "missing",
        message: `channel derived from recipients.yaml is missing (add: ${channel}: ${user})`,
      });
    }
  }

  // identities.yaml -> recipients.yaml, channel_users.yaml
  for (const [phone, identity] of Object.entries(p.identities.identities)) {
    if (!recipientIds.has(identity.recipient_id)) {
      report("identities", {
        path: ["identities", phone, "recipient_id"],
        message: `unknown recipient ${JSON.stringify(identity.recipient_id)} ` +
          `(recipients.yaml has: ${list(recipientIds)})`,
      });
    }
  }
  for (const [groupId, group] of Object.entries(p.identities.groups)) {
    if (!Object.hasOwn(listed, group.channel)) {
      report("identities", {
        path: ["groups", groupId, "channel"],
        message: `unknown channel ${JSON.stringify(group.channel)} ` +
          `(channel_users.yaml has: ${list(Object.keys(listed))})`,
      });
    } else if (privates.has(group.channel)) {
      report("identities", {
        path: ["groups", groupId, "channel"],
        message:
          `a Signal group cannot feed the private channel ${JSON.stringify(group.channel)}: ` +
          `every member would read private knowledge`,
      });
    }
    unknownMembers("identities", ["groups", groupId], group.expected_members);
  }

  // groups.yaml <-> identities.yaml
  const monitoredIds = new Set<string>();
  for (const [channel, g] of Object.entries(p.groups.groups)) {
    monitoredIds.add(g.signal_group_id);
    unknownMembers("groups", ["groups", channel], g.expected_members);
    const identityGroup = own(p.identities.groups, g.signal_group_id);
    if (identityGroup === undefined) {
      report("groups", {
        path: ["groups", channel, "signal_group_id"],
        message: `group id ${
          JSON.stringify(g.signal_group_id)
        } is not in the groups of identities.yaml`,
      });
      continue;
    }
    if (identityGroup.channel !== channel) {
      report("groups", {
        path: ["groups", channel],
        at: "key",
        message: `identities.yaml maps group id ${JSON.stringify(g.signal_group_id)} to channel ` +
          `${JSON.stringify(identityGroup.channel)}, not ${JSON.stringify(channel)}`,
      });
    }
    if (!sameSet(identityGroup.expected_members, g.expected_members)) {
      report("groups", {
        path: ["groups", channel, "expected_members"],
        message:
          `expected members [${g.expected_members.join(", ")}] differ from identities.yaml ` +
          `[${identityGroup.expected_members.join(", ")}]`,
      });
    }
  }
  for (const groupId of Object.keys(p.identities.groups)) {
    if (!monitoredIds.has(groupId)) {
      report("identities", {
        path: ["groups", groupId],
        at: "key",
        message: `group is not monitored: add it to groups.yaml under its channel`,
      });
    }
  }

  // policy.yaml -> channel_users.yaml
  for (const channel of Object.keys(p.policy.memory.retention_days)) {
    if (!Object.hasOwn(listed, channel)) {
      report("policy", {
        path: ["memory", "retention_days", channel],
        at: "key",
        message: `unknown channel ${JSON.stringify(channel)} (channel_users.yaml has: ${
          list(Object.keys(listed))
        })`,
      });
    }
  }
  return out;
}
