/**
 * The mesh service: the one program that talks to Signal (through signal-cli's
 * JSON-RPC socket, or the terminal for the local run), forwards validated
 * messages to joi (8443) and sends joi's messages (8444).
 *
 * ```sh
 * deno run <flags of the manifest's mesh entry> services/mesh/main.ts \
 *   --config-dir=/etc/mesh-proxy --state-dir=/var/lib/mesh-proxy --log-dir=/var/log/joi \
 *   --secrets-dir=/run/credentials/joi-mesh.service --listen=10.42.0.1:8444 \
 *   --joi-url=http://10.42.0.10:8443 --signal-socket=/run/signal-cli/socket
 * ```
 *
 * Argument parsing and the logs; the mesh itself is composed and run by
 * {@link runMesh} (`service.ts`). The config directory holds `identities.yaml`, `groups.yaml`, `policy.yaml`
 * and optionally `mesh.yaml`; the secrets directory `mesh_to_joi.key` and
 * `joi_to_mesh.key`. Logs go to stderr and `<log-dir>/mesh.log` (security
 * events also to `<log-dir>/mesh-security.log`); stdout belongs to the
 * terminal transport.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../common/cli.ts";
import { createLogger, fileSink, type Logger } from "../common/log.ts";
import { type MeshArgs, runMesh } from "./service.ts";

export type { MeshArgs } from "./service.ts";

export { UsageError } from "../common/cli.ts";

const USAGE = "usage: mesh --config-dir=DIR --state-dir=DIR --log-dir=DIR [--secrets-dir=DIR] " +
  "--listen=IP:PORT --joi-url=http://IP:PORT (--signal-socket=PATH [--attachments-dir=DIR] | " +
  "--terminal)";

/** Parses the mesh's arguments (those the manifest's mesh entry passes). */
export function parseMeshArgs(args: string[]): MeshArgs {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      options: {
        "config-dir": { type: "string" },
        "state-dir": { type: "string" },
        "log-dir": { type: "string" },
        "secrets-dir": { type: "string" },
        "listen": { type: "string" },
        "joi-url": { type: "string" },
        "signal-socket": { type: "string" },
        "attachments-dir": { type: "string" },
        "terminal": { type: "boolean", default: false },
        "nebula-cert": { type: "string" },
      },
    }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const need = (name: string, value: string | undefined): string => {
    if (!value) throw new UsageError(`--${name} is required\n${USAGE}`);
    return value;
  };
  const listen = need("listen", v.listen);
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) {
    throw new UsageError(`--listen=${listen}: expected IP:PORT, e.g. 10.42.0.1:8444`);
  }
  const host = m[1]!.replace(/^\[|\]$/g, "");
  if (host === "0.0.0.0" || host === "::") {
    throw new UsageError(
      `--listen=${listen}: refusing to bind every interface; give the Nebula address`,
    );
  }
  let joiUrl: URL;
  try {
    joiUrl = new URL(need("joi-url", v["joi-url"]));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--joi-url=${v["joi-url"]}: not a URL, e.g. http://10.42.0.10:8443`);
  }
  if (v.terminal && v["signal-socket"]) {
    throw new UsageError("give either --signal-socket or --terminal, not both");
  }
  if (!v.terminal && !v["signal-socket"]) {
    throw new UsageError(`one of --signal-socket=PATH or --terminal is required\n${USAGE}`);
  }
  return {
    configDir: need("config-dir", v["config-dir"]),
    stateDir: need("state-dir", v["state-dir"]),
    logDir: need("log-dir", v["log-dir"]),
    secretsDir: v["secrets-dir"],
    listen: { host, port: Number(m[2]) },
    joiUrl,
    signal: v.terminal ? { kind: "terminal" } : { kind: "socket", path: v["signal-socket"]! },
    attachmentsDir: v.terminal ? undefined : v["attachments-dir"],
    nebulaCert: v["nebula-cert"],
  };
}

if (import.meta.main) {
  let args: MeshArgs;
  try {
    args = parseMeshArgs(Deno.args);
  } catch (e) {
    console.error(`mesh: ${(e as Error).message}`);
    Deno.exit(2);
  }
  let log: Logger;
  try {
    await Deno.mkdir(args.logDir, { recursive: true, mode: 0o750 });
    log = createLogger("mesh", {
      sinks: [
        fileSink(`${args.logDir}/mesh.log`),
        fileSink(`${args.logDir}/mesh-security.log`, true),
      ],
    });
  } catch (e) {
    console.error(`mesh: cannot open logs in ${args.logDir}: ${(e as Error).message}`);
    Deno.exit(2);
  }
  try {
    await runMesh(args, log);
  } catch (e) {
    log.error("mesh_failed", { error: (e as Error).message });
    console.error(`mesh: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
