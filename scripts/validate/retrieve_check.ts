/**
 * Check family: the retrieve entry point, the one binary joi may run as a
 * channel user. It must exist as a regular file, be root:root, be writable by
 * nobody but root (nor its folder), and should be immutable (`chattr +i`,
 * read with `lsattr`; a warning when not).
 *
 * @module
 */
import { type Accounts, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";
import { namesOf } from "./tree_check.ts";

/** The attribute flags `lsattr -d` prints for `path`, or an error text. */
export function lsattrFlags(lsattrBin: string, path: string): { flags?: string; error?: string } {
  try {
    const out = new Deno.Command(lsattrBin, {
      args: ["-d", path],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success || text === "") {
      return { error: new TextDecoder().decode(out.stderr).trim() || `exit ${out.code}` };
    }
    return { flags: text.split(/\s+/)[0] ?? "" };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/** Checks the entry point at `bin` (already prefixed by the root). */
export function checkRetrieve(bin: string, accounts: Accounts, lsattrBin: string): Findings {
  const f = new Findings();
  const names = namesOf(accounts);
  const st = pathState(bin);
  if (!st) {
    f.error(
      "retrieve_missing",
      `the retrieve entry point ${bin} does not exist`,
      bin,
      "run joi-provision (installs a root-owned 0755 copy of the Deno binary)",
    );
    return f;
  }
  if (st.type !== "file") {
    f.critical(
      "retrieve_not_regular",
      `${bin} is a ${st.type}, not a regular file`,
      bin,
      `rm ${bin} and re-run joi-provision`,
    );
    return f;
  }
  if (st.uid !== 0 || st.gid !== 0) {
    f.critical(
      "retrieve_not_root_owned",
      `${bin} is owned by ${names.user(st.uid)}:${names.group(st.gid)}, not root:root ` +
        `(its owner can replace what joi runs as every channel user)`,
      bin,
      `chattr -i ${bin}; chown root:root ${bin}; chattr +i ${bin}`,
    );
  }
  if (st.mode & 0o022) {
    f.critical(
      "retrieve_writable",
      `${bin} has mode ${fmtMode(st.mode)}: writable by ${
        st.mode & 0o002 ? "every user" : `group ${names.group(st.gid)}`
      }`,
      bin,
      `chattr -i ${bin}; chmod 0755 ${bin}; chattr +i ${bin}`,
    );
  }
  if (st.mode & 0o6000) {
    f.critical(
      "retrieve_setuid",
      `${bin} has mode ${fmtMode(st.mode)}: setuid/setgid`,
      bin,
      `chmod 0755 ${bin}`,
    );
  }
  const dir = bin.replace(/\/[^/]*$/, "") || "/";
  const ds = pathState(dir);
  if (ds && (ds.uid !== 0 || (ds.mode & 0o022 && !(ds.mode & 0o1000)))) {
    f.critical(
      "retrieve_dir_writable",
      `${dir} (${names.user(ds.uid)}, ${fmtMode(ds.mode)}) lets a non-root user replace ${bin}`,
      dir,
      `chown root:root ${dir}; chmod go-w ${dir}`,
    );
  }
  if (lsattrBin !== "") {
    const { flags, error } = lsattrFlags(lsattrBin, bin);
    if (flags === undefined) {
      f.warning(
        "retrieve_immutable_unknown",
        `cannot read the attributes of ${bin} with ${lsattrBin}: ${error}`,
        bin,
        `check by hand: lsattr ${bin}`,
      );
    } else if (!flags.includes("i")) {
      f.warning(
        "retrieve_not_immutable",
        `${bin} is not immutable (attributes ${flags})`,
        bin,
        `chattr +i ${bin}`,
      );
    }
  }
  return f;
}
