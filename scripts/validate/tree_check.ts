/**
 * Check family: the knowledge and data trees. Every directory and file
 * provision creates has the expected owner, group, mode and setgid bit; every
 * file and folder inside a knowledge folder keeps the folder's group, is no
 * more open than 0640 (files) or 02750 (folders), and no symlink hides there;
 * everything inside joi's own directories (`inside: "own"`: conversation
 * memory, joi.db) belongs to the service user and is closed to group and
 * others.
 *
 * @module
 */
import { FOLDER_MODE, type PathSpec } from "../provision/plan.ts";
import { type Accounts, type PathState, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";

const SETGID = 0o2000;
/** The most open mode of a document inside a knowledge folder. */
export const MAX_FILE_MODE = 0o640;

/** uid/gid -> name lookups for messages. */
export interface Names {
  /** User name of a uid (or the number). */
  user: (uid: number) => string;
  /** Group name of a gid (or the number). */
  group: (gid: number) => string;
}

/** Name lookups over the accounts. */
export function namesOf(a: Accounts): Names {
  const users = new Map([...a.users.values()].map((u) => [u.uid, u.name]));
  const groups = new Map([...a.groups.values()].map((g) => [g.gid, g.name]));
  return {
    user: (uid) => users.get(uid) ?? String(uid),
    group: (gid) => groups.get(gid) ?? String(gid),
  };
}

function ownership(
  f: Findings,
  at: string,
  st: PathState,
  spec: { owner: string; group: string },
  a: Accounts,
  names: Names,
): void {
  const uid = a.users.get(spec.owner)?.uid;
  const gid = a.groups.get(spec.group)?.gid;
  if (uid !== undefined && st.uid !== uid) {
    f.error(
      "wrong_owner",
      `${at} is owned by ${names.user(st.uid)}, expected ${spec.owner}`,
      at,
      `chown ${spec.owner} ${at}`,
    );
  }
  if (gid !== undefined && st.gid !== gid) {
    f.error(
      "wrong_group",
      `${at} has group ${names.group(st.gid)}, expected ${spec.group}`,
      at,
      `chgrp ${spec.group} ${at}`,
    );
  }
}

function modes(f: Findings, at: string, st: PathState, want: number): void {
  if ((want & SETGID) && !(st.mode & SETGID)) {
    f.error(
      "setgid_missing",
      `${at} has mode ${fmtMode(st.mode)} without the setgid bit (expected ${fmtMode(want)})`,
      at,
      `chmod g+s ${at}`,
    );
  }
  if ((st.mode & ~SETGID) !== (want & ~SETGID) || (!(want & SETGID) && (st.mode & SETGID))) {
    const open = (st.mode & 0o007) !== 0;
    f.add(
      open ? "CRITICAL" : "ERROR",
      "wrong_mode",
      `${at} has mode ${fmtMode(st.mode)}, expected ${fmtMode(want)}` +
        (open ? " (others can access it)" : ""),
      at,
      `chmod ${fmtMode(want)} ${at}`,
    );
  }
}

/** Checks the provisioned paths (those without fixed content) under `root`. */
export function checkTree(
  specs: readonly PathSpec[],
  accounts: Accounts,
  root: string,
): Findings {
  const f = new Findings();
  const names = namesOf(accounts);
  const managed = new Set(specs.map((s) => s.path));
  for (const spec of specs) {
    if (spec.content !== undefined) continue;
    const at = root + spec.path;
    const st = pathState(at);
    if (!st) {
      f.error(
        "path_missing",
        `${spec.type === "dir" ? "directory" : "file"} ${at} does not exist`,
        at,
        `run joi-provision (creates it ${spec.owner}:${spec.group} ${fmtMode(spec.mode)})`,
      );
      continue;
    }
    if (st.type === "symlink") {
      f.critical(
        "unexpected_symlink",
        `${at} is a symlink; expected a ${spec.type}`,
        at,
        `remove the link and re-run joi-provision`,
      );
      continue;
    }
    if (st.type !== spec.type) {
      f.error(
        "wrong_type",
        `${at} is a ${st.type}, expected a ${spec.type}`,
        at,
        "move it away and re-run joi-provision",
      );
      continue;
    }
    ownership(f, at, st, spec, accounts, names);
    modes(f, at, st, spec.mode);
    const isManaged = (p: string) => managed.has(p.slice(root.length));
    if (spec.type === "dir" && spec.mode === FOLDER_MODE) {
      walkFolder(f, at, spec, accounts, names, isManaged);
    }
    if (spec.type === "dir" && spec.inside === "own") {
      walkOwn(f, at, spec.owner, accounts, names, isManaged);
    }
  }
  return f;
}

/**
 * The entries of `dir` in name order, with their state, leaving out what
 * provision manages (checked on its own); an unlistable folder is a finding.
 */
function unmanagedEntries(
  f: Findings,
  dir: string,
  isManaged: (path: string) => boolean,
): { at: string; st: PathState }[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    f.error(
      "unreadable",
      `cannot list ${dir}: ${e instanceof Error ? e.message : e}`,
      dir,
      "run joi-validate-config as root",
    );
    return [];
  }
  const out: { at: string; st: PathState }[] = [];
  for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
    const at = `${dir}/${e.name}`;
    if (isManaged(at)) continue;
    const st = pathState(at);
    if (st) out.push({ at, st });
  }
  return out;
}

/** Checks everything inside one knowledge folder (documents, indexes, subfolders). */
function walkFolder(
  f: Findings,
  dir: string,
  spec: PathSpec,
  accounts: Accounts,
  names: Names,
  isManaged: (path: string) => boolean,
): void {
  for (const { at, st } of unmanagedEntries(f, dir, isManaged)) {
    if (st.type === "symlink") {
      f.critical(
        "unexpected_symlink",
        `${at} is a symlink inside a knowledge folder (it could expose another channel's files)`,
        at,
        `rm ${at}`,
      );
      continue;
    }
    const gid = accounts.groups.get(spec.group)?.gid;
    if (gid !== undefined && st.gid !== gid) {
      f.error(
        "wrong_group",
        `${at} has group ${names.group(st.gid)}, expected ${spec.group} (its folder's group)`,
        at,
        `chgrp ${spec.group} ${at}`,
      );
    }
    if (st.type === "dir") {
      modes(f, at, st, spec.mode);
      walkFolder(f, at, spec, accounts, names, isManaged);
    } else if (st.type === "file") {
      if ((st.mode & ~MAX_FILE_MODE) !== 0) {
        f.add(
          (st.mode & 0o007) !== 0 ? "CRITICAL" : "ERROR",
          "wrong_mode",
          `${at} has mode ${fmtMode(st.mode)}, more open than ${fmtMode(MAX_FILE_MODE)}`,
          at,
          `chmod ${fmtMode(MAX_FILE_MODE)} ${at}`,
        );
      }
    } else {
      f.error("wrong_type", `${at} is a ${st.type} inside a knowledge folder`, at, `rm ${at}`);
    }
  }
}

/**
 * Checks everything inside one of joi's own directories (not itself managed):
 * owned by `owner`, no group or other permission bit, no symlink.
 */
function walkOwn(
  f: Findings,
  dir: string,
  owner: string,
  accounts: Accounts,
  names: Names,
  isManaged: (path: string) => boolean,
): void {
  const uid = accounts.users.get(owner)?.uid;
  for (const { at, st } of unmanagedEntries(f, dir, isManaged)) {
    if (st.type === "symlink") {
      f.critical(
        "unexpected_symlink",
        `${at} is a symlink inside ${owner}'s own state (it could redirect a write)`,
        at,
        `rm ${at}`,
      );
      continue;
    }
    if (uid !== undefined && st.uid !== uid) {
      f.error(
        "wrong_owner",
        `${at} is owned by ${names.user(st.uid)}, expected ${owner} (its own state: ` +
          `${owner} must open it, no channel user may)`,
        at,
        `chown ${owner}:${owner} ${at}`,
      );
    }
    if (st.mode & 0o077) {
      f.add(
        (st.mode & 0o007) !== 0 ? "CRITICAL" : "ERROR",
        "wrong_mode",
        `${at} has mode ${fmtMode(st.mode)}: ${owner}'s own state must be closed to group ` +
          `and others (0600 files, 0700 folders)`,
        at,
        `chmod go-rwx ${at}`,
      );
    }
    if (st.type === "dir") walkOwn(f, at, owner, accounts, names, isManaged);
  }
}
