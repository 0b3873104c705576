/**
 * The full sandbox systemd offers, minus exactly what a unit states it needs:
 * one definition, so every unit gets every protection unless it says why not.
 * `MemoryDenyWriteExecute=` stays off for JIT runtimes (V8, the JVM): with it
 * Deno aborts (security-notes.md).
 *
 * @module
 */
import type { Section } from "./ini.ts";

/** How one unit deviates from the full sandbox. */
export interface HardeningOptions {
  /** Capability bounding set ("" = none). */
  caps?: string;
  /** Ambient capabilities ("" = none). */
  ambient?: string;
  /** Leave PrivateUsers off (capabilities on host resources, setuid to host users). */
  hostUsers?: boolean;
  /** Device section instead of PrivateDevices=yes alone. */
  devices?: Section;
  /** ProcSubset=pid (default yes). */
  procSubset?: boolean;
  /** RestrictAddressFamilies (`none` for no socket at all). */
  families: string;
  /** The SystemCallFilter deny list (after @system-service). */
  denySyscalls?: string;
  /** W^X (off for JIT runtimes: V8, the JVM). */
  memoryDenyWriteExecute?: boolean;
  /** RemoveIPC (default yes). */
  removeIpc?: boolean;
  /** UMask. */
  umask: string;
}

/** The sandbox section of a unit (see the module doc). NoNewPrivileges is always on. */
export function hardening(o: HardeningOptions): Section {
  return [
    ["NoNewPrivileges", "yes"],
    ["CapabilityBoundingSet", o.caps ?? ""],
    ["AmbientCapabilities", o.ambient ?? ""],
    ["PrivateTmp", "yes"],
    ...(o.devices ?? [["PrivateDevices", "yes"]] as Section),
    ["DevicePolicy", "closed"],
    ["PrivateIPC", "yes"],
    ["PrivateMounts", "yes"],
    ["PrivateUsers", o.hostUsers ? undefined : "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["ProtectKernelTunables", "yes"],
    ["ProtectKernelModules", "yes"],
    ["ProtectKernelLogs", "yes"],
    ["ProtectControlGroups", "yes"],
    ["ProtectClock", "yes"],
    ["ProtectHostname", "yes"],
    ["ProtectProc", "invisible"],
    ["ProcSubset", o.procSubset === false ? undefined : "pid"],
    ["RestrictAddressFamilies", o.families],
    ["RestrictNamespaces", "yes"],
    ["RestrictRealtime", "yes"],
    ["RestrictSUIDSGID", "yes"],
    ["LockPersonality", "yes"],
    ["MemoryDenyWriteExecute", o.memoryDenyWriteExecute ? "yes" : undefined],
    ["SystemCallArchitectures", "native"],
    [
      "SystemCallFilter",
      ["@system-service", o.denySyscalls ?? "~@privileged @resources @mount @debug @obsolete"],
    ],
    ["SystemCallErrorNumber", "EPERM"],
    ["KeyringMode", "private"],
    ["RemoveIPC", o.removeIpc === false ? undefined : "yes"],
    ["UMask", o.umask],
  ];
}

/** The base `Environment=` of every Deno unit: the shipped cache, no update check (see `denoEnv`). */
export const DENO_ENV: readonly string[] = [
  "DENO_DIR=/opt/joi/.deno",
  "DENO_NO_UPDATE_CHECK=1",
  "NO_COLOR=1",
];
