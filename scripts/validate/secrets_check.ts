/**
 * Check family: secret files (the wire keys, the memory key). Every file the
 * joi unit loads as a credential exists; every file in the secrets folder is
 * a regular file with mode 0600 owned by the service user; the folder is
 * closed to others.
 *
 * @module
 */
import { type Accounts, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";
import { namesOf } from "./tree_check.ts";
import { parseUnit } from "./units_check.ts";

/** The `name -> installed path` of every `LoadCredential=` of a unit text. */
export function credentialsOf(unitText: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of parseUnit(unitText)) {
    if (e.section !== "Service" || e.key !== "LoadCredential") continue;
    const i = e.value.indexOf(":");
    if (i > 0) out.set(e.value.slice(0, i), e.value.slice(i + 1));
  }
  return out;
}

/** Checks the secrets: `credentials` are installed paths, prefixed here by `root`. */
export function checkSecrets(
  credentials: Map<string, string>,
  secretsDir: string,
  serviceUser: string,
  accounts: Accounts,
  root: string,
): Findings {
  const f = new Findings();
  const names = namesOf(accounts);
  const uid = accounts.users.get(serviceUser)?.uid;
  const checked = new Set<string>();
  const checkFile = (at: string) => {
    checked.add(at);
    const st = pathState(at);
    if (!st) return false;
    if (st.type !== "file") {
      f.error("secret_not_file", `${at} is a ${st.type}, not a regular file`, at, `replace ${at}`);
      return true;
    }
    if (st.mode !== 0o600) {
      f.add(
        st.mode & 0o077 ? "CRITICAL" : "ERROR",
        "secret_mode",
        `secret ${at} has mode ${fmtMode(st.mode)}, expected 0600`,
        at,
        `chmod 0600 ${at} (and rotate the secret if others could read it)`,
      );
    }
    if (uid !== undefined && st.uid !== uid) {
      f.error(
        "secret_owner",
        `secret ${at} is owned by ${names.user(st.uid)}, expected ${serviceUser}`,
        at,
        `chown ${serviceUser} ${at}`,
      );
    }
    return true;
  };
  for (const [name, path] of credentials) {
    const at = root + path;
    if (!checkFile(at)) {
      f.error(
        "secret_missing",
        `secret ${name} (${at}) does not exist`,
        at,
        `generate it: install -m 0600 -o ${serviceUser} ...`,
      );
    }
  }
  const dir = root + secretsDir;
  const ds = pathState(dir);
  if (ds?.type === "dir") {
    if (ds.mode & 0o077) {
      f.error(
        "secrets_dir_mode",
        `${dir} has mode ${fmtMode(ds.mode)}, expected 0700`,
        dir,
        `chmod 0700 ${dir}`,
      );
    }
    for (const e of Deno.readDirSync(dir)) {
      const at = `${dir}/${e.name}`;
      if (!checked.has(at)) checkFile(at);
    }
  }
  return f;
}
