/**
 * The systemd units of a production deployment, rendered from the permission
 * manifest: the `ExecStart=` of every Deno service is `denoRunArgs` of its
 * manifest entry under the production layout, so the units cannot carry a flag
 * the manifest does not state. `deno task sync` writes them to `systemd/`;
 * a test fails when the committed files drift.
 *
 * Every service runs as its own user under the full sandbox systemd offers a
 * JIT runtime. `MemoryDenyWriteExecute=` stays off because V8's JIT needs W^X
 * mappings (with it, Deno aborts; see security-notes.md).
 *
 * @module
 */
import {
  denoRunArgs,
  type Layout,
  type ProductionAddresses,
  productionLayout,
  type ProgramName,
  programSpec,
  UNIT_NAMES,
  type WebSearchAccess,
} from "./permissions/mod.ts";
import type { Tools } from "./policy/tools.ts";

/** A rendered unit file. */
export interface UnitFile {
  /** File name, e.g. `joi.service`. */
  name: string;
  /** File content. */
  text: string;
}

type Section = [string, string | string[] | undefined][];

function render(sections: Record<string, Section>): string {
  const out: string[] = [];
  for (const [title, entries] of Object.entries(sections)) {
    if (out.length) out.push("");
    out.push(`[${title}]`);
    for (const [key, value] of entries) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) out.push(`${key}=${v}`);
    }
  }
  return out.join("\n") + "\n";
}

/** systemd's quoting for one ExecStart argument. */
function execArg(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg.replaceAll("%", "%%");
  return `"${arg.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%")}"`;
}

/** The `ExecStart=` command line of a manifest program under `layout`. */
export function execLine(program: Parameters<typeof programSpec>[0], layout: Layout): string {
  const spec = programSpec(program, layout);
  const args = denoRunArgs({ ...spec, entry: `${layout.codeDir}/${spec.entry}` }, {
    cachedOnly: true,
  });
  return [layout.denoBin, ...args].map(execArg).join(" ");
}

/** How one unit deviates from the full sandbox. */
interface HardeningOptions {
  /** Capability bounding set ("" = none). */
  caps?: string;
  /** Ambient capabilities ("" = none). */
  ambient?: string;
  /** Leave NoNewPrivileges off (only for a unit that must run sudo). */
  allowNewPrivileges?: boolean;
  /** Leave PrivateUsers off (sudo, capabilities on host resources). */
  hostUsers?: boolean;
  /** Device section instead of PrivateDevices=yes alone. */
  devices?: Section;
  /** ProcSubset=pid (default yes). */
  procSubset?: boolean;
  /** RestrictAddressFamilies. */
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

/**
 * The full sandbox systemd offers, minus exactly what a unit states it needs:
 * one definition, so every unit gets every protection unless it says why not.
 */
function hardening(o: HardeningOptions): Section {
  return [
    ["NoNewPrivileges", o.allowNewPrivileges ? undefined : "yes"],
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

/** The sandbox of a Deno service (see the module doc). */
function sandbox(opts: { sudo?: boolean; unix?: boolean } = {}): Section {
  return hardening(
    opts.sudo
      ? {
        // sudo -u <channel user> needs setuid(2) (systemd files it under
        // @privileged), these two capabilities in the bounding set, and
        // privileges it may gain; this unit gets no network instead.
        caps: "CAP_SETUID CAP_SETGID",
        allowNewPrivileges: true,
        hostUsers: true,
        families: "AF_UNIX",
        denySyscalls:
          "~@mount @debug @obsolete @clock @module @reboot @swap @raw-io @cpu-emulation",
        umask: "0027",
      }
      : {
        families: opts.unix ? "AF_UNIX AF_INET AF_INET6" : "AF_INET AF_INET6",
        umask: "0027",
      },
  );
}

/** The directory part of a path. */
const dirOf = (p: string): string => p.replace(/\/[^/]+$/, "");

/** Environment of every Deno unit; a service adds its manifest entry's `env`. */
const DENO_ENV = ["DENO_DIR=/opt/joi/.deno", "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"];

/** The `Environment=` lines of a Deno unit running `program`. */
function denoEnv(program: ProgramName, layout: Layout): string[] {
  return [
    ...DENO_ENV,
    ...Object.entries(programSpec(program, layout).env).map(([k, v]) => `${k}=${v}`),
  ];
}

function serviceUnit(
  description: string,
  after: string[],
  service: Section,
  env: string[],
  opts: { sudo?: boolean; unix?: boolean } = {},
): string {
  return render({
    Unit: [
      ["Description", description],
      ["Documentation", "file:///opt/joi/README.md"],
      ["After", ["network-online.target", ...after].join(" ")],
      ["Wants", ["network-online.target", ...after.filter((u) => u.startsWith("joi-"))].join(" ")],
    ],
    Service: [
      ["Type", "simple"],
      ...service,
      ["Environment", env],
      ["WorkingDirectory", "/opt/joi"],
      ["Restart", "on-failure"],
      ["RestartSec", "2s"],
      ["TimeoutStopSec", "10s"],
      ...sandbox(opts),
    ],
    Install: [["WantedBy", "multi-user.target"]],
  });
}

/**
 * signal-cli's JVM on the mesh VM (2 GB shared with whisper.cpp, piper, the
 * mesh and Nebula; the budget is in the README's "Memory budget" and
 * `deno task bench budget` prints it). Uncapped, the JVM sizes its heap at a
 * quarter of the VM's RAM; a running daemon has been reported at 219-235 MB
 * RSS (signal-cli#1585, signal-cli-rest-api#545), and a 1 GB Raspberry Pi
 * (default heap about 250 MB) ran out of heap syncing contacts
 * (signal-cli#1696). So: a 384 MB heap, metaspace and JIT code cache capped,
 * the serial collector (no G1 remembered sets on a small heap), and an exit on
 * OutOfMemoryError (systemd restarts it; the socket and Signal's servers keep
 * the messages) rather than a JVM limping on.
 */
export const SIGNAL_CLI_JVM = {
  heapMb: 384,
  metaspaceMb: 128,
  codeCacheMb: 64,
  /** Thread stacks, GC structures, libsignal's native code and buffers (estimate). */
  nativeMb: 64,
} as const;

/** The hard memory limit of signal-cli.service: the JVM's caps added up. */
export const SIGNAL_CLI_MEMORY_MAX_MB = SIGNAL_CLI_JVM.heapMb + SIGNAL_CLI_JVM.metaspaceMb +
  SIGNAL_CLI_JVM.codeCacheMb + SIGNAL_CLI_JVM.nativeMb;

/** `SIGNAL_CLI_OPTS` of signal-cli.service (its launcher passes them to the JVM). */
export function signalCliOpts(): string {
  const j = SIGNAL_CLI_JVM;
  return [
    "-Xms2m",
    `-Xmx${j.heapMb}m`,
    `-XX:MaxMetaspaceSize=${j.metaspaceMb}m`,
    `-XX:ReservedCodeCacheSize=${j.codeCacheMb}m`,
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+DisableExplicitGC",
    "-XX:-HeapDumpOnOutOfMemoryError",
  ].join(" ");
}

/**
 * whisper.cpp's memory per model, MB, as its README states it ("Memory
 * usage"): what one transcription holds while the model is loaded.
 */
export const WHISPER_MODEL_MB = {
  tiny: 273,
  base: 388,
  small: 852,
  medium: 2100,
  large: 3900,
} as const;

/**
 * The hard memory limit of joi-mesh.service, whose cgroup also holds the voice
 * tools it runs, one job at a time: the mesh itself (128 MB allowed; it holds
 * 72-80 MB), whisper.cpp with the `small` model, the largest that fits the 2 GB
 * mesh VM beside signal-cli (README, "Memory budget"), and ffmpeg (55 MB
 * measured by `deno task bench budget`). With a larger model the kernel stops
 * whisper (the voice note fails and joi says so) instead of starving signal-cli.
 */
export const MESH_MEMORY_MAX_MB = 128 + WHISPER_MODEL_MB.small + 64;

/** Renders every unit of a production deployment. */
export function renderUnits(addresses: ProductionAddresses): UnitFile[] {
  const l = productionLayout(addresses);
  const a = addresses.hosts;
  const credentials = (dir: string, names: string[]) =>
    names.map((n) => `${n}:${dir}/secrets/${n}`);

  const joi = serviceUnit(
    "joi core: inbound API, openHAB ingest, agent",
    ["nebula.service", "joi-knowledge.service"],
    [
      ["User", "joi"],
      ["Group", "joi"],
      ["ExecStartPre", `+${execLine("validate", l)}`],
      ["ExecStart", execLine("joi", l)],
      ["ExecReload", "/bin/kill -HUP $MAINPID"],
      [
        "LoadCredential",
        credentials(l.joiConfigDir, [
          "mesh_to_joi.key",
          "joi_to_mesh.key",
          "openhab_to_joi.key",
          "memory.key",
        ]),
      ],
      ["ReadWritePaths", `${l.joiStateDir} ${l.logDir} ${dirOf(l.knowledgeSocket)}`],
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", `localhost ${a.mesh} ${a.openhab}`],
    ],
    denoEnv("joi", l),
    { unix: true },
  );

  // The only unit that may run sudo: it needs setuid in its bounding set and
  // no NoNewPrivileges, so it gets no network at all instead.
  const knowledge = serviceUnit(
    "joi knowledge broker: sudo -u <channel user> joi-retrieve",
    [],
    [
      ["User", "joi"],
      ["Group", "joi"],
      ["ExecStart", execLine("knowledge", l)],
      ["ExecReload", "/bin/kill -HUP $MAINPID"],
      ["RuntimeDirectory", dirOf(l.knowledgeSocket).replace(/^\/run\//, "")],
      ["RuntimeDirectoryMode", "0750"],
      ["RuntimeDirectoryPreserve", "yes"],
      ["ReadWritePaths", `${l.logDir} /run/sudo /var/log/joi-sudo.log`],
      ["PrivateNetwork", "yes"],
      ["IPAddressDeny", "any"],
    ],
    denoEnv("knowledge", l),
    { sudo: true },
  );

  const mesh = serviceUnit(
    "joi mesh: the Signal gateway",
    ["nebula.service", "signal-cli.socket"],
    [
      ["User", "joi-mesh"],
      ["Group", "joi-mesh"],
      ["SupplementaryGroups", "signal-cli"],
      ["ExecStart", execLine("mesh", l)],
      ["LoadCredential", credentials(l.meshConfigDir, ["mesh_to_joi.key", "joi_to_mesh.key"])],
      ["StateDirectory", "mesh-proxy"],
      ["StateDirectoryMode", "0700"],
      ["LogsDirectory", "joi"],
      // signal-cli's attachments: long texts and voice notes are read there, and deleted
      [
        "ReadWritePaths",
        l.signal.kind === "socket" ? `${l.signal.path} -${l.signalAttachmentsDir}` : undefined,
      ],
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", a.joi],
      ["MemoryMax", `${MESH_MEMORY_MAX_MB}M`],
    ],
    denoEnv("mesh", l),
    { unix: true },
  );

  const relay = serviceUnit("joi openHAB relay: event stream to joi's ingest", [
    "nebula.service",
    "openhab.service",
  ], [
    ["User", "joi-relay"],
    ["Group", "joi-relay"],
    ["ExecStart", execLine("openhab_relay", l)],
    ["LoadCredential", credentials(l.relayConfigDir, ["openhab_token", "openhab_to_joi.key"])],
    ["StateDirectory", "joi-relay"],
    ["StateDirectoryMode", "0700"],
    ["IPAddressDeny", "any"],
    ["IPAddressAllow", `localhost ${a.joi}`],
  ], denoEnv("openhab_relay", l));

  const validateService = render({
    Unit: [
      ["Description", "joi: daily configuration validation (drift detection)"],
      ["Documentation", "file:///opt/joi/README.md"],
    ],
    Service: [
      ["Type", "oneshot"],
      ["ExecStart", execLine("validate", l)],
      ["Environment", denoEnv("validate", l)],
      ["WorkingDirectory", "/opt/joi"],
      // Runs as root to read sudoers and stat every knowledge folder; it only reads,
      // except its report for joi's drift watch (install: root:joi 2750; "-": absent is fine)
      ["ReadWritePaths", `-${dirOf(l.driftReport)}`],
      ["PrivateNetwork", "yes"],
      ["IPAddressDeny", "any"],
      ...hardening({
        caps: "CAP_DAC_READ_SEARCH",
        hostUsers: true,
        procSubset: false,
        families: "AF_UNIX",
        removeIpc: false,
        umask: "0077",
      }),
    ],
  });

  const validateTimer = render({
    Unit: [["Description", "joi: run joi-validate.service daily"]],
    Timer: [["OnCalendar", "daily"], ["RandomizedDelaySec", "15m"], ["Persistent", "true"]],
    Install: [["WantedBy", "timers.target"]],
  });

  const signalSocket = render({
    Unit: [["Description", "signal-cli JSON-RPC socket (root:signal-cli 0660)"]],
    Socket: [
      ["ListenStream", l.signal.kind === "socket" ? l.signal.path : "/run/signal-cli/socket"],
      ["SocketUser", "root"],
      ["SocketGroup", "signal-cli"],
      ["SocketMode", "0660"],
      ["DirectoryMode", "0750"],
      ["RemoveOnStop", "yes"],
    ],
    Install: [["WantedBy", "sockets.target"]],
  });

  const signalService = render({
    Unit: [
      ["Description", "signal-cli daemon (JSON-RPC on a socket, receive mode on-connection)"],
      ["Requires", "signal-cli.socket"],
      ["After", "network-online.target signal-cli.socket"],
      ["Wants", "network-online.target"],
    ],
    Service: [
      ["Type", "simple"],
      ["User", "signal-cli"],
      ["Group", "signal-cli"],
      // SIGNAL_ACCOUNT=+1555... lives in this root-owned file, not in the unit.
      ["EnvironmentFile", "/etc/mesh-proxy/signal-cli.env"],
      // glibc's per-thread malloc arenas inflate a JVM's RSS as they do Deno's
      ["Environment", [`"SIGNAL_CLI_OPTS=${signalCliOpts()}"`, "MALLOC_ARENA_MAX=2"]],
      // past its caps the JVM is broken: stop it rather than starve whisper and the mesh
      ["MemoryMax", `${SIGNAL_CLI_MEMORY_MAX_MB}M`],
      [
        "ExecStart",
        "/usr/local/bin/signal-cli --config /var/lib/signal-cli -a ${SIGNAL_ACCOUNT} daemon --receive-mode=on-connection",
      ],
      ["StandardInput", "socket"],
      ["StandardOutput", "journal"],
      ["StandardError", "journal"],
      ["SuccessExitStatus", "143"],
      ["ReadWritePaths", "/var/lib/signal-cli"],
      // the JVM's JIT needs writable executable memory
      // UMask 0027: attachments (in a 2770 signal-cli:signal-cli folder) are readable to the
      // mesh's group only; its account data stays private (signal-cli creates it 0600/0700)
      ...hardening({ families: "AF_INET AF_INET6", umask: "0027" }),
      // Signal's servers are on the internet; never the overlay or the LAN.
      ["IPAddressDeny", "localhost link-local multicast 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16"],
    ],
    Install: [["Also", "signal-cli.socket"], ["WantedBy", "multi-user.target"]],
  });

  // Nebula: the only unit with a capability (CAP_NET_ADMIN, for its tun device).
  const nebula = render({
    Unit: [
      ["Description", "Nebula overlay (node config /etc/nebula/config.yml)"],
      ["Documentation", "file:///opt/joi/README.md"],
      ["After", "network-online.target"],
      ["Wants", "network-online.target"],
      ["Before", "joi.service joi-mesh.service joi-openhab-relay.service"],
    ],
    Service: [
      ["Type", "simple"],
      ["User", "nebula"],
      ["Group", "nebula"],
      ["ExecStart", "/usr/bin/nebula -config /etc/nebula/config.yml"],
      ["ExecReload", "/bin/kill -HUP $MAINPID"],
      ["Restart", "always"],
      ["RestartSec", "2s"],
      ...hardening({
        caps: "CAP_NET_ADMIN",
        ambient: "CAP_NET_ADMIN",
        // its capability acts on the host's network, so no user namespace
        hostUsers: true,
        // A private /dev with only the tun device bound in (the pattern tinc's
        // unit uses; it works on Debian 12's systemd 252, see systemd#30372).
        devices: [
          ["PrivateDevices", "yes"],
          ["BindPaths", "/dev/net/tun"],
          ["DeviceAllow", "/dev/net/tun rw"],
        ],
        families: "AF_INET AF_INET6 AF_NETLINK",
        memoryDenyWriteExecute: true,
        umask: "0077",
      }),
      // Nebula's own UDP only ever talks to the other nodes over vmbr1.
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", addresses.underlay.cidr],
    ],
    Install: [["WantedBy", "multi-user.target"]],
  });

  return [
    { name: "nebula.service", text: nebula },
    { name: UNIT_NAMES.joi, text: joi },
    { name: UNIT_NAMES.knowledge, text: knowledge },
    { name: UNIT_NAMES.mesh, text: mesh },
    { name: UNIT_NAMES.openhab_relay, text: relay },
    { name: "joi-validate.service", text: validateService },
    { name: "joi-validate.timer", text: validateTimer },
    { name: "signal-cli.socket", text: signalSocket },
    { name: "signal-cli.service", text: signalService },
  ];
}

/** An `http://host:port/...` URL as the endpoint a program dials (port defaulted by scheme). */
export function endpointOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/**
 * What joi must be allowed to dial for web search, or undefined when
 * tools.yaml does not enable it: the proxy and each allowed domain on 443.
 */
export function webSearchAccess(tools: Tools): WebSearchAccess | undefined {
  const t = Object.hasOwn(tools.tools, "web_search") ? tools.tools.web_search : undefined;
  if (!t?.enabled || t.transport !== "http_proxy") return undefined;
  return {
    proxy: endpointOf(t.endpoint),
    hosts: (t.policy.allowed_domains ?? []).map((d) => `${d}:443`),
  };
}

/** The production addresses, from validated `network.yaml`, `llm.yaml` (and `tools.yaml`). */
export function productionAddressesFrom(
  network: {
    hosts: { mesh: string; joi: string; openhab: string };
    ports: { joi_inbound: number; mesh_outbound: number; joi_ingest: number };
    openhab: { url: string };
    signal_cli: { socket: string; data_dir: string };
    nebula: { underlay_cidr: string; port: number };
  },
  llm: { endpoint: string },
  tools?: Tools,
  meshVoice?: ProductionAddresses["meshVoice"],
): ProductionAddresses {
  const webSearch = tools ? webSearchAccess(tools) : undefined;
  return {
    ...(webSearch ? { webSearch } : {}),
    ...(meshVoice ? { meshVoice } : {}),
    underlay: { cidr: network.nebula.underlay_cidr, port: network.nebula.port },
    hosts: network.hosts,
    ports: {
      joiInbound: network.ports.joi_inbound,
      meshOutbound: network.ports.mesh_outbound,
      joiIngest: network.ports.joi_ingest,
    },
    llm: endpointOf(llm.endpoint),
    openhab: endpointOf(network.openhab.url),
    signalSocket: network.signal_cli.socket,
    signalDataDir: network.signal_cli.data_dir,
  };
}
