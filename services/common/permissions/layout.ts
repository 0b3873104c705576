/**
 * Where things are in one deployment: the {@link Layout} of the local run
 * (`deno task start`, everything under the repository) and of the three
 * production VMs (code in `/opt/joi`, configuration in `/etc`, state in
 * `/var/lib`, secrets as systemd credentials, services on Nebula addresses).
 * The permission manifest (`manifest.ts`) is a function of a layout.
 *
 * @module
 */
import {
  channelOfGroup,
  channelOfRecipient,
  CRITICAL_GROUP,
  FAMILY_GROUP,
} from "../policy/household.ts";

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
  /**
   * The binary retrieve runs with (`/usr/local/bin/joi-retrieve`, a root-owned
   * copy of Deno): the retrieve units' `ExecStart`, and what sudo pins in the
   * local run.
   */
  retrieveBin: string;
  /**
   * The daily validation's report for joi's drift watch
   * (`/var/lib/joi-validate/report.json`: root writes, joi's group reads).
   */
  driftReport: string;
  /** Nebula's folder (`/etc/nebula`): the doctor reads the certificates; none locally. */
  nebulaDir?: string;
  /**
   * The folder of the per-channel retrieve sockets (`/run/joi-retrieve`): one
   * socket per channel, `<channel>.sock` (see {@link retrieveSocketPath}).
   */
  retrieveSocketDir: string;
  /**
   * The household's channels and their channel users (channel_users.yaml, as
   * derived from recipients.yaml): joi may dial exactly these channels'
   * retrieve sockets. Empty when a program does not need them.
   */
  channels: Readonly<Record<string, string>>;
  /** Web search, when tools.yaml enables it (joi then dials the proxy and those hosts). */
  webSearch?: WebSearchAccess;
  /** sudo, as the local run's knowledge broker spawns it. */
  sudoBin: string;
  /** The Deno binary the units start (`/usr/local/bin/deno`); `deno` locally. */
  denoBin: string;
}

/** The slots tests may use for Unix sockets (Deno needs exact socket paths). */
export const TEST_SOCKET_DIR = "/tmp/joi-test-sock";
/** Number of socket slots `s0.sock`..`s15.sock` the test sandbox admits. */
export const TEST_SOCKET_SLOTS = 16;

/**
 * The test socket slot paths in `dir` (default {@link TEST_SOCKET_DIR}). The
 * test runner gives each run its own folder below it (see `scripts/test.ts`).
 */
export function testSocketPaths(dir: string = TEST_SOCKET_DIR): string[] {
  return Array.from({ length: TEST_SOCKET_SLOTS }, (_, i) => `${dir}/s${i}.sock`);
}

/** The channels of the shipped household (test households have the same): one retrieve socket each. */
export const TEST_RETRIEVE_CHANNELS: readonly string[] = [
  ...["owner", "partner"].flatMap((r) => [
    channelOfRecipient(r, "private"),
    channelOfRecipient(r, "regular"),
  ]),
  channelOfGroup(FAMILY_GROUP),
  channelOfGroup(CRITICAL_GROUP),
].sort();
/** Number of retrieve socket folders `r0`..`r3` (in a run's socket folder) tests may claim. */
export const TEST_RETRIEVE_SLOTS = 4;

/** The test retrieve socket folders in `dir` (default {@link TEST_SOCKET_DIR}). */
export function testRetrieveSocketDirs(dir: string = TEST_SOCKET_DIR): string[] {
  return Array.from({ length: TEST_RETRIEVE_SLOTS }, (_, i) => `${dir}/r${i}`);
}

/** Every retrieve socket the test sandbox admits in `dir` (each folder x each shipped channel). */
export function testRetrieveSocketPaths(dir: string = TEST_SOCKET_DIR): string[] {
  return testRetrieveSocketDirs(dir).flatMap((d) =>
    TEST_RETRIEVE_CHANNELS.map((c) => retrieveSocketPath(d, c))
  );
}

/** A channel name as it may appear in a socket path or a unit name. */
const CHANNEL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The retrieve socket of `channel` in `dir`: `<dir>/<channel>.sock`. The one
 * place the path is built (manifest, units, joi's client, the local broker).
 * Throws for a name that is not a plain channel identifier.
 */
export function retrieveSocketPath(dir: string, channel: string): string {
  if (!CHANNEL_NAME.test(channel)) {
    throw new Error(`retrieve socket: ${JSON.stringify(channel)} is not a channel name`);
  }
  return `${dir}/${channel}.sock`;
}

/** Every retrieve socket of a layout, one per channel, sorted by channel. */
export function retrieveSockets(l: Layout): string[] {
  return Object.keys(l.channels).sort().map((c) => retrieveSocketPath(l.retrieveSocketDir, c));
}

/** Options of {@link localLayout}. */
export interface LocalLayoutOptions {
  /** joi's inbound port; the mesh gets +1 and the ingest +2 (default 8443). */
  basePort?: number;
  /** State directory (default `./var`). */
  varDir?: string;
  /** Web search, when tools.yaml enables it. */
  webSearch?: WebSearchAccess;
  /** The household's channels -> channel users (default: none). */
  channels?: Readonly<Record<string, string>>;
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
    driftReport: `${v}/validate/report.json`,
    retrieveSocketDir: `${v}/retrieve`,
    channels: options.channels ?? {},
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
  /** Nebula's tun interface (`nebula1`): the overlay addresses live on it. */
  nebulaInterface: string;
  /** Web search, when tools.yaml enables it. */
  webSearch?: WebSearchAccess;
  /** Voice on the mesh, when its mesh.yaml configures it: the exact binaries it may run. */
  meshVoice?: Layout["meshVoice"];
}

/** The systemd unit name of each long-running program. */
export const UNIT_NAMES = {
  joi: "joi.service",
  mesh: "joi-mesh.service",
  openhab_relay: "joi-openhab-relay.service",
} as const;

/** Options of {@link productionLayout}. */
export interface ProductionLayoutOptions {
  /**
   * A staging prefix (an absolute directory, e.g. a `deno task install --root`
   * stage) put before every filesystem path the layout owns: the code,
   * configuration, state, logs, secrets (credentials), the retrieve sockets
   * and the retrieve entry point. Not before the sudo and Deno binaries, nor
   * the signal-cli paths of `addresses`. Default: none, the real system paths.
   */
  root?: string;
  /** The household's channels -> channel users (default: none). */
  channels?: Readonly<Record<string, string>>;
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
    driftReport: at("/var/lib/joi-validate/report.json"),
    nebulaDir: at("/etc/nebula"),
    retrieveSocketDir: at("/run/joi-retrieve"),
    channels: options.channels ?? {},
    ...(a.webSearch ? { webSearch: a.webSearch } : {}),
    ...(a.meshVoice ? { meshVoice: a.meshVoice } : {}),
    sudoBin: "/usr/bin/sudo",
    denoBin: "/usr/local/bin/deno",
  };
}
