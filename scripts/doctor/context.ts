/**
 * What `deno task doctor` knows about where it runs: the role (the local run
 * or one production VM), the paths and addresses its manifest entry gave it,
 * and the few system tools it may run. Tests inject `fetch`, `run` and the
 * clock.
 *
 * @module
 */
import type { Layout } from "../../services/common/permissions/mod.ts";

/** Which machine is examined. */
export type Role = "local" | "joi" | "mesh" | "openhab";

/**
 * The paths and addresses of the layout (the manifest renders them as
 * arguments): the layout's own fields, plus what doctor is told about.
 */
export interface DoctorPaths extends
  Pick<
    Layout,
    | "mode"
    | "joiConfigDir"
    | "meshConfigDir"
    | "relayConfigDir"
    | "joiStateDir"
    | "meshStateDir"
    | "relayStateDir"
    | "logDir"
  > {
  /** Where each service's keys are kept (production: `<config>/secrets`). */
  keysDirs: { joi: string; mesh: string; openhab: string };
  /** `http://host:port` of joi's 8443, the mesh's 8444, joi's ingest 8445, Ollama, openHAB. */
  joiUrl: string;
  meshUrl: string;
  ingestUrl: string;
  llmUrl: string;
  openhabUrl: string;
  /** `/etc/nebula` (production), absent locally. */
  nebulaDir: string | undefined;
  /** The daily validation's report. */
  driftReport: string;
}

/** One run of a tool. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Everything a check may use. */
export interface DoctorContext {
  role: Role;
  paths: DoctorPaths;
  now: number;
  fetch: typeof fetch;
  /** Runs an exact binary of the manifest (systemctl, df, logrotate, timedatectl). */
  run: (bin: string, args: string[]) => Promise<RunResult>;
  /** The machine's addresses (Deno.networkInterfaces). */
  addresses: () => string[];
  /** `/etc/passwd`. */
  passwdFile: string;
  /** `/etc` (tests: a folder of their own): logrotate's and journald's files. */
  etcDir: string;
}

/** Runs `bin` for real. */
export async function runTool(bin: string, args: string[]): Promise<RunResult> {
  try {
    const out = await new Deno.Command(bin, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
}
