/**
 * `joi-knowledge`: the local run's retrieve sockets (see `server.ts`); in
 * production systemd serves them (`joi-retrieve-<channel>.socket`).
 *
 * Arguments (from the permission manifest's `knowledge` entry):
 * `--config-dir`, `--state-dir`, `--code-dir`, `--socket-dir`, `--retrieve-bin`,
 * `--sudo-bin`, `--log-dir`. The channels come from `channel_users.yaml`; the
 * channel -> user mapping is reloaded on SIGHUP and whenever the file changes
 * on disk (a broken file is refused and the previous mapping kept). A channel
 * added later needs a restart: its socket is not in the sandbox yet.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, fileSink, type Logger } from "../common/log.ts";
import { localLayout, retrieveFixedArgv, retrieveSpec } from "../common/permissions/mod.ts";
import { loadPolicyFile } from "../common/policy/mod.ts";
import { serveRetrieveSockets, sudoRetrieve } from "./server.ts";

/** Parsed arguments. */
export interface BrokerArgs {
  configDir: string;
  stateDir: string;
  codeDir: string;
  socketDir: string;
  retrieveBin: string;
  sudoBin: string;
  logDir?: string | undefined;
}

/** Parses the broker's arguments, naming the missing one. */
export function parseBrokerArgs(args: string[]): BrokerArgs {
  const { values } = parseArgs({
    args,
    options: {
      "config-dir": { type: "string" },
      "state-dir": { type: "string" },
      "code-dir": { type: "string" },
      "socket-dir": { type: "string" },
      "retrieve-bin": { type: "string" },
      "sudo-bin": { type: "string" },
      "log-dir": { type: "string" },
    },
  });
  const need = (k: keyof typeof values) => {
    const v = values[k];
    if (typeof v !== "string" || v === "") throw new Error(`knowledge broker: --${k} is required`);
    return v;
  };
  return {
    configDir: need("config-dir"),
    stateDir: need("state-dir"),
    codeDir: need("code-dir"),
    socketDir: need("socket-dir"),
    retrieveBin: need("retrieve-bin"),
    sudoBin: need("sudo-bin"),
    logDir: values["log-dir"],
  };
}

/** channel_users.yaml, reloaded when it changes (a broken file keeps the old mapping). */
export class ChannelUsers {
  #file: string;
  #log: Logger;
  #map: Readonly<Record<string, string>>;
  #stamp: string;

  /** Loads the file once; throws if it is broken at start. */
  constructor(configDir: string, log: Logger) {
    this.#file = `${configDir}/channel_users.yaml`;
    this.#log = log;
    this.#stamp = this.#mtime();
    this.#map = this.#load();
  }

  #mtime(): string {
    try {
      const st = Deno.statSync(this.#file);
      // size and inode too: two writes within one millisecond share an mtime
      return `${st.mtime?.getTime()}:${st.size}:${st.ino}`;
    } catch {
      return "missing";
    }
  }

  #load(): Readonly<Record<string, string>> {
    return loadPolicyFile("channelUsers", this.#file).allowed_channel_users;
  }

  /** Reloads now (SIGHUP); keeps the old mapping if the file is broken. */
  reload(reason: string): void {
    // Stamp before reading: a write that lands while we read is seen next time.
    const stamp = this.#mtime();
    try {
      this.#map = this.#load();
      this.#log.info("knowledge_config_reloaded", { reason });
    } catch (e) {
      this.#log.security("knowledge_config_refused", { reason, error: (e as Error).message });
    } finally {
      this.#stamp = stamp;
    }
  }

  /** The channels at start. */
  channels(): string[] {
    return Object.keys(this.#map).sort();
  }

  /** The current user of `channel` (reloading first if the file changed). */
  userOf(channel: string): string | undefined {
    if (this.#mtime() !== this.#stamp) this.reload("file changed");
    return Object.hasOwn(this.#map, channel) ? this.#map[channel] : undefined;
  }
}

async function main(): Promise<number> {
  const args = parseBrokerArgs(Deno.args);
  const sinks = args.logDir ? [fileSink(`${args.logDir}/knowledge.log`)] : [];
  const log = createLogger("knowledge", { sinks });
  const users = new ChannelUsers(args.configDir, log);
  // the command line sudo pins: the manifest's retrieve entry for these folders
  const layout = { ...localLayout(), codeDir: args.codeDir, joiStateDir: args.stateDir };
  const fixed = retrieveFixedArgv(retrieveSpec(layout, Deno.cwd()));
  const server = await serveRetrieveSockets({
    socketDir: args.socketDir,
    channels: users.channels(),
    userOf: (c) => users.userOf(c),
    spawn: sudoRetrieve(args.sudoBin, args.retrieveBin, fixed),
    logger: log,
  });
  Deno.addSignalListener("SIGHUP", () => users.reload("SIGHUP"));
  await new Promise<void>((resolve) => {
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => resolve());
  });
  await server.close();
  log.info("knowledge_broker_stopped");
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
