/**
 * Knowledge retrieval in production, as systemd units: per channel, a socket
 * that only the service user may connect to and a template service that runs
 * one `joi-retrieve` per connection as that channel's user, with the
 * architecture document's limits (256 MB, half a CPU, 30 s, no network). No
 * setuid helper runs at all: systemd starts each process as the channel user
 * and the kernel (uid, groups, file modes) decides what it may read.
 *
 *   joi-retrieve-<channel>.socket     ListenStream=/run/joi-retrieve/<channel>.sock
 *                                     Accept=yes, root:<service user> 0660
 *   joi-retrieve-<channel>@.service   User=<channel user>, stdin/stdout = the connection
 *
 * @module
 */
import { type Layout, retrieveSocketPath } from "../permissions/mod.ts";
import { denoEnv, retrieveExecLine } from "./exec.ts";
import { hardening } from "./hardening.ts";
import { renderUnit, type UnitFile } from "./ini.ts";

/** Retrievals that may run at once per channel (each is its own process). */
export const RETRIEVE_MAX_CONNECTIONS = 4;
/** The architecture's cgroup limits of one retrieval. */
export const RETRIEVE_LIMITS = { memoryMax: "256M", cpuQuota: "50%", runtimeMaxSec: 30 } as const;

/** The socket and service template names of `channel`'s retrieval. */
export function retrieveUnitNames(channel: string): { socket: string; service: string } {
  return { socket: `joi-retrieve-${channel}.socket`, service: `joi-retrieve-${channel}@.service` };
}

/** True for a unit file name this module renders (provision removes stale ones). */
export function isRetrieveUnitName(name: string): boolean {
  return /^joi-retrieve-[a-z][a-z0-9_]{0,63}(\.socket|@\.service)$/.test(name);
}

/**
 * The two units of each channel of `layout.channels`, for the service user
 * `serviceUser` (the only one allowed to connect).
 */
export function renderRetrieveUnits(layout: Layout, serviceUser: string): UnitFile[] {
  const out: UnitFile[] = [];
  for (
    const [channel, user] of Object.entries(layout.channels).sort(([a], [b]) => a < b ? -1 : 1)
  ) {
    const names = retrieveUnitNames(channel);
    const socket = renderUnit({
      Unit: [
        [
          "Description",
          `joi knowledge retrieval for ${channel} (each connection: one joi-retrieve as ${user})`,
        ],
        ["Documentation", "file:///opt/joi/README.md"],
      ],
      Socket: [
        ["ListenStream", retrieveSocketPath(layout.retrieveSocketDir, channel)],
        ["Accept", "yes"],
        // the kernel decides who may connect: root's socket, the service user's group
        ["SocketUser", "root"],
        ["SocketGroup", serviceUser],
        ["SocketMode", "0660"],
        ["DirectoryMode", "0755"],
        ["MaxConnections", String(RETRIEVE_MAX_CONNECTIONS)],
        ["RemoveOnStop", "yes"],
      ],
    });
    const service = renderUnit({
      Unit: [
        ["Description", `joi-retrieve as ${user} for ${channel} (one connection)`],
        ["Documentation", "file:///opt/joi/README.md"],
        // a failed or timed-out retrieval leaves no failed unit behind
        ["CollectMode", "inactive-or-failed"],
      ],
      Service: [
        ["Type", "simple"],
        ["User", user],
        ["Group", user],
        ["ExecStart", retrieveExecLine(layout)],
        ["StandardInput", "socket"],
        ["StandardOutput", "socket"],
        ["StandardError", "journal"],
        ["Environment", denoEnv("retrieve", layout)],
        ["WorkingDirectory", "/"],
        ["MemoryMax", RETRIEVE_LIMITS.memoryMax],
        ["CPUQuota", RETRIEVE_LIMITS.cpuQuota],
        ["RuntimeMaxSec", String(RETRIEVE_LIMITS.runtimeMaxSec)],
        ["TimeoutStopSec", "5s"],
        ["PrivateNetwork", "yes"],
        ["IPAddressDeny", "any"],
        ...hardening({ families: "none", umask: "0077" }),
      ],
    });
    out.push({ name: names.socket, text: socket }, { name: names.service, text: service });
  }
  return out;
}
