/**
 * Check family: users and groups. Every channel user and the service user
 * exist; every reader group exists; each managed group has exactly the
 * supplementary members recipients.yaml implies (no more, no less); the
 * critical user is in no private group, neither as a member nor by its
 * primary group.
 *
 * Reads `/etc/passwd` and `/etc/group` itself: no `id`/`getent` spawns.
 *
 * @module
 */
import type { Recipients } from "../../services/common/policy/mod.ts";
import { criticalUser } from "../../services/joi/knowledge/folders.ts";
import type { DesiredState } from "../provision/plan.ts";
import type { Accounts } from "../provision/system.ts";
import { Findings } from "./finding.ts";

/** Checks accounts against the desired state. */
export function checkAccounts(
  recipients: Recipients,
  want: DesiredState,
  accounts: Accounts,
  where: { passwdFile: string; groupFile: string },
): Findings {
  const f = new Findings();
  const { users, groups } = accounts;
  const svc = recipients.service_user;
  for (const u of want.users) {
    if (users.has(u)) continue;
    const isSvc = u === svc;
    f.error(
      isSvc ? "service_user_missing" : "channel_user_missing",
      `${isSvc ? "service" : "channel"} user ${u} does not exist`,
      where.passwdFile,
      `run joi-provision (useradd --system --user-group --shell /usr/sbin/nologin ${u})`,
    );
  }
  // each channel user's own group must exist and be its primary group
  const channelUsers = want.users.filter((u) => u !== svc);
  for (const u of channelUsers) {
    const user = users.get(u);
    const own = groups.get(u);
    if (!user) continue;
    if (!own) {
      f.error(
        "group_missing",
        `group ${u} (the own group of channel user ${u}) does not exist`,
        where.groupFile,
        `groupadd --system ${u} && usermod -g ${u} ${u}`,
      );
    } else if (user.gid !== own.gid) {
      f.error(
        "wrong_primary_group",
        `channel user ${u} has primary gid ${user.gid}, not its own group ${u} (${own.gid})`,
        where.passwdFile,
        `usermod -g ${u} ${u}`,
      );
    }
  }
  for (const g of want.groups) {
    if (!groups.has(g)) {
      f.error(
        "group_missing",
        `reader group ${g} does not exist`,
        where.groupFile,
        `run joi-provision (groupadd --system ${g})`,
      );
    }
  }

  // the critical user must never reach private knowledge
  const critical = criticalUser(recipients);
  const privateGroups = Object.values(recipients.recipients).map((r) => r.private_user);
  const criticalEntry = critical ? users.get(critical) : undefined;
  const flagged = new Set<string>();
  if (critical) {
    for (const pg of privateGroups) {
      const g = groups.get(pg);
      if (!g) continue;
      const byMember = g.members.includes(critical);
      const byPrimary = criticalEntry !== undefined && criticalEntry.gid === g.gid;
      if (byMember || byPrimary) {
        flagged.add(`${pg}\0${critical}`);
        f.critical(
          "critical_in_private_group",
          `${critical} is in the private group ${pg}` +
            (byPrimary ? " (as its primary group)" : ""),
          where.groupFile,
          byPrimary ? `usermod -g ${critical} ${critical}` : `gpasswd -d ${critical} ${pg}`,
        );
      }
    }
  }

  for (const [g, expected] of Object.entries(want.memberships)) {
    const entry = groups.get(g);
    if (!entry) continue;
    const now = new Set(entry.members);
    const exp = new Set(expected);
    for (const m of [...now].sort()) {
      if (exp.has(m) || flagged.has(`${g}\0${m}`)) continue;
      f.error(
        "extra_group_member",
        `${m} is a member of ${g}, which recipients.yaml does not imply ` +
          `(expected members: ${[...exp].sort().join(", ") || "none"})`,
        where.groupFile,
        `gpasswd -d ${m} ${g}`,
      );
    }
    for (const m of [...exp].sort()) {
      if (now.has(m) || !users.has(m)) continue;
      f.error(
        "missing_group_member",
        `${m} is not a member of ${g}, which recipients.yaml implies`,
        where.groupFile,
        `gpasswd -a ${m} ${g}`,
      );
    }
  }
  return f;
}
