/**
 * How long logs are kept, and how large they may grow, on each VM. The
 * ecosystem's tools do it (Debian ships both): logrotate for our JSON-lines
 * files, journald's own limits for the journal. Install writes the two files
 * rendered here on each VM (`/etc/logrotate.d/joi`,
 * `/etc/systemd/journald.conf.d/joi.conf`).
 *
 * - **Application logs** (`joi.log`, `knowledge.log`, `mesh.log`): rotated
 *   daily (or at 50 MB), compressed, kept 90 days.
 * - **Security logs** (`security.log`, `mesh-security.log`): rotated weekly
 *   (or at 20 MB) and compressed, but never deleted (`rotate -1`, no
 *   `maxage`): only the owner deletes them, explicitly (README, Logs). Their
 *   size is shown by `deno task doctor`, which warns when they need archiving.
 * - **The journal** (every service's stderr): at most 1 GB and 90 days, and
 *   always 2 GB of the disk left free (the mesh VM has 16 GB).
 *
 * The services keep writing after a rotation without a signal: their file
 * sink notices the file was moved and opens a new one (`log.ts`), so
 * logrotate neither copies nor truncates (no line lost in between).
 * Rotation runs as the log folder's owner (`su`), so root never follows a
 * link a service planted there.
 *
 * @module
 */

/** A VM of the deployment. */
export type LogRole = "joi" | "mesh" | "openhab";

/** The log folder on every VM. */
export const LOG_DIR = "/var/log/joi";

/** The logs each VM writes to files, and who owns them. */
export const LOG_FILES: Record<LogRole, { owner: string; app: string[]; security: string[] }> = {
  joi: { owner: "joi", app: ["joi.log", "knowledge.log"], security: ["security.log"] },
  mesh: { owner: "joi-mesh", app: ["mesh.log"], security: ["mesh-security.log"] },
  // the relay logs to the journal only
  openhab: { owner: "joi-relay", app: [], security: [] },
};

/** Days application logs and the journal are kept. */
export const KEEP_DAYS = 90;

/**
 * The logrotate file of `role` (`/etc/logrotate.d/joi`), or null when it
 * writes no files. `at` moves it (tests: a temporary folder and owner).
 */
export function renderLogrotate(
  role: LogRole,
  at: { dir: string; owner: string } = { dir: LOG_DIR, owner: LOG_FILES[role].owner },
): string | null {
  const f = LOG_FILES[role];
  if (f.app.length === 0 && f.security.length === 0) return null;
  const paths = (names: string[]) => names.map((n) => `${at.dir}/${n}`).join(" ");
  const common = [
    `    su ${at.owner} ${at.owner}`,
    "    missingok",
    "    notifempty",
    "    compress",
    "    delaycompress",
    "    dateext",
    "    dateformat -%Y%m%d-%s",
    "    # the services reopen a moved file themselves: no copytruncate, no signal",
    "    nocreate",
  ];
  return [
    `# joi's logs on the ${role} VM (written by deno task install; see services/common/log_retention.ts)`,
    "",
    `# application logs: ${KEEP_DAYS} days`,
    `${paths(f.app)} {`,
    "    daily",
    "    maxsize 50M",
    `    rotate ${KEEP_DAYS}`,
    `    maxage ${KEEP_DAYS}`,
    ...common,
    "}",
    "",
    "# security logs: rotated and compressed, never deleted here (rotate -1, no maxage);",
    "# only the owner deletes them, explicitly (README, Logs)",
    `${paths(f.security)} {`,
    "    weekly",
    "    maxsize 20M",
    "    rotate -1",
    ...common,
    "}",
    "",
  ].join("\n");
}

/** The journald drop-in of every VM (`/etc/systemd/journald.conf.d/joi.conf`). */
export function renderJournald(): string {
  return [
    "# joi: the journal is bounded on every VM (written by deno task install; see",
    "# services/common/log_retention.ts)",
    "[Journal]",
    "Storage=persistent",
    "Compress=yes",
    "SystemMaxUse=1G",
    "SystemKeepFree=2G",
    "SystemMaxFileSize=64M",
    `MaxRetentionSec=${KEEP_DAYS}day`,
    "",
  ].join("\n");
}
