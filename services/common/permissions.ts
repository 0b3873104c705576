/**
 * THE permission manifest: for every joi program, the Deno permissions it runs
 * with, as a function of the deployment {@link Layout}.
 *
 * This is the one place a program's sandbox is stated. `deno.json` tasks
 * (`deno task sync` writes them), `main.ts` (the local run) and the systemd
 * units in `systemd/` are all derived from it, and `tests/permissions_test.ts`
 * fails if any of them disagrees.
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
  "install",
  "replay",
  "devices",
  "memory",
  "bench",
  "test",
] as const;

/** A program name of {@link PROGRAMS}. */
export type ProgramName = typeof PROGRAMS[number];

/** A host and port a service listens on or dials. */
export interface Endpoint {
  /** An IP literal (Deno matches net permissions as written). */
  host: string;
  /** TCP port. */
  port: number;
}

/**
 * Web search through the mesh's HTTP proxy (tools.yaml `web_search`, when
 * enabled). Deno checks `--allow-net` for the proxy when the client is made
 * and for every destination when fetching through it, so both are listed.
 */
export interface WebSearchAccess {
  /** The proxy (the mesh's Squid). */
  proxy: Endpoint;
  /** Allowed destinations as `host:443` (tools.yaml `allowed_domains`). */
  hosts: string[];
}

/** Where things are in one deployment: the local run or a production VM. */
export interface Layout {
  /** `local` for `deno task start`, `production` for the VMs. */
  mode: "local" | "production";
  /** The code (the repository, or `/opt/joi`). Paths below may be relative to the cwd. */
  codeDir: string;
  /** joi's policy files (`./policies` or `/etc/joi`). */
  joiConfigDir: string;
  /** The mesh's policy files (`./policies` or `/etc/mesh-proxy`). */
  meshConfigDir: string;
  /** The relay's policy files (`./policies` or `/etc/joi-relay`). */
  relayConfigDir: string;
  /** joi's state: `knowledge/`, `data/`, `joi.db` (`./var/joi` or `/var/lib/joi`). */
  joiStateDir: string;
  /** The mesh's state: queue, nonces (`./var/mesh` or `/var/lib/mesh-proxy`). */
  meshStateDir: string;
  /** The relay's buffer (`./var/relay` or `/var/lib/joi-relay`). */
  relayStateDir: string;
  /** JSON-lines logs (`./var/log` or `/var/log/joi`). */
  logDir: string;
  /**
   * Secrets directory per program. Locally `./var/secrets`; in production the
   * systemd credentials directory `/run/credentials/<unit>`.
   */
  secretsDir: (program: "joi" | "mesh" | "openhab_relay") => string;
  /** joi's inbound API for the mesh (8443). */
  joiInbound: Endpoint;
  /** joi's openHAB ingest (8445). */
  joiIngest: Endpoint;
  /** The mesh's outbound API for joi (8444). */
  meshOutbound: Endpoint;
  /** Ollama's OpenAI-compatible endpoint as joi dials it. */
  llm: Endpoint;
  /** openHAB's REST API as the relay dials it. */
  openhab: Endpoint;
  /** signal-cli's JSON-RPC socket, or `terminal` for the local chat. */
  signal: { kind: "socket"; path: string } | { kind: "terminal" };
  /** Where signal-cli keeps attachments (voice notes), read by the mesh. */
  signalAttachmentsDir: string;
  /**
   * Voice on the mesh (its `mesh.yaml` `voice` section), when configured: the
   * exact executables it may run. Absent: the mesh runs nothing.
   */
  meshVoice?: { whisperBin: string; ffmpegBin: string; piperBin?: string };
  /** Installed retrieve entry point (`/usr/local/bin/joi-retrieve`). */
  retrieveBin: string;
  /** The knowledge broker's Unix socket (the only process that may sudo). */
  knowledgeSocket: string;
  /** Web search, when tools.yaml enables it (joi then dials the proxy and those hosts). */
  webSearch?: WebSearchAccess;
  /** sudo, as joi spawns it. */
  sudoBin: string;
  /** The Deno binary the units start (`/usr/local/bin/deno`); `deno` locally. */
  denoBin: string;
}

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
}

const none = (): Permissions => ({ read: [], write: [], net: [], run: [], env: [], sys: [] });

const hostPort = (e: Endpoint): string => `${e.host}:${e.port}`;

/** The local run's state root: the parent of the joi state directory. */
const varRoot = (l: Layout): string => l.joiStateDir.replace(/\/joi$/, "");

/** The slots tests may use for Unix sockets (Deno needs exact socket paths). */
export const TEST_SOCKET_DIR = "/tmp/joi-test-sock";
/** Number of socket slots `s0.sock`..`s15.sock` the test sandbox admits. */
export const TEST_SOCKET_SLOTS = 16;

/** The test socket slot paths. */
export function testSocketPaths(): string[] {
  return Array.from({ length: TEST_SOCKET_SLOTS }, (_, i) => `${TEST_SOCKET_DIR}/s${i}.sock`);
}

/** Options of {@link localLayout}. */
export interface LocalLayoutOptions {
  /** joi's inbound port; the mesh gets +1 and the ingest +2 (default 8443). */
  basePort?: number;
  /** State directory (default `./var`). */
  varDir?: string;
  /** Web search, when tools.yaml enables it. */
  webSearch?: WebSearchAccess;
}

/**
 * The layout of `deno task start`: everything under the repository, services
 * on loopback, state in `./var`, the terminal in place of signal-cli.
 */
export function localLayout(options: LocalLayoutOptions = {}): Layout {
  const base = options.basePort ?? 8443;
  const v = options.varDir ?? "./var";
  return {
    mode: "local",
    codeDir: ".",
    joiConfigDir: "./policies",
    meshConfigDir: "./policies",
    relayConfigDir: "./policies",
    joiStateDir: `${v}/joi`,
    meshStateDir: `${v}/mesh`,
    relayStateDir: `${v}/relay`,
    logDir: `${v}/log`,
    secretsDir: () => `${v}/secrets`,
    joiInbound: { host: "127.0.0.1", port: base },
    joiIngest: { host: "127.0.0.1", port: base + 2 },
    meshOutbound: { host: "127.0.0.1", port: base + 1 },
    llm: { host: "127.0.0.1", port: 11434 },
    openhab: { host: "127.0.0.1", port: 8080 },
    signal: { kind: "terminal" },
    signalAttachmentsDir: `${v}/signal-cli/attachments`,
    retrieveBin: "/usr/local/bin/joi-retrieve",
    knowledgeSocket: `${v}/knowledge.sock`,
    ...(options.webSearch ? { webSearch: options.webSearch } : {}),
    sudoBin: "/usr/bin/sudo",
    denoBin: "deno",
  };
}

/** The addresses a production deployment is built from (`network.yaml`, `llm.yaml`). */
export interface ProductionAddresses {
  /** Nebula overlay addresses of the three VMs. */
  hosts: { mesh: string; joi: string; openhab: string };
  /** Ports of the APIs. */
  ports: { joiInbound: number; meshOutbound: number; joiIngest: number };
  /** Ollama as joi dials it (on the joi VM itself). */
  llm: Endpoint;
  /** openHAB's REST API as the relay dials it (on the openHAB VM itself). */
  openhab: Endpoint;
  /** signal-cli's socket on the mesh VM. */
  signalSocket: string;
  /** signal-cli's data directory (attachments are read from `<dir>/attachments`). */
  signalDataDir: string;
  /** The underlay Nebula's UDP runs over (vmbr1) and its port. */
  underlay: { cidr: string; port: number };
  /** Web search, when tools.yaml enables it. */
  webSearch?: WebSearchAccess;
}

/** The systemd unit name of each long-running program. */
export const UNIT_NAMES = {
  joi: "joi.service",
  knowledge: "joi-knowledge.service",
  mesh: "joi-mesh.service",
  openhab_relay: "joi-openhab-relay.service",
} as const;

/** Options of {@link productionLayout}. */
export interface ProductionLayoutOptions {
  /**
   * A staging prefix (an absolute directory, e.g. a `deno task install --root`
   * stage) put before every filesystem path the layout owns: the code,
   * configuration, state, logs, secrets (credentials), the knowledge socket and
   * the retrieve entry point. Not before the sudo and Deno binaries, nor the
   * signal-cli paths of `addresses`. Default: none, the real system paths.
   */
  root?: string;
}

/**
 * The layout of the three production VMs: code in `/opt/joi`, configuration in
 * `/etc`, state in `/var/lib`, secrets as systemd credentials, services bound
 * to their Nebula addresses. With `options.root`, the same layout staged under
 * a prefix (the end-to-end test runs the staged tree this way).
 */
export function productionLayout(
  a: ProductionAddresses,
  options: ProductionLayoutOptions = {},
): Layout {
  const root = (options.root ?? "").replace(/\/+$/, "");
  if (root !== "" && !root.startsWith("/")) {
    throw new Error(`productionLayout: root must be an absolute path (got ${options.root})`);
  }
  const at = (path: string): string => `${root}${path}`;
  return {
    mode: "production",
    codeDir: at("/opt/joi"),
    joiConfigDir: at("/etc/joi"),
    meshConfigDir: at("/etc/mesh-proxy"),
    relayConfigDir: at("/etc/joi-relay"),
    joiStateDir: at("/var/lib/joi"),
    meshStateDir: at("/var/lib/mesh-proxy"),
    relayStateDir: at("/var/lib/joi-relay"),
    logDir: at("/var/log/joi"),
    secretsDir: (program) => at(`/run/credentials/${UNIT_NAMES[program]}`),
    joiInbound: { host: a.hosts.joi, port: a.ports.joiInbound },
    joiIngest: { host: a.hosts.joi, port: a.ports.joiIngest },
    meshOutbound: { host: a.hosts.mesh, port: a.ports.meshOutbound },
    llm: a.llm,
    openhab: a.openhab,
    signal: { kind: "socket", path: a.signalSocket },
    signalAttachmentsDir: `${a.signalDataDir}/attachments`,
    retrieveBin: at("/usr/local/bin/joi-retrieve"),
    knowledgeSocket: at("/run/joi-knowledge/knowledge.sock"),
    ...(a.webSearch ? { webSearch: a.webSearch } : {}),
    sudoBin: "/usr/bin/sudo",
    denoBin: "/usr/local/bin/deno",
  };
}

type Builder = (layout: Layout) => Omit<ProgramSpec, "name">;

const MANIFEST: Record<ProgramName, Builder> = {
  main: (l) => ({
    description: "the local run: starts and supervises every service on loopback",
    entry: "main.ts",
    permissions: {
      ...none(),
      read: [l.codeDir, varRoot(l)],
      write: [varRoot(l)],
      net: [hostPort(l.joiInbound), hostPort(l.meshOutbound), hostPort(l.joiIngest)],
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
        l.knowledgeSocket,
      ],
      write: [l.joiStateDir, l.logDir, l.knowledgeSocket],
      net: [
        hostPort(l.joiInbound),
        hostPort(l.joiIngest),
        hostPort(l.meshOutbound),
        hostPort(l.llm),
        `unix:${l.knowledgeSocket}`,
        ...(l.webSearch ? [hostPort(l.webSearch.proxy), ...l.webSearch.hosts] : []),
      ],
      // No --allow-run: knowledge is searched through the broker, the only
      // process allowed to run sudo (and one without any network).
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
      `--knowledge-socket=${l.knowledgeSocket}`,
      `--mode=${l.mode}`,
      `--mesh-address=${l.meshOutbound.host}`,
    ],
    // a small young generation and a capped old space keep joi's RSS near 110 MB
    // after 10,000 messages (scripts/bench/joi.ts); its live heap is ~20 MB
    v8Flags: ["--max-old-space-size=96", "--max-semi-space-size=2"],
  }),
  knowledge: (l) => ({
    description: "knowledge broker: the only process that runs sudo -u <channel user> joi-retrieve",
    entry: "services/knowledge_broker/main.ts",
    permissions: {
      ...none(),
      read: [l.codeDir, l.joiConfigDir, "/etc/passwd", l.knowledgeSocket],
      write: [l.knowledgeSocket, l.logDir],
      net: [`unix:${l.knowledgeSocket}`],
      run: [l.sudoBin],
    },
    args: [
      `--config-dir=${l.joiConfigDir}`,
      `--state-dir=${l.joiStateDir}`,
      `--code-dir=${l.codeDir}`,
      `--socket=${l.knowledgeSocket}`,
      `--retrieve-bin=${l.retrieveBin}`,
      `--sudo-bin=${l.sudoBin}`,
      `--log-dir=${l.logDir}`,
    ],
    v8Flags: [],
  }),

  mesh: (l) => {
    const sock = l.signal.kind === "socket" ? [l.signal.path] : [];
    const v = l.meshVoice;
    // voice: stat and delete signal-cli's attachment files; run the three tools only
    const attachments = v ? [l.signalAttachmentsDir] : [];
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
        l.signal.kind === "socket" ? `--signal-socket=${l.signal.path}` : "--terminal",
      ],
      // small young generation, no optimizing JIT (the mesh is I/O-bound): RSS after
      // 10,000 messages ~86 MB instead of ~160-200 MB (scripts/bench/mesh.ts)
      v8Flags: ["--max-semi-space-size=1", "--max-old-space-size=64", "--lite-mode"],
    };
  },
  openhab_relay: (l) => ({
    description: "on the openHAB host: openHAB's event stream -> joi's ingest (8445)",
    entry: "services/openhab_relay/main.ts",
    permissions: {
      ...none(),
      read: [l.relayConfigDir, l.relayStateDir, l.secretsDir("openhab_relay")],
      write: [l.relayStateDir],
      net: [hostPort(l.openhab), hostPort(l.joiIngest)],
    },
    args: [
      `--config-dir=${l.relayConfigDir}`,
      `--state-dir=${l.relayStateDir}`,
      `--secrets-dir=${l.secretsDir("openhab_relay")}`,
      `--openhab-url=http://${hostPort(l.openhab)}`,
      `--joi-url=http://${hostPort(l.joiIngest)}`,
    ],
    v8Flags: [],
  }),
  retrieve: (l) => ({
    description: "joi-retrieve: read-only FTS over the knowledge its uid may open (run via sudo)",
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
    description: "joi-validate-config: checks users, groups, modes, sudoers, units, policies",
    entry: "scripts/validate.ts",
    // Reads only: the policies and secrets (both in the config dir), the state
    // tree, the accounts, the two generated root files, the installed units,
    // and the folder of the retrieve entry point (its owner and mode matter).
    permissions: {
      ...none(),
      read: [
        l.joiConfigDir,
        l.joiStateDir,
        "/etc/passwd",
        "/etc/group",
        "/etc/sudoers.d/joi",
        "/etc/audit/rules.d/joi.rules",
        ...[...Object.values(UNIT_NAMES), "joi-validate.service"].map(
          (u) => `/etc/systemd/system/${u}`,
        ),
        "/usr/local/bin",
        // who watches the watchmen: owner and mode of the code (validate, retrieve)
        l.codeDir,
      ],
      run: ["/usr/bin/lsattr"],
    },
    args: [`--config-dir=${l.joiConfigDir}`],
    v8Flags: [],
  }),
  ai_switch: (l) => {
    // One set of paths feeds both the sandbox and the arguments, so they cannot
    // drift; tests retarget these exact strings (scripts/ai_switch/sandbox.ts).
    // The state and log paths must equal infra.yml's global.ai_switch values.
    const infra = `${l.codeDir}/policies/infra.yml`;
    const state = "/opt/anklume/ai-access-current";
    const log = "/var/log/anklume/ai-switch.log";
    const lock = "/run/lock/anklume-ai-switch.lock";
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
        read: [infra, state, `${state}.tmp`, log, lock],
        write: [state, `${state}.tmp`, log, lock],
        run: bins.map(([, path]) => path),
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
        read: [...validate.read, "/etc/sudoers.d", "/run/joi/joi.pid", "/run/systemd/system"],
        // policy files, their staging folder and backups live in the config dir;
        // the sudoers file is rewritten beside itself, then renamed
        write: [l.joiConfigDir, "/etc/sudoers.d"],
        run: [
          "/usr/sbin/usermod",
          "/usr/bin/gpasswd",
          "/usr/bin/pkill",
          "/usr/bin/systemctl",
          "/usr/bin/kill",
          "/usr/sbin/visudo",
          ...validate.run,
        ],
      },
      args: [`--config-dir=${l.joiConfigDir}`],
      v8Flags: [],
    };
  },
  provision: (l) => ({
    description: "creates channel users, reader groups, knowledge trees and sudoers",
    entry: "scripts/provision.ts",
    permissions: {
      ...none(),
      read: [
        l.joiConfigDir,
        l.joiStateDir,
        l.codeDir, // checks scripts/retrieve.ts is root-owned and not writable by others
        l.retrieveBin,
        ...(l.denoBin.startsWith("/") ? [l.denoBin] : []), // --install-entry source
        "/etc/passwd",
        "/etc/group",
        "/etc/sudoers.d",
        "/etc/audit/rules.d",
      ],
      write: [
        l.joiStateDir,
        "/etc/sudoers.d",
        "/etc/audit/rules.d",
        l.retrieveBin,
        `${l.retrieveBin.replace(/[^/]+$/, "")}.${
          l.retrieveBin.replace(/^.*\//, "")
        }.provision-new`,
      ],
      run: ["/usr/sbin/useradd", "/usr/sbin/groupadd", "/usr/bin/gpasswd", "/usr/sbin/visudo"],
    },
    args: [
      `--config-dir=${l.joiConfigDir}`,
      `--state-dir=${l.joiStateDir}`,
      `--code-dir=${l.codeDir}`,
      `--retrieve-bin=${l.retrieveBin}`,
    ],
    v8Flags: [],
  }),
  nebula: (l) => ({
    description: "creates the Nebula CA, node certificates, node configs and nft guard",
    entry: "scripts/nebula.ts",
    permissions: {
      ...none(),
      read: [l.joiConfigDir, `${varRoot(l)}/nebula`],
      write: [`${varRoot(l)}/nebula`],
      run: ["/usr/bin/nebula-cert"],
    },
    args: [`--config-dir=${l.joiConfigDir}`, `--out=${varRoot(l)}/nebula`],
    v8Flags: [],
  }),
  install: () => ({
    description: "lays out one VM (code, pre-filled cache, config, keys, units) per role",
    entry: "scripts/install.ts",
    permissions: {
      ...none(),
      read: [
        ".",
        "/etc/passwd",
        "/etc/group",
        "/usr/local/bin/deno",
        "/usr/local/lib/node_modules/deno",
      ],
      write: [
        "/opt/joi",
        "/etc/joi",
        "/etc/mesh-proxy",
        "/etc/joi-relay",
        "/etc/systemd/system",
        "/usr/local/bin/joi-retrieve",
        "/usr/local/bin/joi-retrieve.tmp",
        "/var/lib/joi",
        "/var/log/joi",
        "./var/stage",
      ],
      run: ["/usr/sbin/useradd", "/usr/sbin/groupadd", "deno"],
      sys: ["uid"],
    },
    args: [],
    v8Flags: [],
  }),
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
  bench: () => ({
    description: "benchmarks: figures and ratios against a baseline measured in the same run",
    entry: "scripts/bench.ts",
    permissions: {
      ...none(),
      read: [".", "/tmp", "/etc/passwd", "/etc/group", "/usr/local/bin"],
      write: ["./var", "/tmp"],
      net: ["127.0.0.1", ...testSocketPaths().map((p) => `unix:${p}`)],
      run: ["deno", "sudo", "nft", "ip"],
      env: [],
      sys: [],
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
      net: ["127.0.0.1", "localhost", ...testSocketPaths().map((p) => `unix:${p}`)],
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
        // stand-ins for whisper.cpp, ffmpeg and piper (the mesh's voice tests)
        "./tests/peers/signal_cli/bin/whisper-cli",
        "./tests/peers/signal_cli/bin/ffmpeg",
        "./tests/peers/signal_cli/bin/piper",
      ],
      env: ["CI", "PATH", "HOME", "TMPDIR", "JOI_TEST_KEEP"],
      sys: ["uid", "gid", "hostname"],
    },
    args: [],
    v8Flags: [],
  }),
};

/** The full spec of `name` under `layout`. */
export function programSpec(name: ProgramName, layout: Layout): ProgramSpec {
  return { name, ...MANIFEST[name](layout) };
}

/** The `--allow-*` flags of a permission set, in a stable order. */
export function permissionFlags(p: Permissions): string[] {
  const flags: string[] = [];
  const add = (kind: keyof Permissions, flag: string) => {
    const list = [...new Set(p[kind])];
    if (list.length === 0) return;
    for (const item of list) {
      if (item === "" || item.includes(",")) {
        throw new Error(`permission manifest: invalid ${kind} entry ${JSON.stringify(item)}`);
      }
    }
    flags.push(`--allow-${flag}=${list.join(",")}`);
  };
  add("read", "read");
  add("write", "write");
  add("net", "net");
  add("run", "run");
  add("env", "env");
  add("sys", "sys");
  return flags;
}

/** The arguments after `deno` that run `spec`: `run --no-prompt <flags> entry args`. */
export function denoRunArgs(
  spec: ProgramSpec,
  extra: { cachedOnly?: boolean } = {},
): ["run", ...string[]] {
  return [
    "run",
    "--no-prompt",
    ...(extra.cachedOnly ? ["--cached-only"] : []),
    ...(spec.v8Flags.length ? [`--v8-flags=${spec.v8Flags.join(",")}`] : []),
    ...permissionFlags(spec.permissions),
    spec.entry,
    ...spec.args,
  ];
}
