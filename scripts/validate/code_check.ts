/**
 * Check family: who watches the watchmen. The code joi runs from (`/opt/joi`)
 * must not be changeable by anyone but root: the validate entry module (this
 * program) and the retrieve entry module (what sudo runs as every channel
 * user), and every directory from each up to the code directory, are
 * root-owned regular files/directories not writable by group or others.
 *
 * @module
 */
import { type Accounts, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";
import { namesOf } from "./tree_check.ts";

/** The entry modules checked, relative to the code directory. */
export const GUARDED_ENTRIES = ["scripts/validate.ts", "scripts/retrieve.ts"] as const;

/** Checks the guarded entries under `codeDir` (already prefixed by the root). */
export function checkCode(codeDir: string, accounts: Accounts): Findings {
  const f = new Findings();
  const names = namesOf(accounts);
  const seen = new Set<string>();
  for (const entry of GUARDED_ENTRIES) {
    const parts = entry.split("/");
    const chain = parts.map((_, i) => `${codeDir}/${parts.slice(0, parts.length - i).join("/")}`);
    chain.push(codeDir);
    for (const p of chain) {
      if (seen.has(p)) continue;
      seen.add(p);
      const st = pathState(p);
      const isEntry = p === `${codeDir}/${entry}`;
      if (!st) {
        f.error(
          "code_missing",
          `${p} does not exist (joi's code is expected in ${codeDir})`,
          p,
          "install the code with joi-install",
        );
        break;
      }
      const wantType = isEntry ? "file" : "dir";
      if (st.type !== wantType || st.uid !== 0 || (st.mode & 0o022) !== 0) {
        f.critical(
          "code_writable",
          `${p} (${st.type}, ${names.user(st.uid)}:${names.group(st.gid)}, ${fmtMode(st.mode)}) ` +
            `can be changed by someone other than root: whoever changes ${entry} ` +
            (entry.endsWith("retrieve.ts")
              ? "reads every channel's knowledge through sudo"
              : "decides what this validation reports"),
          p,
          `chown root:root ${p}; chmod go-w ${p}`,
        );
      }
    }
  }
  return f;
}
