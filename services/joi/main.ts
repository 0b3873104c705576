/**
 * joi's entry point: parses the arguments of the manifest's `joi` entry
 * (`services/common/permissions/mod.ts`) and runs joi's composition root
 * ({@link runJoi} in `service.ts`). SIGTERM/SIGINT stop cleanly; SIGHUP
 * reloads the policies.
 *
 * ```sh
 * deno run <flags of the manifest's joi entry> services/joi/main.ts \
 *   --config-dir=/etc/joi --state-dir=/var/lib/joi --log-dir=/var/log/joi \
 *   --secrets-dir=/run/credentials/joi.service --listen=10.42.0.10:8443 \
 *   --ingest-listen=10.42.0.10:8445 --mesh-url=http://10.42.0.1:8444 --mode=production
 * ```
 *
 * @module
 */
import { parseCommandLine, runMain, UsageError } from "../common/cli.ts";
import { createLogger, fileSink, type Sink } from "../common/log.ts";
import { isLocalEndpoint } from "../common/policy/llm.ts";
import { type JoiArgs, type Listen, runJoi } from "./service.ts";

export type { Listen } from "./service.ts";

/** Parses `127.0.0.1:8445` (or `[::1]:8445`); throws naming the flag. */
export function parseListen(value: string, flag: string): Listen {
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`joi: --${flag}: "${value}" is not host:port (e.g. 127.0.0.1:8445)`);
  }
  const hostname = m[1]!.replace(/^\[|\]$/g, "");
  if (hostname === "0.0.0.0" || hostname === "::") {
    throw new UsageError(
      `joi: --${flag}: refusing to bind ${hostname}; give the Nebula or loopback address`,
    );
  }
  return { hostname, port };
}

/** joi's parsed command line: what {@link runJoi} takes, plus the log folder. */
export interface JoiCommandLine extends JoiArgs {
  logDir: string | undefined;
}

/** Parses joi's arguments; throws {@link UsageError} (its message starts with `joi:`). */
export function parseJoiArgs(args: string[]): JoiCommandLine {
  const { values } = parseCommandLine("joi", {
    args,
    options: {
      "config-dir": { type: "string" },
      "state-dir": { type: "string" },
      "log-dir": { type: "string" },
      "secrets-dir": { type: "string" },
      listen: { type: "string" },
      "ingest-listen": { type: "string" },
      "mesh-url": { type: "string" },
      "llm-url": { type: "string" },
      "retrieve-socket-dir": { type: "string" },
      mode: { type: "string" },
      "mesh-address": { type: "string" },
      "drift-report": { type: "string" },
      "nebula-cert": { type: "string" },
    },
  });
  const need = (f: "config-dir" | "state-dir" | "listen" | "ingest-listen" | "mesh-url") => {
    const v = values[f];
    if (!v) {
      throw new UsageError(
        `joi: --${f} is required (see the joi entry of services/common/permissions/manifest.ts)`,
      );
    }
    return v;
  };
  return {
    configDir: need("config-dir"),
    stateDir: need("state-dir"),
    secretsDir: values["secrets-dir"] ?? "",
    logDir: values["log-dir"],
    mode: parseMode(values.mode),
    listen: parseListen(need("listen"), "listen"),
    ingestListen: parseListen(need("ingest-listen"), "ingest-listen"),
    meshUrl: need("mesh-url"),
    meshAddress: values["mesh-address"] ?? "127.0.0.1",
    llmUrl: values["llm-url"] === undefined ? undefined : parseLlmUrl(values["llm-url"]),
    driftReport: values["drift-report"],
    nebulaCert: values["nebula-cert"],
    retrieveSocketDir: values["retrieve-socket-dir"],
  };
}

function parseMode(v: string | undefined): "local" | "production" {
  if (v === undefined || v === "local" || v === "production") return v ?? "local";
  throw new UsageError(`joi: --mode must be local or production, got ${JSON.stringify(v)}`);
}

/** `--llm-url` replaces llm.yaml's endpoint, so it obeys the same rule: a local address. */
function parseLlmUrl(v: string): string {
  if (isLocalEndpoint(v)) return v;
  throw new UsageError(
    `joi: --llm-url ${JSON.stringify(v)} is not an http(s) URL of a loopback or private ` +
      `address, as llm.yaml's endpoint must be (the model never leaves the household)`,
  );
}

async function main(): Promise<number> {
  const args = parseJoiArgs(Deno.args);
  const sinks: Sink[] = [];
  if (args.logDir) {
    try {
      await Deno.mkdir(args.logDir, { recursive: true });
      sinks.push(fileSink(`${args.logDir}/joi.log`));
      sinks.push(fileSink(`${args.logDir}/security.log`, true));
    } catch (e) {
      console.error(`joi: cannot open logs in ${args.logDir}: ${(e as Error).message}`);
    }
  }
  return await runJoi(args, createLogger("joi", { sinks }));
}

if (import.meta.main) await runMain(main);
