/**
 * Check family: what the kernel lets each user do, asked as that user. For
 * the service user and every channel user, one `setpriv` process (that
 * user's uid, gid and supplementary groups, no capabilities) asks access(2)
 * about each path that matters, so the answer is the kernel's, not a model
 * of modes and groups:
 *
 * - joi reads its policies, reads and writes its state, data and every
 *   knowledge folder, and may connect to every channel's retrieve socket;
 * - each channel user reads exactly the knowledge folders of the access
 *   matrix (recipients.yaml), writes none, and opens none of joi's own
 *   state (joi.db, data/), secrets, nor any retrieve socket.
 *
 * Also the sockets themselves, when their units listen: root-owned, group
 * the service user, 0660, in a folder only root can change.
 *
 * @module
 */
import { knowledgeFolders } from "../../services/joi/knowledge/folders.ts";
import type { Recipients } from "../../services/common/policy/mod.ts";
import { retrieveSocketPath } from "../../services/common/permissions/mod.ts";
import { type Accounts, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";
import { namesOf } from "./tree_check.ts";

/** What access(2) answered for one path: read, write, search/execute. */
export interface Access {
  r: boolean;
  w: boolean;
  x: boolean;
}

/** Asks, as `user`, about each of `paths`; throws when the probe cannot run. */
export type Prober = (user: string, paths: string[]) => Access[];

const PROBE =
  'for p do r=-; w=-; x=-; [ -r "$p" ] && r=r; [ -w "$p" ] && w=w; [ -x "$p" ] && x=x; echo "$r$w$x"; done';

/** The real prober: `setpriv --reuid=U --regid=U --init-groups` running a POSIX shell loop. */
export function setprivProber(setprivBin: string, shell = "/bin/sh"): Prober {
  return (user, paths) => {
    const out = new Deno.Command(setprivBin, {
      args: [
        `--reuid=${user}`,
        `--regid=${user}`,
        "--init-groups",
        "--inh-caps=-all",
        "--",
        shell,
        "-c",
        PROBE,
        "probe",
        ...paths,
      ],
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const lines = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
    if (!out.success || lines.length !== paths.length) {
      throw new Error(
        `${setprivBin} as ${user} failed (exit ${out.code}): ` +
          new TextDecoder().decode(out.stderr).trim().slice(0, 200),
      );
    }
    return lines.map((l) => ({ r: l[0] === "r", w: l[1] === "w", x: l[2] === "x" }));
  };
}

/** Where the checked things are (already prefixed by the staging root). */
export interface AccessPaths {
  /** joi's policy folder. */
  configDir: string;
  /** joi's state folder. */
  stateDir: string;
  /** The retrieve sockets' folder. */
  socketDir: string;
}

/** Runs the access check of a household. */
export function checkAccess(
  recipients: Recipients,
  channels: Readonly<Record<string, string>>,
  where: AccessPaths,
  accounts: Accounts,
  probe: Prober,
): Findings {
  const f = new Findings();
  const svc = recipients.service_user;
  const k = `${where.stateDir}/knowledge`;
  const folders = knowledgeFolders(recipients).map((x) => ({ ...x, at: `${k}/${x.path}` }));
  const sockets = Object.keys(channels).sort().map((c) => ({
    channel: c,
    at: retrieveSocketPath(where.socketDir, c),
  }));
  const live = sockets.filter((s) => checkSocket(f, s.at, s.channel, svc, accounts));
  const policies = listFiles(where.configDir).filter((p) => /\.ya?ml$/.test(p));
  // joi's own: data/ and the files at the top of its state (joi.db, the nonce stores)
  const own = [`${where.stateDir}/data`, ...listFiles(where.stateDir)];
  const secrets = `${where.configDir}/secrets`;

  const ask = (user: string, paths: string[]): Access[] | undefined => {
    try {
      return probe(user, paths);
    } catch (e) {
      f.error(
        "access_probe_failed",
        `cannot ask the kernel what ${user} may open: ${e instanceof Error ? e.message : e}`,
        user,
        "run joi-validate-config as root (its unit needs CAP_SETUID and CAP_SETGID)",
      );
      return undefined;
    }
  };

  // joi: everything it must open
  const joiPaths = [
    ...policies,
    where.stateDir,
    ...own,
    ...folders.map((x) => x.at),
    ...live.map((s) => s.at),
  ];
  const joi = ask(svc, joiPaths);
  if (joi) {
    joiPaths.forEach((p, i) => {
      const a = joi[i]!;
      const isPolicy = i < policies.length;
      const isSocket = i >= joiPaths.length - live.length;
      const need = isPolicy ? a.r : isSocket ? a.w : a.r && a.w;
      if (!need) {
        f.error(
          "service_user_denied",
          `${svc} cannot ${isPolicy ? "read" : isSocket ? "connect to" : "read and write"} ${p}` +
            ` (the kernel says ${fmtAccess(a)}): joi would fail at start or on its first message`,
          p,
          isPolicy
            ? `chgrp ${svc} ${p} && chmod 0640 ${p} (re-run deno task install)`
            : "re-run deno task provision",
        );
      }
    });
  }

  // each channel user: its cells of the matrix, and nothing of joi's
  for (const user of [...new Set(Object.values(channels))].sort()) {
    const forbidden = [...own, secrets, ...live.map((s) => s.at)];
    const paths = [...folders.map((x) => x.at), ...forbidden];
    const got = ask(user, paths);
    if (!got) continue;
    folders.forEach((folder, i) => {
      const a = got[i]!;
      const reads = a.r && a.x;
      const should = folder.readers.includes(user);
      if (reads !== should) {
        f.critical(
          should ? "matrix_denied" : "matrix_leak",
          `${user} ${reads ? "can" : "cannot"} read ${folder.at}, but recipients.yaml says it ` +
            `${should ? "may" : "may not"}`,
          folder.at,
          "re-run deno task provision (owners, groups, modes, memberships)",
        );
      }
      if (a.w) {
        f.critical(
          "matrix_writable",
          `${user} can write ${folder.at}: only joi writes knowledge`,
          folder.at,
          "re-run deno task provision",
        );
      }
    });
    forbidden.forEach((p, j) => {
      const a = got[folders.length + j]!;
      const isSocket = j >= forbidden.length - live.length;
      if (isSocket ? a.w : a.r || a.w) {
        f.critical(
          "channel_user_reaches_joi",
          `${user} can ${isSocket ? "connect to" : "open"} ${p}: ` +
            (isSocket
              ? "any channel user could then read that channel's knowledge"
              : "joi's own state and secrets are closed to channel users"),
          p,
          isSocket ? "re-run deno task provision; systemctl daemon-reload" : `chmod go-rwx ${p}`,
        );
      }
    });
  }
  return f;
}

/** Checks one retrieve socket's owner and mode; true when it exists (its unit listens). */
function checkSocket(
  f: Findings,
  at: string,
  channel: string,
  svc: string,
  accounts: Accounts,
): boolean {
  const st = pathState(at);
  if (!st) {
    f.warning(
      "retrieve_socket_not_listening",
      `${at} does not exist: joi-retrieve-${channel}.socket is not listening`,
      at,
      "systemctl daemon-reload && systemctl restart joi.service (it pulls the sockets in)",
    );
    return false;
  }
  const names = namesOf(accounts);
  const gid = accounts.groups.get(svc)?.gid;
  if (st.type !== "other" || st.uid !== 0 || st.gid !== gid || st.mode !== 0o660) {
    f.critical(
      "retrieve_socket_open",
      `${at} is ${st.type} ${names.user(st.uid)}:${names.group(st.gid)} ${fmtMode(st.mode)}, ` +
        `expected a socket root:${svc} 0660 (only ${svc} may ask for ${channel}'s knowledge)`,
      at,
      "re-run deno task provision; systemctl daemon-reload; systemctl restart " +
        `joi-retrieve-${channel}.socket`,
    );
  }
  const dir = at.slice(0, at.lastIndexOf("/"));
  const ds = pathState(dir);
  if (ds && (ds.uid !== 0 || (ds.mode & 0o022) !== 0)) {
    f.critical(
      "retrieve_socket_dir_writable",
      `${dir} (${names.user(ds.uid)}, ${fmtMode(ds.mode)}) lets a non-root user replace a ` +
        "retrieve socket",
      dir,
      `chown root:root ${dir}; chmod 0755 ${dir}`,
    );
  }
  return true;
}

function fmtAccess(a: Access): string {
  return `${a.r ? "r" : "-"}${a.w ? "w" : "-"}${a.x ? "x" : "-"}`;
}

function listFiles(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => `${dir}/${e.name}`)
      .sort();
  } catch {
    return [];
  }
}
