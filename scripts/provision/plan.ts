/**
 * What a household needs (users, groups, exact memberships, the knowledge and
 * data trees with owners, modes and setgid bits, the audit rules, and the
 * files of the retrieval mechanism: in production joi.service and each
 * channel's retrieve socket and service; in the local run the sudoers file)
 * computed from `recipients.yaml`, and the difference from what the system
 * has: provision applies only that difference, so a second run does nothing.
 *
 * @module
 */
import {
  channelUsers,
  criticalUser,
  knowledgeFolders,
} from "../../services/joi/knowledge/folders.ts";
import type { UnitFile } from "../../services/common/units/mod.ts";
import { renderAuditRules } from "./audit.ts";
import { renderSudoers } from "./sudoers.ts";
import { type Accounts, type PathState, pathState } from "./system.ts";
import type { Recipients } from "../../services/common/policy/recipients.ts";

/** A directory or file the household needs. */
export interface PathSpec {
  /** Absolute path (as installed, without the staging root). */
  path: string;
  /** `dir`, an empty `file` created if missing, or a file with `content`. */
  type: "dir" | "file";
  /** Owner user name. */
  owner: string;
  /** Group name. */
  group: string;
  /** Mode including setgid (e.g. 0o2750). */
  mode: number;
  /** Exact content (sudoers, audit rules); undefined: created empty, content untouched. */
  content?: string;
  /** `sudoers`: validated with visudo before it is moved into place. */
  validate?: "sudoers";
  /**
   * `own`: everything inside (not itself managed) belongs to `owner` and is
   * closed to group and others: joi's own stores (conversation memory, the
   * outbox, nonces), which no channel user may open.
   */
  inside?: "own";
}

/** Everything a household needs. */
export interface DesiredState {
  /** Groups that must exist (besides each user's own group). */
  groups: string[];
  /** Users that must exist (system, nologin, no home, own group). */
  users: string[];
  /** Exact supplementary members of each managed group. */
  memberships: Record<string, string[]>;
  /** Directories and files, parents first. */
  paths: PathSpec[];
  /** Files that must not exist: in `dir`, every name `stale` accepts that `paths` does not hold. */
  absent: { dir: string; stale: (name: string) => boolean; why: string }[];
  /** The retrieve entry point: a root-owned 0755 copy of `source`. */
  entry?: { path: string; source: string };
}

/**
 * How joi's retrieval runs: `units` (production: systemd starts joi-retrieve
 * as the channel user per connection; no sudo anywhere) or `sudo` (the local
 * run and the sudo-based tests: a sudoers file pins the command line).
 */
export type Retrieval =
  | {
    kind: "units";
    /** Where unit files go (`/etc/systemd/system`). */
    unitsDir: string;
    /** joi.service and every channel's retrieve units, rendered for this household. */
    units: UnitFile[];
    /** True for a unit name provision owns (stale ones are removed). */
    isManagedUnit: (name: string) => boolean;
    /** The sudoers file an older install may have left (removed: joi needs no sudo). */
    sudoersPath: string;
  }
  | {
    kind: "sudo";
    /** The sudoers argument pattern (`sudoersArgsPattern`). */
    argsPattern: string;
    /** Where the sudoers file goes (`/etc/sudoers.d/joi`). */
    sudoersPath: string;
    /** sudo's log for the service user (`/var/log/joi-sudo.log`). */
    sudoLog: string;
    /** The Deno binary to install as the entry point (omit to leave it alone). */
    entrySource?: string | undefined;
  };

/** Inputs of {@link desiredState}. */
export interface ProvisionInput {
  /** recipients.yaml. */
  recipients: Recipients;
  /** joi's state directory (absolute). */
  stateDir: string;
  /** joi's configuration directory (absolute, for the audit rules). */
  configDir: string;
  /** The installed retrieve entry point. */
  retrieveBin: string;
  /** Where the audit rules go (`/etc/audit/rules.d/joi.rules`). */
  auditRulesPath: string;
  /** The retrieval mechanism and its files. */
  retrieval: Retrieval;
}

/** Mode of knowledge folders: rwx joi, r-x group, setgid (new files keep the group). */
export const FOLDER_MODE = 0o2750;
/** Mode of the directories leading to the folders. */
export const TREE_MODE = 0o750;
/** Mode of joi's own data directory (conversation memory): no group, no others. */
export const DATA_MODE = 0o700;

/** The expected tree, users, groups and files of a household. */
export function desiredState(i: ProvisionInput): DesiredState {
  const r = i.recipients;
  const svc = r.service_user;
  const all = r.all_channels_group;
  const users = channelUsers(r);
  const folders = knowledgeFolders(r);
  const critical = criticalUser(r);
  const groups = [all];
  const memberships: Record<string, string[]> = { [all]: users };
  for (const f of folders) {
    if (f.kind === "public" || f.kind === "group") {
      groups.push(f.group);
      memberships[f.group] = f.readers;
    }
  }
  // each channel user's own group has no supplementary member: private folders
  // and critical's folder stay theirs alone
  for (const u of users) memberships[u] = [];
  if (critical) {
    for (const [g, members] of Object.entries(memberships)) {
      if (users.includes(g) && members.includes(critical)) {
        throw new Error(`plan: critical would join private group ${g}`);
      }
    }
  }
  const k = `${i.stateDir}/knowledge`;
  const d = `${i.stateDir}/data`;
  const paths: PathSpec[] = [
    // channel users pass through to knowledge/; joi.db and friends inside are joi's own
    { path: i.stateDir, type: "dir", owner: svc, group: all, mode: TREE_MODE, inside: "own" },
    { path: k, type: "dir", owner: svc, group: all, mode: TREE_MODE },
  ];
  const seen = new Set(paths.map((p) => p.path));
  const dir = (path: string, group: string, mode: number) => {
    if (seen.has(path)) return;
    seen.add(path);
    paths.push({ path, type: "dir", owner: svc, group, mode });
  };
  for (const f of folders) {
    const parts = f.path.split("/");
    for (let n = 1; n < parts.length; n++) {
      dir(`${k}/${parts.slice(0, n).join("/")}`, all, TREE_MODE);
    }
    dir(`${k}/${f.path}`, f.group, FOLDER_MODE);
    for (const sub of f.subdirs) dir(`${k}/${f.path}/${sub}`, f.group, FOLDER_MODE);
  }
  // Conversation memory is joi's own: joi writes every channel's store and no
  // channel user reads one (retrieve reads knowledge indexes only), so data/
  // is joi:joi 0700 and joi creates each store 0600 (memory/stores.ts).
  paths.push({ path: d, type: "dir", owner: svc, group: svc, mode: DATA_MODE, inside: "own" });
  const absent: DesiredState["absent"] = [];
  const rv = i.retrieval;
  if (rv.kind === "sudo") {
    paths.push({
      path: rv.sudoersPath,
      type: "file",
      owner: "root",
      group: "root",
      mode: 0o440,
      content: renderSudoers({
        serviceUser: svc,
        channelUsers: users,
        retrieveBin: i.retrieveBin,
        argsPattern: rv.argsPattern,
        logFile: rv.sudoLog,
      }),
      validate: "sudoers",
    });
  } else {
    for (const u of rv.units) {
      paths.push({
        path: `${rv.unitsDir}/${u.name}`,
        type: "file",
        owner: "root",
        group: "root",
        mode: 0o644,
        content: u.text,
      });
    }
    absent.push({
      dir: rv.unitsDir,
      stale: rv.isManagedUnit,
      why: "a channel recipients.yaml no longer has",
    });
    const sudoers = rv.sudoersPath;
    const name = sudoers.slice(sudoers.lastIndexOf("/") + 1);
    absent.push({
      dir: sudoers.slice(0, sudoers.lastIndexOf("/")),
      stale: (n) => n === name,
      why: "retrieval runs as systemd units: joi needs no sudo",
    });
  }
  paths.push({
    path: i.auditRulesPath,
    type: "file",
    owner: "root",
    group: "root",
    mode: 0o640,
    content: renderAuditRules({
      stateDir: i.stateDir,
      configDir: i.configDir,
      retrieveBin: i.retrieveBin,
      ...(rv.kind === "sudo"
        ? { sudoLog: rv.sudoLog, privilegeFiles: [rv.sudoersPath] }
        : { privilegeFiles: rv.units.map((u) => `${rv.unitsDir}/${u.name}`) }),
    }),
  });
  return {
    groups: [...new Set(groups)],
    users: [svc, ...users],
    memberships,
    paths,
    absent,
    ...(rv.kind === "sudo" && rv.entrySource
      ? { entry: { path: i.retrieveBin, source: rv.entrySource } }
      : {}),
  };
}

/** One change provision makes. */
export type Action =
  | { kind: "add_group"; group: string }
  | { kind: "add_user"; user: string }
  | { kind: "add_member"; group: string; user: string }
  | { kind: "remove_member"; group: string; user: string }
  | { kind: "create"; spec: PathSpec }
  | { kind: "fix"; spec: PathSpec; was: string }
  | { kind: "write"; spec: PathSpec }
  | { kind: "remove"; path: string; why: string }
  | { kind: "install_entry"; path: string; source: string };

/** How the plan reads the system (injectable for staging). */
export interface SystemView {
  /** Users and groups. */
  accounts: Accounts;
  /** The state of a path (already prefixed by the staging root). */
  stat: (path: string) => PathState | undefined;
  /** Current content of a file, or undefined. */
  read: (path: string) => string | undefined;
  /** True if the installed entry point equals its source. */
  entryCurrent: (path: string, source: string) => boolean;
  /** The names in a folder (already prefixed by the staging root); none if it does not exist. */
  list: (dir: string) => string[];
  /** Staging root ("" for the live system). */
  root: string;
  /** Skip users, groups and memberships (staging). */
  filesOnly: boolean;
}

const fmtMode = (m: number) => `0${m.toString(8)}`;

/** The actions that bring the system to `want`, in order. */
export function diff(want: DesiredState, sys: SystemView): Action[] {
  const actions: Action[] = [];
  const { users, groups } = sys.accounts;
  if (!sys.filesOnly) {
    for (const u of want.users) if (!users.has(u)) actions.push({ kind: "add_user", user: u });
    for (const g of want.groups) if (!groups.has(g)) actions.push({ kind: "add_group", group: g });
    for (const [g, members] of Object.entries(want.memberships)) {
      const now = new Set(groups.get(g)?.members ?? []);
      for (const m of members) {
        if (!now.has(m)) actions.push({ kind: "add_member", group: g, user: m });
      }
      for (const m of now) {
        if (!members.includes(m)) actions.push({ kind: "remove_member", group: g, user: m });
      }
    }
  }
  const uid = (n: string) => users.get(n)?.uid;
  const gid = (n: string) => groups.get(n)?.gid;
  for (const spec of want.paths) {
    const st = sys.stat(sys.root + spec.path);
    if (!st) {
      actions.push(spec.content !== undefined ? { kind: "write", spec } : { kind: "create", spec });
      continue;
    }
    if (st.type !== spec.type) {
      throw new Error(
        `provision: ${sys.root + spec.path} is a ${st.type}, expected a ${spec.type}; ` +
          `move it away and re-run`,
      );
    }
    if (spec.content !== undefined && sys.read(sys.root + spec.path) !== spec.content) {
      actions.push({ kind: "write", spec });
      continue;
    }
    // An owner or group that does not exist yet (the plan creates it above)
    // cannot be what the path has now: it needs the fix. Only a staging run,
    // which creates no account, lets an unknown name pass.
    const wantUid = uid(spec.owner);
    const wantGid = gid(spec.group);
    const ownerOk = wantUid === undefined ? sys.filesOnly : st.uid === wantUid;
    const groupOk = wantGid === undefined ? sys.filesOnly : st.gid === wantGid;
    if (!ownerOk || !groupOk || st.mode !== spec.mode) {
      actions.push({
        kind: "fix",
        spec,
        was: `${st.uid}:${st.gid} ${fmtMode(st.mode)}`,
      });
    }
  }
  const wanted = new Set(want.paths.map((p) => p.path));
  for (const rule of want.absent) {
    for (const name of sys.list(sys.root + rule.dir).sort()) {
      const path = `${rule.dir}/${name}`;
      if (rule.stale(name) && !wanted.has(path)) {
        actions.push({ kind: "remove", path, why: rule.why });
      }
    }
  }
  if (want.entry && !sys.entryCurrent(sys.root + want.entry.path, want.entry.source)) {
    actions.push({ kind: "install_entry", path: want.entry.path, source: want.entry.source });
  }
  return actions;
}

/** One line per action, for `--dry-run` and logs. */
export function describe(a: Action): string {
  switch (a.kind) {
    case "add_group":
      return `groupadd --system ${a.group}`;
    case "add_user":
      return `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${a.user}`;
    case "add_member":
      return `gpasswd -a ${a.user} ${a.group}`;
    case "remove_member":
      return `gpasswd -d ${a.user} ${a.group}`;
    case "create":
      return `${a.spec.type === "dir" ? "mkdir" : "touch"} ${a.spec.path} ` +
        `(${a.spec.owner}:${a.spec.group} ${fmtMode(a.spec.mode)})`;
    case "fix":
      return `chown/chmod ${a.spec.path} ${a.spec.owner}:${a.spec.group} ${fmtMode(a.spec.mode)} ` +
        `(was ${a.was})`;
    case "write":
      return `write ${a.spec.path} (${a.spec.owner}:${a.spec.group} ${fmtMode(a.spec.mode)}` +
        `${a.spec.validate ? ", validated with visudo -c" : ""})`;
    case "remove":
      return `rm ${a.path} (${a.why})`;
    case "install_entry":
      return `install -o root -g root -m 0755 ${a.source} ${a.path}`;
  }
}

/** The live view of the system (or of a staging root). */
export function systemView(accounts: Accounts, root = "", filesOnly = false): SystemView {
  return {
    accounts,
    stat: pathState,
    read: (p) => {
      try {
        return Deno.readTextFileSync(p);
      } catch {
        return undefined;
      }
    },
    entryCurrent: (p, source) => sameFile(p, source),
    list: (dir) => {
      try {
        return [...Deno.readDirSync(dir)].map((e) => e.name);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return [];
        throw e;
      }
    },
    root,
    filesOnly,
  };
}

/** True if `a` exists, is root-owned 0755 and has the same bytes as `b`. */
export function sameFile(a: string, b: string): boolean {
  const sa = pathState(a);
  const sb = pathState(b);
  if (!sa || !sb || sa.type !== "file" || sa.size !== sb.size) return false;
  if (sa.uid !== 0 || sa.gid !== 0 || sa.mode !== 0o755) return false;
  const fa = Deno.openSync(a);
  const fb = Deno.openSync(b);
  try {
    const ba = new Uint8Array(1 << 20);
    const bb = new Uint8Array(1 << 20);
    for (;;) {
      const na = readFull(fa, ba);
      const nb = readFull(fb, bb);
      if (na !== nb) return false;
      if (na === 0) return true;
      for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
    }
  } finally {
    fa.close();
    fb.close();
  }
}

function readFull(f: Deno.FsFile, buf: Uint8Array): number {
  let off = 0;
  while (off < buf.length) {
    const n = f.readSync(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}
