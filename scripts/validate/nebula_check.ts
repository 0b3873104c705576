/**
 * Check family: the Nebula certificates of this VM (`/etc/nebula/ca.crt` and
 * `<node>.crt`, whichever are there). An expired one (or one not valid yet) fails the
 * validation: Nebula refuses the handshake and the VM is cut off; one ending
 * within the first of `watch.cert_warn_days` is a warning. The running
 * services tell the owner too (joi's expiry watch); this catches it at every
 * start and every day. A VM without `/etc/nebula` is not checked here (the
 * units check covers a missing Nebula).
 *
 * @module
 */
import {
  daysLeft,
  NEBULA_CERTS,
  parseNebulaCert,
} from "../../services/common/watch/nebula_cert.ts";
import { Findings } from "./finding.ts";

/** Installed folder of the certificates. */
export const NEBULA_DIR = "/etc/nebula";

/** Checks every certificate in `dir` at `now`; `warnDays` is the first warning's lead. */
export function checkNebulaCerts(dir: string, now: number, warnDays: number): Findings {
  const f = new Findings();
  // the certificates a VM may hold (never listing the folder: the keys are beside them)
  const names = NEBULA_CERTS.filter((n) => {
    try {
      Deno.lstatSync(`${dir}/${n}`);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      f.error(
        "nebula_cert_unreadable",
        `cannot read ${dir}/${n}: ${(e as Error).message}`,
        `${dir}/${n}`,
        "run joi-validate-config as root",
      );
      return false;
    }
  });
  const renew = "on the build host: deno task nebula ... --rotate, then install the new " +
    "bundle on this VM and restart nebula (README, Day-2 operations)";
  for (const name of names) {
    const path = `${dir}/${name}`;
    let cert;
    try {
      cert = parseNebulaCert(Deno.readTextFileSync(path));
    } catch (e) {
      f.error("nebula_cert_unreadable", (e as Error).message, path, `replace ${path}`);
      continue;
    }
    const what = cert.isCa ? `the Nebula CA certificate ${cert.name}` : `Nebula node ${cert.name}`;
    const end = new Date(cert.notAfter).toISOString();
    if (cert.notAfter <= now) {
      f.error(
        "nebula_cert_expired",
        `${what}'s certificate expired at ${end}: Nebula refuses it, this VM is cut off`,
        path,
        renew,
      );
    } else if (cert.notBefore > now) {
      f.error(
        "nebula_cert_not_yet_valid",
        `${what}'s certificate is valid only from ${new Date(cert.notBefore).toISOString()} ` +
          `(this VM's clock, or the build host's, is wrong)`,
        path,
        "check the clocks (chrony) of this VM and the build host, then re-sign",
      );
    } else if (daysLeft(cert, now) < warnDays) {
      f.warning(
        "nebula_cert_expiring",
        `${what}'s certificate expires in ${daysLeft(cert, now)} days (${end})`,
        path,
        renew,
      );
    }
  }
  return f;
}
