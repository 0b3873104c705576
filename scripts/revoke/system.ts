/**
 * The system side of a revocation: the recipient's channel users leave every
 * group they are a supplementary member of, are locked and expired (kept for
 * the audit trail), and their processes are ended; their channels' retrieve
 * sockets are stopped; then joi is told to reload (systemd when it runs, else
 * SIGHUP to the pid in a pid file).
 *
 * @module
 */
import type { Accounts } from "../provision/system.ts";
import type { Revocation } from "./edit.ts";

/** Absolute paths of the binaries (the manifest admits exactly these). */
export interface Tools {
  /** usermod (lock, expire). */
  usermod: string;
  /** gpasswd (leave a group). */
  gpasswd: string;
  /** pkill (end processes). */
  pkill: string;
  /** systemctl (reload joi when systemd runs). */
  systemctl: string;
  /** kill (SIGHUP to joi's pid otherwise). */
  kill: string;
}

/** The Debian paths. */
export const DEFAULT_TOOLS: Tools = {
  usermod: "/usr/sbin/usermod",
  gpasswd: "/usr/bin/gpasswd",
  pkill: "/usr/bin/pkill",
  systemctl: "/usr/bin/systemctl",
  kill: "/usr/bin/kill",
};

/** One command of the plan. */
export interface Command {
  /** Binary (absolute). */
  bin: string;
  /** Arguments. */
  args: string[];
  /** Exit codes that mean success (pkill: 1 = nothing to end). */
  okCodes: number[];
}

/** The account commands, in order: leave groups, lock, end processes. */
export function accountCommands(rev: Revocation, accounts: Accounts, tools: Tools): Command[] {
  const out: Command[] = [];
  const present = rev.users.filter((u) => accounts.users.has(u));
  for (const u of present) {
    for (const g of [...accounts.groups.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
      if (g.name !== u && g.members.includes(u)) {
        out.push({ bin: tools.gpasswd, args: ["-d", u, g.name], okCodes: [0] });
      }
    }
  }
  for (const u of present) {
    out.push({ bin: tools.usermod, args: ["--lock", "--expiredate", "1", u], okCodes: [0] });
  }
  for (const u of present) {
    out.push({ bin: tools.pkill, args: ["-KILL", "-u", u], okCodes: [0, 1] });
  }
  return out;
}

/**
 * The systemd commands that retire the revoked channels' retrieve units once
 * their files are gone: stop each socket (its file disappears, a connection
 * in flight ends), then reload systemd's view of the units.
 */
export function retireCommands(
  tools: Tools,
  sockets: string[],
  systemdRunning: boolean,
): Command[] {
  if (!systemdRunning) return [];
  return [
    ...sockets.map((s) => ({ bin: tools.systemctl, args: ["stop", s], okCodes: [0, 5] })),
    { bin: tools.systemctl, args: ["daemon-reload"], okCodes: [0] },
  ];
}

/** How joi is told to reload. */
export type Reload =
  | { kind: "systemd"; command: Command }
  | { kind: "pid"; pid: number; command: Command }
  | { kind: "none"; reason: string };

/** Chooses the reload method: systemd if it runs, else the pid file. */
export function reloadMethod(
  tools: Tools,
  pidFile: string,
  systemdRunning: boolean,
  unit = "joi.service",
): Reload {
  if (systemdRunning) {
    return {
      kind: "systemd",
      command: { bin: tools.systemctl, args: ["reload", unit], okCodes: [0] },
    };
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(pidFile).trim();
  } catch (e) {
    return {
      kind: "none",
      reason: `systemd is not running and ${pidFile} cannot be read ` +
        `(${e instanceof Error ? e.message : e}); send SIGHUP to joi by hand`,
    };
  }
  if (!/^[1-9][0-9]{0,9}$/.test(text)) {
    return {
      kind: "none",
      reason: `${pidFile} does not hold a pid (${JSON.stringify(text.slice(0, 20))})`,
    };
  }
  const pid = Number(text);
  return {
    kind: "pid",
    pid,
    command: { bin: tools.kill, args: ["-HUP", String(pid)], okCodes: [0] },
  };
}

/** True when systemd is PID 1 (sd_booted: `/run/systemd/system` exists). */
export function systemdRunning(marker = "/run/systemd/system"): boolean {
  try {
    return Deno.statSync(marker).isDirectory;
  } catch {
    return false;
  }
}

/** Shell-like rendering of a command, for plans and errors. */
export function show(c: Command): string {
  return [c.bin, ...c.args].join(" ");
}

/** Runs a command; throws naming it and its stderr unless its exit code is ok. */
export async function runCommand(c: Command): Promise<void> {
  const out = await new Deno.Command(c.bin, {
    args: c.args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!c.okCodes.includes(out.code)) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${show(c)} failed (exit ${out.code}): ${err || "no message"}`);
  }
}
