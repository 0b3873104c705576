/**
 * Where `joi-validate-config` looks. Every system path is the production path
 * prefixed by `root` ("" for the live system, a staging folder otherwise), so
 * one run checks either the machine or a staged tree with the same code.
 *
 * @module
 */

/** Options of a validation run (all optional; defaults are production). */
export interface ValidateOptions {
  /** Prefix of every system path (default "": the live system). */
  root?: string | undefined;
  /** joi's policy folder (default `<root>/etc/joi`). */
  configDir?: string | undefined;
  /** The passwd file (default `<root>/etc/passwd`). */
  passwdFile?: string | undefined;
  /** The group file (default `<root>/etc/group`). */
  groupFile?: string | undefined;
  /** `lsattr` binary (default `/usr/bin/lsattr`); `""` skips the immutability check. */
  lsattrBin?: string | undefined;
  /** The time certificates are judged at (ms; default now), for tests. */
  clockMs?: number | undefined;
  /**
   * `setpriv` binary (default `/usr/bin/setpriv`), to ask the kernel as each
   * user what it may open; `""` skips that check (it also only runs against
   * the system's own `/etc/passwd`).
   */
  setprivBin?: string | undefined;
}

/** Installed (production) paths, before the root prefix. */
export const INSTALLED = {
  configDir: "/etc/joi",
  stateDir: "/var/lib/joi",
  codeDir: "/opt/joi",
  unitsDir: "/etc/systemd/system",
  sudoers: "/etc/sudoers.d/joi",
  auditRules: "/etc/audit/rules.d/joi.rules",
  sudoLog: "/var/log/joi-sudo.log",
  retrieveBin: "/usr/local/bin/joi-retrieve",
  retrieveSocketDir: "/run/joi-retrieve",
  secretsDir: "/etc/joi/secrets",
} as const;

/** Resolved locations of one run. */
export interface ValidatePaths {
  /** The staging prefix ("" for the live system). */
  root: string;
  /** joi's policy folder as read. */
  configDir: string;
  /** The passwd file as read. */
  passwdFile: string;
  /** The group file as read. */
  groupFile: string;
  /** The lsattr binary, or "" to skip. */
  lsattrBin: string;
  /** The setpriv binary, or "" to skip the as-each-user check. */
  setprivBin: string;
  /** Prefixes an installed absolute path with the root. */
  at: (installed: string) => string;
}

/** Resolves options to paths. */
export function resolvePaths(o: ValidateOptions = {}): ValidatePaths {
  const root = (o.root ?? "").replace(/\/+$/, "");
  if (root !== "" && !root.startsWith("/")) {
    throw new Error(`--root must be an absolute path, got ${JSON.stringify(o.root)}`);
  }
  const at = (p: string) => `${root}${p}`;
  return {
    root,
    configDir: o.configDir ?? at(INSTALLED.configDir),
    passwdFile: o.passwdFile ?? at("/etc/passwd"),
    groupFile: o.groupFile ?? at("/etc/group"),
    lsattrBin: o.lsattrBin ?? "/usr/bin/lsattr",
    setprivBin: o.setprivBin ?? "/usr/bin/setpriv",
    at,
  };
}
