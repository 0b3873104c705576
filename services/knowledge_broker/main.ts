/**
 * `joi-knowledge`: the knowledge broker process (see `server.ts`).
 *
 * Arguments (from the permission manifest's `knowledge` entry):
 * `--config-dir`, `--state-dir`, `--code-dir`, `--socket`, `--retrieve-bin`,
 * `--sudo-bin`, `--log-dir`. The channel configuration is reloaded on SIGHUP
 * and whenever `channel_users.yaml` or `recipients.yaml` changes on disk; a
 * broken file is refused and the previous configuration kept.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, fileSink, type Logger } from "../common/log.ts";
import { localLayout } from "../common/permissions/mod.ts";
import { loadPolicies } from "../common/policy/mod.ts";
import { RetrieveCaller } from "../joi/knowledge/caller.ts";
import { retrieveFixedArgv, retrieveSpec } from "../joi/knowledge/retrieve_argv.ts";
import { type Retriever, serveKnowledge } from "./server.ts";

/** Parsed arguments. */
export interface BrokerArgs {
  configDir: string;
  stateDir: string;
  codeDir: string;
  socket: string;
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
      socket: { type: "string" },
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
    socket: need("socket"),
    retrieveBin: need("retrieve-bin"),
    sudoBin: need("sudo-bin"),
    logDir: values["log-dir"],
  };
}

/**
 * Holds the current caller; rebuilds it when the channel files change.
 * The retrieve argv derives from the manifest's `retrieve` entry for these
 * code and state directories, exactly as provision renders the sudoers rule.
 */
export class CallerHolder {
  #args: BrokerArgs;
  #log: Logger;
  #caller: RetrieveCaller;
  #stamp: string;

  /** Loads the policies once; throws if they are broken at start. */
  constructor(args: BrokerArgs, log: Logger) {
    this.#args = args;
    this.#log = log;
    this.#stamp = this.#mtimes();
    this.#caller = this.#build();
  }

  #mtimes(): string {
    return ["channel_users.yaml", "recipients.yaml"].map((f) => {
      try {
        const st = Deno.statSync(`${this.#args.configDir}/${f}`);
        // size and inode too: two writes within one millisecond share an mtime
        return `${st.mtime?.getTime()}:${st.size}:${st.ino}`;
      } catch {
        return "missing";
      }
    }).join("/");
  }

  #build(): RetrieveCaller {
    const p = loadPolicies(this.#args.configDir);
    const layout = {
      ...localLayout(),
      codeDir: this.#args.codeDir,
      joiStateDir: this.#args.stateDir,
    };
    return new RetrieveCaller({
      sudoBin: this.#args.sudoBin,
      retrieveBin: this.#args.retrieveBin,
      fixedArgv: retrieveFixedArgv(retrieveSpec(layout, Deno.cwd())),
      allowedChannelUsers: p.channelUsers.allowed_channel_users,
      recipients: p.recipients,
      logger: this.#log,
    });
  }

  /** Rebuilds now (SIGHUP); keeps the old caller if the files are broken. */
  reload(reason: string): void {
    // Stamp before reading: a write that lands while we read is seen next time.
    const stamp = this.#mtimes();
    try {
      this.#caller = this.#build();
      this.#log.info("knowledge_config_reloaded", { reason });
    } catch (e) {
      this.#log.security("knowledge_config_refused", { reason, error: (e as Error).message });
    } finally {
      this.#stamp = stamp;
    }
  }

  /** The caller for the next request (reloading first if a file changed). */
  current(): Retriever {
    if (this.#mtimes() !== this.#stamp) this.reload("file changed");
    return this.#caller;
  }
}

async function main(): Promise<number> {
  const args = parseBrokerArgs(Deno.args);
  const sinks = args.logDir ? [fileSink(`${args.logDir}/knowledge.log`)] : [];
  const log = createLogger("knowledge", { sinks });
  const holder = new CallerHolder(args, log);
  const server = await serveKnowledge({
    socketPath: args.socket,
    retriever: () => holder.current(),
    logger: log,
  });
  Deno.addSignalListener("SIGHUP", () => holder.reload("SIGHUP"));
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
