/**
 * What the operator does by hand in the deployment guide, done by the test
 * the way an operator would: the `$EDITOR` lines. The test household is the
 * shipped example policies (the identities the stand-ins use), so the joi
 * VM's `/etc/joi/*.yaml` stay as installed; the Signal account and the openHAB
 * API token are written as an editor writes a file: an existing file keeps its
 * owner and mode, a new one is root's with root's umask (022), so a guide that
 * forgets to say who may read it fails.
 *
 * @module
 */
import type { Command, StepHost } from "./readme.ts";
import type { Vm } from "../vm/vm.ts";

/** The Signal account the mesh's signal-cli runs for. */
export const SIGNAL_ACCOUNT = "+15559990000";

/** What the test's edits need. */
export interface OperatorInput {
  /** The VMs by host. */
  vms: Partial<Record<Exclude<StepHost, "build">, Vm>>;
  /** The openHAB API token (the openHAB stand-in accepts it). */
  openhabToken: string;
}

/** Writes `text` to `path` as an editor saving a file would. */
export async function editorWrite(vm: Vm, path: string, text: string): Promise<void> {
  // rewritten in place when it exists (owner and mode kept), else created under umask 022
  await vm.exec(["sh", "-c", 'umask 022; cat > "$1"', "sh", path], { input: text });
}

/** The contents the test gives each file an `$EDITOR` line names (by glob). */
export function operatorEdits(input: OperatorInput) {
  return async (host: StepHost, files: string[], command: Command): Promise<void> => {
    for (const f of files) {
      const vm = host === "build" ? undefined : input.vms[host];
      if (!vm) {
        throw new Error(`README.md:${command.line}: an edit on ${host}, which does not run here`);
      }
      if (host === "joi" && /^\/etc\/joi\/(\*|[\w-]+)\.yaml$/.test(f)) {
        // the shipped examples are the test household: check they are there
        const r = await vm.exec(["sh", "-c", `ls ${f}`], { check: false });
        if (r.code !== 0) {
          throw new Error(`README.md:${command.line}: ${f} matches no file on the joi VM`);
        }
      } else if (host === "mesh" && f === "/etc/mesh-proxy/signal-cli.env") {
        await editorWrite(vm, f, `SIGNAL_ACCOUNT=${SIGNAL_ACCOUNT}\n`);
      } else if (host === "openhab" && f === "/etc/joi-relay/secrets/openhab_token") {
        await editorWrite(vm, f, `${input.openhabToken}\n`);
      } else {
        throw new Error(
          `README.md:${command.line}: the test does not know what an operator writes to ${f} on ${host}`,
        );
      }
    }
  };
}
