/**
 * THE permission manifest: for every joi program, the Deno permissions it runs
 * with, as a function of the deployment {@link Layout}.
 *
 * This is the one place a program's sandbox is stated. `deno.json` tasks
 * (`deno task sync` writes them), `main.ts` (the local run) and the systemd
 * units in `systemd/` are all derived from it (through `flags.ts`), and
 * `tests/sandbox_test.ts`, `tests/services/common/tasks_test.ts` and
 * `tests/services/common/units_test.ts` fail if any of them disagrees.
 *
 * Rules this module keeps:
 * - never `-A`, never an unscoped `--allow-*`;
 * - `--allow-run` only for exact binaries;
 * - network peers as the exact literal the code dials (`127.0.0.1:8443`, not
 *   `localhost`), since Deno matches them as written;
 * - a Unix socket needs read + write + `unix:` net on its exact path.
 *
 * @module
 */

import {
  type Endpoint,
  type Layout,
  retrieveSockets,
  testRetrieveSocketPaths,
  testSocketPaths,
} from "./layout.ts";
import { NEBULA_CERTS } from "../watch/nebula_cert.ts";

/** Every program joi ships. */
export const PROGRAMS = [
  "main",
  "joi",
  "knowledge",
  "mesh",
  "openhab_relay",
  "retrieve",
  "index",
  "validate",
  "ai_switch",
  "revoke",
  "provision",
  "nebula",
  "bundle",
  "install",
  "replay",
  "devices",
  "memory",
  "language_check",
  "doctor",
  "bench",
  "test",
] as const;

/** A program name of {@link PROGRAMS}. */
export type ProgramName = typeof PROGRAMS[number];

/** The Deno permissions of one program. Every list is exact; empty means denied. */
export interface Permissions {
  read: string[];
  write: string[];
  net: string[];
  run: string[];
  env: string[];
  sys: string[];
}

/** Everything needed to start one program. */
export interface ProgramSpec {
  /** Program name. */
  name: ProgramName;
  /** What it is, for humans (README, units). */
  description: string;
  /** Entry module, relative to the code directory. */
  entry: string;
  /** Its sandbox. */
  permissions: Permissions;
  /** Program arguments derived from the layout (never secrets). */
  args: string[];
  /** Extra V8 flags (e.g. heap caps). */
  v8Flags: string[];
  /**
   * Environment the program runs with wherever it runs as a service (its unit,
   * the local run, the benchmarks): memory tuning only, never a secret.
   */
  env: Readonly<Record<string, string>>;
}

const none = (): Permissions => ({ read: [], write: [], net: [], run: [], env: [], sys: [] });

const hostPort = (e: Endpoint): string => `${e.host}:${e.port}`;

/** The local run's state root: the parent of the joi state directory. */
const varRoot = (l: Layout): string => l.joiStateDir.replace(/\/joi$/, "");

type Builder = (
  layout: Layout,
) => Omit<ProgramSpec, "name" | "env"> & Partial<Pick<ProgramSpec, "env">>;

/**
 * glibc malloc settings of the long-running Deno services (measured by
 * `deno task bench mesh|joi|relay|soak`; scripts/bench/_memory.ts says where
 * the memory is):
 * - `MALLOC_ARENA_MAX=2`: glibc's default of up to 8 arenas per core costs
 *   tens of MB of RSS in a Deno process; two lose nothing measurable;
 * - `MALLOC_MMAP_THRESHOLD_=65536`: every allocation of 64 KiB or more (socket
 *   and HTTP buffers of each message) gets its own mapping, unmapped when
 *   freed. By default glibc raises this threshold after the first such free,
 *   and from then on these buffers fragment the heap, which never shrinks: the
 *   mesh's malloc heap went from 7.5 to 15.6 MB over 10,000 messages and stayed
 *   there. Setting it also fixes the trim threshold at its 128 KiB default.
 */
const MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "65536",
});

const MANIFEST: Record<ProgramName, Builder> = {
  main: (l) => ({
    description: "the local run: starts and supervises every service on loopback",
    entry: "main.ts",
    permissions: {
      ...none(),
      read: [l.codeDir, varRoot(l)],
      write: [varRoot(l)],
      // the three ports for /health; Ollama once, to say at start-up when there is none
      net: [
        hostPort(l.joiInbound),
        hostPort(l.meshOutbound),
        hostPort(l.joiIngest),
        hostPort(l.llm),
      ],
      run: [l.denoBin],
    },
    args: [],
    v8Flags: [],
  }),
  joi: (l) => ({
    description: "joi core: inbound API (8443), openHAB ingest (8445), agent, memory, outbox",
    entry: "services/joi/main.ts",
    permissions: {
      ...none(),
      read: [
        l.joiConfigDir,
        l.joiStateDir,
        l.logDir,
        l.secretsDir("joi"),
        "/etc/passwd",
        ...retrieveSockets(l),
        l.driftReport, // the daily validation's verdict, left by root (drift watch)
        ...ownCert(l, "joi"), // its public Nebula certificate's expiry (never the key)
      ],
      write: [l.joiStateDir, l.logDir, ...retrieveSockets(l)],
      net: [
        hostPort(l.joiInbound),
        hostPort(l.joiIngest),
        hostPort(l.meshOutbound),
        hostPort(l.llm),
        // Deno admits a Unix socket by its exact path only (a folder is refused):
        // one entry per channel of the household
        ...retrieveSockets(l).map((s) => `unix:${s}`),
        ...(l.webSearch ? [hostPort(l.webSearch.proxy), ...l.webSearch.hosts] : []),
      ],
      // No --allow-run: knowledge is searched through the channels' retrieve
      // sockets, each connection a joi-retrieve running as that channel's user.
    },
    args: [
      `--config-dir=${l.joiConfigDir}`,
      `--state-dir=${l.joiStateDir}`,
      `--log-dir=${l.logDir}`,
      `--secrets-dir=${l.secretsDir("joi")}`,
      `--listen=${hostPort(l.joiInbound)}`,
      `--ingest-listen=${hostPort(l.joiIngest)}`,
      `--mesh-url=http://${hostPort(l.meshOutbound)}`,
      `--llm-url=http://${hostPort(l.llm)}/v1`,
      `--retrieve-socket-dir=${l.retrieveSocketDir}`,
      `--mode=${l.mode}`,
      `--mesh-address=${l.meshOutbound.host}`,
      `--drift-report=${l.driftReport}`,
      ...ownCert(l, "joi").map((c) => `--nebula-cert=${c}`),
    ],
    // a small young generation, a capped old space and V8's memory-saving heap growth
    // (--optimize-for-size: no measurable latency cost) keep joi's V8 heap near its
    // ~20 MB live data: RSS after 10,000 messages 103 MB instead of 110 MB
    // (scripts/bench/joi.ts). The optimizing JIT stays: --lite-mode saved 11 MB more
    // but cost 20% of joi's throughput.
    v8Flags: ["--max-old-space-size=96", "--max-semi-space-size=1", "--optimize-for-size"],
    env: MALLOC_ENV,
  }),
  knowledge: (l) => ({
    description: "local run: each channel's retrieve socket, served by " +
      "sudo -u <channel user> joi-retrieve (production: systemd socket activation)",
    entry: "services/knowledge_broker/main.ts",
    permissions: {
      ...none(),
      read: [l.joiConfigDir, ...retrieveSockets(l)],
      write: [...retrieveSockets(l), l.logDir],
      net: retrieveSockets(l).map((s) => `unix:${s}`),
      run: [l.sudoBin],
    },
    args: [
      `--config-dir=${l.joiConfigDir}`,
      `--state-dir=${l.joiStateDir}`,
      `--code-dir=${l.codeDir}`,
      `--socket-dir=${l.retrieveSocketDir}`,
      `--retrieve-bin=${l.retrieveBin}`,
      `--sudo-bin=${l.sudoBin}`,
      `--log-dir=${l.logDir}`,
    ],
    v8Flags: [],
    env: MALLOC_ENV,
  }),

  mesh: (l) => {
    const sock = l.signal.kind === "socket" ? [l.signal.path] : [];
    const v = l.meshVoice;
    // signal-cli's attachments: read long texts and voice notes, delete every file once
    // handled (signal-cli never does); voice: run the three tools only
    const attachments = l.signal.kind === "socket" ? [l.signalAttachmentsDir] : [];
    const voiceBins = v ? [v.whisperBin, v.ffmpegBin, ...(v.piperBin ? [v.piperBin] : [])] : [];
    return {
      description: "the Signal gateway (8444): signal-cli JSON-RPC, identities, queue to joi",
      entry: "services/mesh/main.ts",
      permissions: {
        ...none(),
        read: [
          l.meshConfigDir,
          l.meshStateDir,
          l.logDir,
          l.secretsDir("mesh"),
          ...sock,
          ...attachments,
          ...ownCert(l, "mesh"),
        ],
        write: [l.meshStateDir, l.logDir, ...sock, ...attachments],
        net: [
          hostPort(l.meshOutbound),
          hostPort(l.joiInbound),
          ...sock.map((s) => `unix:${s}`),
        ],
        run: voiceBins,
      },
      args: [
        `--config-dir=${l.meshConfigDir}`,
        `--state-dir=${l.meshStateDir}`,
        `--log-dir=${l.logDir}`,
        `--secrets-dir=${l.secretsDir("mesh")}`,
        `--listen=${hostPort(l.meshOutbound)}`,
        `--joi-url=http://${hostPort(l.joiInbound)}`,
        ...(l.signal.kind === "socket"
          ? [`--signal-socket=${l.signal.path}`, `--attachments-dir=${l.signalAttachmentsDir}`]
          : ["--terminal"]),
        ...ownCert(l, "mesh").map((c) => `--nebula-cert=${c}`),
      ],
      // small young generation, no optimizing JIT (the mesh is I/O-bound): RSS after
      // 10,000 messages ~86 MB instead of ~160-200 MB (scripts/bench/mesh.ts)
      v8Flags: ["--max-semi-space-size=1", "--max-old-space-size=64", "--lite-mode"],
      env: MALLOC_ENV,
    };
  },
  openhab_relay: (l) => ({
    description: "on the openHAB host: openHAB's event stream -> joi's ingest (8445)",
    entry: "services/openhab_relay/main.ts",
    permissions: {
      ...none(),
      read: [
        l.relayConfigDir,
        l.relayStateDir,
        l.secretsDir("openhab_relay"),
        ...ownCert(l, "openhab"),
      ],
      write: [l.relayStateDir],
      net: [hostPort(l.openhab), hostPort(l.joiIngest)],
    },
    args: [
      `--config-dir=${l.relayConfigDir}`,
      `--state-dir=${l.relayStateDir}`,
      `--secrets-dir=${l.secretsDir("openhab_relay")}`,
      `--openhab-url=http://${hostPort(l.openhab)}`,
      `--joi-url=http://${hostPort(l.joiIngest)}`,
      ...ownCert(l, "openhab").map((c) => `--nebula-cert=${c}`),
    ],
    // as the mesh's: without them its young generation alone grows to 32 MB under a
    // burst, RSS 123 MB after 10,000 events instead of 74 MB (scripts/bench/relay.ts)
    v8Flags: ["--max-semi-space-size=1", "--max-old-space-size=64", "--lite-mode"],
    env: MALLOC_ENV,
  }),
  retrieve: (l) => ({
    description:
      "joi-retrieve: read-only FTS over the knowledge its uid may open (one request on stdin)",
    entry: "scripts/retrieve.ts",
    // sys=uid only to report the kernel identity it ran as (`accessed_as`)
    permissions: { ...none(), read: [`${l.joiStateDir}/knowledge`], sys: ["uid"] },
    args: [`--root=${l.joiStateDir}/knowledge`],
    v8Flags: ["--max-old-space-size=192"],
  }),
  index: (l) => ({
    description: "indexes hand-written markdown in the knowledge folders",
    entry: "scripts/index.ts",
    permissions: {
      ...none(),
      read: [l.joiConfigDir, `${l.joiStateDir}/knowledge`],
      write: [`${l.joiStateDir}/knowledge`],
    },
    args: [`--config-dir=${l.joiConfigDir}`, `--state-dir=${l.joiStateDir}`],
    v8Flags: [],
  }),
  validate: (l) => ({
    description:
      "joi-validate-config: checks users, groups, modes, units, policies, and as each user the access matrix",
    entry: "scripts/validate.ts",
    // Reads only: the policies and secrets (both in the config dir), the state
    // tree, the accounts, the audit rules, the units folder (joi's units and
    // stale retrieve units), a leftover sudoers file, the retrieve sockets,
    // the folder of the retrieve entry point and the code (owners and modes).
    // Runs lsattr (immutability) and setpriv (the kernel's answer as each user).
    permissions: {
      ...none(),
      read: [
        l.joiConfigDir,
        l.joiStateDir,
        "/etc/passwd",
        "/etc/group",
        "/etc/sudoers.d",
        "/etc/audit/rules.d/joi.rules",
        "/etc/systemd/system",
        l.retrieveSocketDir,
        "/usr/local/bin",
        // who watches the watchmen: owner and mode of the code (validate, retrieve)
        l.codeDir,
        // the Nebula certificates' expiry (not the keys beside them)
        ...nebulaCerts(l),
        // its own report (Deno's rename wants read on both names)
        l.driftReport,
        `${l.driftReport}.tmp`,
      ],
      // its verdict for joi's drift watch (severities and check codes only)
      write: [l.driftReport, `${l.driftReport}.tmp`],
      run: ["/usr/bin/lsattr", "/usr/bin/setpriv"],
    },
    args: [`--config-dir=${l.joiConfigDir}`, `--report=${l.driftReport}`],
    v8Flags: [],
  }),
  ai_switch: (l) => {
    // One set of paths feeds both the sandbox and the arguments, so they cannot
    // drift; tests retarget these exact strings (scripts/ai_switch/sandbox.ts).
    // The state and log paths must equal infra.yml's global.ai_switch values.
    const infra = `${l.codeDir}/policies/infra.yml`;
    const state = "/opt/anklume/ai-access-current";
    const log = "/var/log/anklume/ai-switch.log";
    // the lock lives in a folder only root may write (created 0700 if missing)
    const lockDir = "/run/anklume";
    const lock = `${lockDir}/ai-switch.lock`;
    const bins: [string, string][] = [
      ["nft", "/usr/sbin/nft"],
      ["nvidia-smi", "/usr/bin/nvidia-smi"],
      ["systemctl", "/usr/bin/systemctl"],
      ["incus", "/usr/bin/incus"],
      ["kill", "/usr/bin/kill"],
    ];
    return {
      description: "ai-switch: exactly one domain reaches the AI tools (nftables, GPU flush)",
      entry: "scripts/ai_switch.ts",
      permissions: {
        ...none(),
        read: [infra, state, `${state}.tmp`, log, lockDir, lock],
        write: [state, `${state}.tmp`, log, lockDir, lock],
        run: bins.map(([, path]) => path),
        sys: ["uid"], // the lock folder must be root's (or the caller's)
      },
      args: [
        `--infra=${infra}`,
        `--state-file=${state}`,
        `--log-file=${log}`,
        `--lock-file=${lock}`,
        ...bins.map(([name, path]) => `--${name}-bin=${path}`),
      ],
      v8Flags: [],
    };
  },
  revoke: (l) => {
    // It ends by running validate in-process, so it reads what validate reads.
    const validate = MANIFEST.validate(l).permissions;
    return {
      description: "joi-revoke-recipient: removes a recipient everywhere, atomically",
      entry: "scripts/revoke.ts",
      permissions: {
        ...none(),
        read: [...validate.read, "/etc/audit/rules.d", "/run/joi/joi.pid", "/run/systemd/system"],
        // policy files, their staging folder and backups live in the config dir;
        // joi.service and the audit rules are rewritten, the recipient's
        // retrieve units removed
        write: [l.joiConfigDir, "/etc/systemd/system", "/etc/audit/rules.d"],
        run: [
          "/usr/sbin/usermod",
          "/usr/bin/gpasswd",
          "/usr/bin/pkill",
          "/usr/bin/systemctl",
          "/usr/bin/kill",
          ...validate.run,
        ],
      },
      args: [`--config-dir=${l.joiConfigDir}`],
      v8Flags: [],
    };
  },
  provision: (l) => {
    // production: joi.service and the retrieve units (no sudo anywhere, and a
    // stale sudoers file is removed); the local run: sudoers and the entry point
    const units = l.mode === "production";
    const entryStaging = `${l.retrieveBin.replace(/[^/]+$/, "")}.${
      l.retrieveBin.replace(/^.*\//, "")
    }.provision-new`;
    return {
      description: "creates channel users, reader groups, knowledge trees and the retrieval files",
      entry: "scripts/provision.ts",
      permissions: {
        ...none(),
        read: [
          l.joiConfigDir,
          l.joiStateDir,
          l.codeDir, // checks scripts/retrieve.ts is root-owned and not writable by others
          "/etc/passwd",
          "/etc/group",
          "/etc/sudoers.d",
          "/etc/audit/rules.d",
          ...(units ? ["/etc/systemd/system"] : [
            l.retrieveBin,
            ...(l.denoBin.startsWith("/") ? [l.denoBin] : []), // --install-entry source
          ]),
        ],
        write: [
          l.joiStateDir,
          "/etc/sudoers.d",
          "/etc/audit/rules.d",
          ...(units ? ["/etc/systemd/system"] : [l.retrieveBin, entryStaging]),
        ],
        run: [
          "/usr/sbin/useradd",
          "/usr/sbin/groupadd",
          "/usr/bin/gpasswd",
          ...(units ? [] : ["/usr/sbin/visudo"]),
        ],
      },
      args: [
        `--config-dir=${l.joiConfigDir}`,
        `--state-dir=${l.joiStateDir}`,
        `--code-dir=${l.codeDir}`,
        `--retrieve-bin=${l.retrieveBin}`,
        `--retrieval=${units ? "units" : "sudo"}`,
      ],
      v8Flags: [],
    };
  },
  nebula: (l) => ({
    description: "creates the Nebula CA, node certificates, node configs and nft guard",
    entry: "scripts/nebula.ts",
    permissions: {
      ...none(),
      read: [l.joiConfigDir, `${varRoot(l)}/nebula`, "/usr/bin/nebula-cert"],
      write: [`${varRoot(l)}/nebula`],
      run: ["/usr/bin/nebula-cert"],
    },
    args: [`--config-dir=${l.joiConfigDir}`, `--out=${varRoot(l)}/nebula`],
    v8Flags: [],
  }),
  bundle: () => ({
    description: "on the build host: one VM's bundle (code, Deno, its Nebula files and keys only)",
    entry: "scripts/bundle.ts",
    permissions: {
      ...none(),
      read: [".", "/usr/bin/nebula"],
      write: ["./var/bundle", "./var/keys"],
      run: ["/usr/bin/cp"], // node_modules, with its symlinks
    },
    args: [],
    v8Flags: [],
  }),
  install: () => {
    // Everything install writes, each also readable: it checks what is there
    // before replacing it (a real install failed on "Requires read access to
    // /opt/joi/deno.json" when the two lists differed).
    const bins = ["joi-retrieve", "joi-validate-config", "joi-revoke-recipient", "nebula"]
      .flatMap((b) => [`/usr/local/bin/${b}`, `/usr/local/bin/${b}.tmp`]);
    const writes = [
      "/opt/joi",
      "/etc/joi",
      "/etc/mesh-proxy",
      "/etc/joi-relay",
      "/etc/nebula",
      "/etc/systemd/system",
      ...bins,
      "/var/lib/signal-cli",
      // log retention and the drift report's folder (retentionActions)
      "/etc/logrotate.d",
      "/etc/systemd/journald.conf.d",
      "/var/lib/joi-validate",
      "/opt/anklume",
      "./var/stage",
    ];
    return {
      description:
        "lays out one VM from its bundle (users, code, cache, config, keys, Nebula, units)",
      entry: "scripts/install.ts",
      permissions: {
        ...none(),
        read: [
          ".",
          "/etc/passwd",
          "/etc/group",
          "/usr/local/bin/deno",
          "/usr/local/lib/node_modules/deno",
          ...writes,
        ],
        write: writes,
        run: ["/usr/sbin/useradd", "/usr/bin/cp", "deno"],
        sys: ["uid"],
      },
      args: [],
      v8Flags: [],
    };
  },
  replay: (l) => ({
    description: "posts a recorded day of openHAB events to a running stack",
    entry: "scripts/replay.ts",
    permissions: { ...none(), read: [l.codeDir], net: [hostPort(l.joiIngest)] },
    args: [`--joi-url=http://${hostPort(l.joiIngest)}`],
    v8Flags: [],
  }),
  devices: (l) => ({
    description: "operator view of device states (flapping, alerting, acknowledged)",
    entry: "scripts/devices.ts",
    permissions: { ...none(), read: [l.joiStateDir] },
    args: [`--state-dir=${l.joiStateDir}`],
    v8Flags: [],
  }),
  memory: (l) => {
    // An operator tool, not a service: in production it reads memory.key where
    // systemd's LoadCredential takes it from (/etc/joi/secrets), not from the
    // credentials directory that exists only while joi.service runs.
    const keyDir = l.mode === "production" ? `${l.joiConfigDir}/secrets` : l.secretsDir("joi");
    return {
      description: "memory tools: verify the hash chains of the per-channel stores",
      entry: "scripts/memory.ts",
      // reads only; the key because the chain is an HMAC chain (see scripts/memory.ts)
      permissions: { ...none(), read: [l.joiConfigDir, l.joiStateDir, keyDir] },
      args: [
        `--config-dir=${l.joiConfigDir}`,
        `--state-dir=${l.joiStateDir}`,
        `--secrets-dir=${keyDir}`,
      ],
      v8Flags: [],
    };
  },
  language_check: (l) => ({
    description: "runs the Slovak acceptance criteria against the configured model",
    entry: "scripts/language_check.ts",
    // the question sets ship with the code; the result is recorded for joi's /health
    permissions: {
      ...none(),
      read: [l.codeDir, l.joiConfigDir, l.joiStateDir],
      write: [l.joiStateDir],
      net: [hostPort(l.llm)],
    },
    args: [
      `--config-dir=${l.joiConfigDir}`,
      `--state-dir=${l.joiStateDir}`,
      `--llm-url=http://${hostPort(l.llm)}/v1`,
      `--questions=${l.codeDir}/scripts/data/slovak_acceptance.json`,
    ],
    v8Flags: [],
  }),
  doctor: (l) => {
    const production = l.mode === "production";
    const keys = {
      joi: production ? `${l.joiConfigDir}/secrets` : l.secretsDir("joi"),
      mesh: production ? `${l.meshConfigDir}/secrets` : l.secretsDir("mesh"),
      relay: production ? `${l.relayConfigDir}/secrets` : l.secretsDir("openhab_relay"),
    };
    const url = (e: Endpoint) => `http://${hostPort(e)}`;
    return {
      description: "joi-doctor: one table of every health check of this machine, with fixes",
      entry: "scripts/doctor.ts",
      // Reads only (keys: their mode and owner, never their bytes); dials the
      // services' /health, Ollama and openHAB; asks systemd, df, logrotate and
      // timedatectl in production.
      permissions: {
        ...none(),
        read: [
          ...new Set([
            l.joiConfigDir,
            l.meshConfigDir,
            l.relayConfigDir,
            l.joiStateDir,
            l.meshStateDir,
            l.relayStateDir,
            l.logDir,
            keys.joi,
            keys.mesh,
            keys.relay,
            l.driftReport,
            "/etc/passwd",
          ]),
          ...nebulaCerts(l),
          ...(production ? ["/etc/logrotate.d/joi", "/etc/systemd/journald.conf.d/joi.conf"] : []),
        ],
        net: [
          hostPort(l.joiInbound),
          hostPort(l.meshOutbound),
          hostPort(l.joiIngest),
          hostPort(l.llm),
          hostPort(l.openhab),
        ],
        run: production
          ? ["/usr/bin/systemctl", "/usr/bin/df", "/usr/sbin/logrotate", "/usr/bin/timedatectl"]
          : ["/usr/bin/df"],
        sys: production ? ["networkInterfaces"] : [],
      },
      args: [
        `--mode=${l.mode}`,
        `--joi-config-dir=${l.joiConfigDir}`,
        `--mesh-config-dir=${l.meshConfigDir}`,
        `--relay-config-dir=${l.relayConfigDir}`,
        `--joi-state-dir=${l.joiStateDir}`,
        `--mesh-state-dir=${l.meshStateDir}`,
        `--relay-state-dir=${l.relayStateDir}`,
        `--log-dir=${l.logDir}`,
        `--joi-keys=${keys.joi}`,
        `--mesh-keys=${keys.mesh}`,
        `--relay-keys=${keys.relay}`,
        `--joi-url=${url(l.joiInbound)}`,
        `--mesh-url=${url(l.meshOutbound)}`,
        `--ingest-url=${url(l.joiIngest)}`,
        `--llm-url=${url(l.llm)}`,
        `--openhab-url=${url(l.openhab)}`,
        `--drift-report=${l.driftReport}`,
        ...(l.nebulaDir ? [`--nebula-dir=${l.nebulaDir}`] : []),
      ],
      v8Flags: [],
    };
  },
  bench: () => ({
    description: "benchmarks: figures and ratios against a baseline measured in the same run",
    entry: "scripts/bench.ts",
    permissions: {
      ...none(),
      read: [".", "/tmp", "/etc/passwd", "/etc/group", "/usr/local/bin"],
      write: ["./var", "/tmp"],
      net: ["127.0.0.1", ...testSocketPaths().map((p) => `unix:${p}`)],
      // pmap: where a service's memory is (/proc/<pid>/smaps needs --allow-all in Deno);
      // time, ffmpeg, nebula, nebula-cert: the peaks bench budget measures
      run: [
        "deno",
        "sudo",
        "nft",
        "ip",
        "/usr/bin/pmap",
        "/usr/bin/time",
        "/usr/bin/ffmpeg",
        "/usr/bin/nebula",
        "/usr/bin/nebula-cert",
        // bench retrieve's booted VM (tests/e2e/vm/): the VM and commands inside it
        "sh",
        "bash",
        "kill",
        "chattr",
        "unshare",
        "nsenter",
      ],
      env: [],
      // loadavg: the benches print the machine's load next to their figures (a shared machine)
      sys: ["loadavg"],
    },
    args: [],
    v8Flags: [],
  }),
  test: () => ({
    description: "the test suite: real servers on loopback, real sockets, users, sudo, nft",
    entry: "scripts/test.ts",
    permissions: {
      ...none(),
      read: [".", "/tmp", "/etc", "/usr/local/bin", "/usr/bin", "/usr/sbin", "/var/lib", "/run"],
      write: [".", "/tmp", "/usr/local/bin", "/etc/sudoers.d", "/var/lib"],
      net: [
        "127.0.0.1",
        "localhost",
        ...[...testSocketPaths(), ...testRetrieveSocketPaths()].map((p) => `unix:${p}`),
      ],
      run: [
        "deno",
        "sudo",
        "ip",
        "nft",
        "useradd",
        "userdel",
        "groupadd",
        "groupdel",
        "usermod",
        "gpasswd",
        "visudo",
        "chattr",
        "lsattr",
        "setpriv",
        "cp",
        "sqlite3",
        "nebula",
        "nebula-cert",
        "systemd-analyze",
        "id",
        "getent",
        "pkill",
        "kill",
        "chown",
        "sh",
        // log retention: the real logrotate over a folder of aged logs
        "/usr/sbin/logrotate",
        // the booted end-to-end test (tests/e2e/vm/): VMs and commands inside them
        "bash",
        "unshare",
        "nsenter",
        // the mesh's voice tests: Debian's ffmpeg, stand-ins for whisper.cpp and piper
        "/usr/bin/ffmpeg",
        "./tests/peers/signal_cli/bin/whisper-cli",
        "./tests/peers/signal_cli/bin/piper",
      ],
      env: ["CI", "PATH", "HOME", "TMPDIR", "JOI_TEST_KEEP", "JOI_FUZZ_SCALE", "JOI_TEST_SOCK_DIR"],
      sys: ["uid", "gid", "hostname"],
    },
    args: [],
    v8Flags: [],
  }),
};

/** A VM's own Nebula certificate (public), when the layout has Nebula. */
function ownCert(l: Layout, node: "joi" | "mesh" | "openhab"): string[] {
  return l.nebulaDir ? [`${l.nebulaDir}/${node}.crt`] : [];
}

/** The Nebula certificates of a layout (public; never the keys beside them). */
function nebulaCerts(l: Layout): string[] {
  return l.nebulaDir ? NEBULA_CERTS.map((n) => `${l.nebulaDir}/${n}`) : [];
}

/** The full spec of `name` under `layout`. */
export function programSpec(name: ProgramName, layout: Layout): ProgramSpec {
  return { name, env: {}, ...MANIFEST[name](layout) };
}
