/**
 * The systemd units of a production deployment, rendered from the permission
 * manifest: the `ExecStart=` of every Deno service is its manifest entry under
 * the production layout (`exec.ts`), so a unit cannot carry a flag the
 * manifest does not state. `deno task sync` writes them to `systemd/` for the
 * shipped policies; a test fails when the committed files drift. On a VM,
 * `install` writes the household-independent units and `provision` the joi
 * unit and the retrieve units, which depend on the household's channels.
 *
 * Every service runs as its own user under the full sandbox (`hardening.ts`),
 * with `NoNewPrivileges=yes`: no unit runs sudo or any setuid program.
 *
 * @module
 */
import { type ProductionAddresses, productionLayout, UNIT_NAMES } from "../permissions/mod.ts";
import { deriveChannels } from "../policy/household.ts";
import { denoEnv, execLine } from "./exec.ts";
import { hardening } from "./hardening.ts";
import { renderUnit, type Section, type UnitFile } from "./ini.ts";
import { MESH_MEMORY_MAX_MB, SIGNAL_CLI_MEMORY_MAX_MB, signalCliOpts } from "./memory.ts";
import { renderRetrieveUnits, retrieveUnitNames } from "./retrieve.ts";

const dirOf = (p: string): string => p.replace(/\/[^/]+$/, "");

/** The household facts the joi VM's units depend on (recipients.yaml). */
export interface UnitHousehold {
  /** The user joi runs as (`service_user`); the only one that may dial the retrieve sockets. */
  serviceUser: string;
  /** Channel -> channel user: one retrieve socket and service each. */
  channels: Readonly<Record<string, string>>;
}

/** The {@link UnitHousehold} of a recipients.yaml. */
export function unitHousehold(
  recipients: Parameters<typeof deriveChannels>[0] & {
    service_user: string;
  },
): UnitHousehold {
  return { serviceUser: recipients.service_user, channels: deriveChannels(recipients) };
}

/** The units whose text depends on the household (provision writes them). */
export function householdUnitNames(household: UnitHousehold): string[] {
  return [
    UNIT_NAMES.joi,
    ...Object.keys(household.channels).sort().flatMap((c) => {
      const n = retrieveUnitNames(c);
      return [n.socket, n.service];
    }),
  ];
}

/** A Deno service of the manifest, as its own user, restarted on failure. */
function denoService(
  o: { description: string; after: string[]; wants: string[]; families: string; env: string[] },
  service: Section,
): string {
  return renderUnit({
    Unit: [
      ["Description", o.description],
      ["Documentation", "file:///opt/joi/README.md"],
      ["After", ["network-online.target", ...o.after].join(" ")],
      ["Wants", ["network-online.target", ...o.wants].join(" ")],
    ],
    Service: [
      ["Type", "simple"],
      ...service,
      ["Environment", o.env],
      ["WorkingDirectory", "/opt/joi"],
      ["Restart", "on-failure"],
      ["RestartSec", "2s"],
      ["TimeoutStopSec", "10s"],
      ...hardening({ families: o.families, umask: "0027" }),
    ],
    Install: [["WantedBy", "multi-user.target"]],
  });
}

/** Renders every unit of a production deployment for `household`. */
export function renderUnits(addresses: ProductionAddresses, household: UnitHousehold): UnitFile[] {
  const l = productionLayout(addresses, { channels: household.channels });
  const a = addresses.hosts;
  const svc = household.serviceUser;
  const credentials = (dir: string, names: string[]) =>
    names.map((n) => `${n}:${dir}/secrets/${n}`);
  const sockets = Object.keys(household.channels).sort().map((c) => retrieveUnitNames(c).socket);

  const joi = denoService(
    {
      description: "joi core: inbound API, openHAB ingest, agent",
      after: ["nebula.service", ...sockets],
      wants: ["nebula.service", ...sockets],
      families: "AF_UNIX AF_INET AF_INET6",
      env: denoEnv("joi", l),
    },
    [
      ["User", svc],
      ["Group", svc],
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
      // provision creates /var/lib/joi (its group and modes are the household's)
      ["ReadWritePaths", l.joiStateDir],
      ["LogsDirectory", "joi"],
      ["LogsDirectoryMode", "0750"],
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", `localhost ${a.mesh} ${a.openhab}`],
    ],
  );

  const mesh = denoService(
    {
      description: "joi mesh: the Signal gateway",
      after: ["nebula.service", "signal-cli.socket"],
      wants: ["nebula.service", "signal-cli.socket"],
      families: "AF_UNIX AF_INET AF_INET6",
      env: denoEnv("mesh", l),
    },
    [
      ["User", "joi-mesh"],
      ["Group", "joi-mesh"],
      ["SupplementaryGroups", "signal-cli"],
      ["ExecStart", execLine("mesh", l)],
      ["LoadCredential", credentials(l.meshConfigDir, ["mesh_to_joi.key", "joi_to_mesh.key"])],
      ["StateDirectory", "mesh-proxy"],
      ["StateDirectoryMode", "0700"],
      ["LogsDirectory", "joi"],
      ["LogsDirectoryMode", "0750"],
      // signal-cli's attachments: long texts and voice notes are read there, and deleted
      [
        "ReadWritePaths",
        l.signal.kind === "socket" ? `${l.signal.path} -${l.signalAttachmentsDir}` : undefined,
      ],
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", a.joi],
      ["MemoryMax", `${MESH_MEMORY_MAX_MB}M`],
    ],
  );

  const relay = denoService(
    {
      description: "joi openHAB relay: event stream to joi's ingest",
      after: ["nebula.service", "openhab.service"],
      wants: ["nebula.service"],
      families: "AF_INET AF_INET6",
      env: denoEnv("openhab_relay", l),
    },
    [
      ["User", "joi-relay"],
      ["Group", "joi-relay"],
      ["ExecStart", execLine("openhab_relay", l)],
      ["LoadCredential", credentials(l.relayConfigDir, ["openhab_token", "openhab_to_joi.key"])],
      ["StateDirectory", "joi-relay"],
      ["StateDirectoryMode", "0700"],
      ["IPAddressDeny", "any"],
      ["IPAddressAllow", `localhost ${a.joi}`],
    ],
  );

  const validateService = renderUnit({
    Unit: [
      ["Description", "joi: daily configuration validation (drift detection)"],
      ["Documentation", "file:///opt/joi/README.md"],
    ],
    Service: [
      ["Type", "oneshot"],
      ["ExecStart", execLine("validate", l)],
      ["Environment", denoEnv("validate", l)],
      ["WorkingDirectory", "/opt/joi"],
      // Runs as root to read every knowledge folder and to check, as each
      // service and channel user (setpriv), what the kernel lets them open.
      // It writes only its report for joi's drift watch (install: root:joi
      // 2750). The state tree is writable in its view only so that access(2)
      // answers by owners and modes rather than "read-only file system";
      // without CAP_DAC_OVERRIDE or CAP_FOWNER, root itself cannot write there
      // (the tree is joi's).
      ["ReadWritePaths", `${l.joiStateDir} -${dirOf(l.driftReport)}`],
      ["PrivateNetwork", "yes"],
      ["IPAddressDeny", "any"],
      ...hardening({
        caps: "CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID",
        hostUsers: true,
        procSubset: false,
        families: "AF_UNIX",
        denySyscalls: "~@resources @mount @debug @obsolete @clock @module @reboot @swap " +
          "@raw-io @cpu-emulation",
        removeIpc: false,
        umask: "0077",
      }),
    ],
  });

  // The indexer, as joi (the only writer): after documents were added by hand,
  // `systemctl start joi-index.service`; new index files get joi's umask and
  // the folder's group (setgid), exactly as joi's own writes do.
  const index = renderUnit({
    Unit: [
      ["Description", "joi: index the knowledge folders (after adding documents)"],
      ["Documentation", "file:///opt/joi/README.md"],
    ],
    Service: [
      ["Type", "oneshot"],
      ["User", svc],
      ["Group", svc],
      ["ExecStart", execLine("index", l)],
      ["Environment", denoEnv("index", l)],
      ["WorkingDirectory", "/opt/joi"],
      ["ReadWritePaths", `${l.joiStateDir}/knowledge`],
      ["PrivateNetwork", "yes"],
      ["IPAddressDeny", "any"],
      ...hardening({ families: "none", umask: "0027" }),
    ],
  });

  const validateTimer = renderUnit({
    Unit: [["Description", "joi: run joi-validate.service daily"]],
    Timer: [["OnCalendar", "daily"], ["RandomizedDelaySec", "15m"], ["Persistent", "true"]],
    Install: [["WantedBy", "timers.target"]],
  });

  const signalSocket = renderUnit({
    Unit: [["Description", "signal-cli JSON-RPC socket (root:signal-cli 0660)"]],
    Socket: [
      ["ListenStream", l.signal.kind === "socket" ? l.signal.path : "/run/signal-cli/socket"],
      ["SocketUser", "root"],
      ["SocketGroup", "signal-cli"],
      ["SocketMode", "0660"],
      // the folder must let the mesh (group signal-cli) reach the socket; the
      // socket's own mode decides who may connect
      ["DirectoryMode", "0755"],
      ["RemoveOnStop", "yes"],
    ],
    Install: [["WantedBy", "sockets.target"]],
  });

  const signalService = renderUnit({
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
      // install creates the user and this folder (signal-cli link runs there first):
      // the mesh's group may pass through to attachments/ (2770), not list the rest
      ["StateDirectory", "signal-cli"],
      ["StateDirectoryMode", "0710"],
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
  const dev = addresses.nebulaInterface;
  const nebula = renderUnit({
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
      // The guard first (an overlay source address is an identity only on
      // the Nebula interface), as root, before the tunnel exists.
      ["ExecStartPre", "+/usr/sbin/nft -f /etc/nebula/guard.nft"],
      ["ExecStart", "/usr/local/bin/nebula -config /etc/nebula/config.yml"],
      // "started" means the overlay address exists: the services After= this
      // unit bind to it (without the wait they fail with AddrNotAvailable)
      [
        "ExecStartPost",
        `/bin/sh -c 'for i in $$(seq 300); do /usr/sbin/ip -o addr show dev ${dev} 2>/dev/null | ` +
        `grep -q " inet " && exit 0; sleep 0.1; done; echo "${dev} has no address after 30 s" >&2; exit 1'`,
      ],
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

  // The anklume host: the exclusive AI-tools access restored at boot, from the
  // state file or infra.yml's ai_access_default, in the live nft rules only
  // (nothing runs on the GPU yet). After nftables.service, whose ruleset
  // starts with `flush ruleset`; before incus starts the domains.
  const aiSwitch = renderUnit({
    Unit: [
      ["Description", "ai-switch: restore the exclusive AI-tools access at boot"],
      ["Documentation", "file:///opt/joi/README.md"],
      ["After", "local-fs.target nftables.service"],
      ["Before", "incus.service incus-startup.service"],
    ],
    Service: [
      ["Type", "oneshot"],
      ["RemainAfterExit", "yes"],
      ["ExecStart", `${execLine("ai_switch", l)} restore`],
      ["Environment", denoEnv("ai_switch", l)],
      ["WorkingDirectory", "/opt/joi"],
      // the lock's folder: root's, 0700, kept for the switches that follow
      ["RuntimeDirectory", "anklume"],
      ["RuntimeDirectoryMode", "0700"],
      ["RuntimeDirectoryPreserve", "yes"],
      ["LogsDirectory", "anklume"],
      ["LogsDirectoryMode", "0750"],
      ["ReadWritePaths", "/opt/anklume"],
      ["IPAddressDeny", "any"],
      ...hardening({
        caps: "CAP_NET_ADMIN",
        // its capability acts on the host's network, so no user namespace
        hostUsers: true,
        families: "AF_UNIX AF_NETLINK",
        umask: "0022",
      }),
    ],
    Install: [["WantedBy", "multi-user.target"]],
  });

  return [
    { name: "anklume-ai-switch.service", text: aiSwitch },
    { name: "nebula.service", text: nebula },
    { name: UNIT_NAMES.joi, text: joi },
    ...renderRetrieveUnits(l, svc),
    { name: UNIT_NAMES.mesh, text: mesh },
    { name: UNIT_NAMES.openhab_relay, text: relay },
    { name: "joi-index.service", text: index },
    { name: "joi-validate.service", text: validateService },
    { name: "joi-validate.timer", text: validateTimer },
    { name: "signal-cli.socket", text: signalSocket },
    { name: "signal-cli.service", text: signalService },
  ];
}
