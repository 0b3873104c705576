/**
 * Stopping and starting the GPU services of the ai-tools domain, with
 * `systemctl` on the host or `incus exec <machine> --project ai-tools --
 * systemctl` where the GPU machine is a container.
 *
 * @module
 */
import { AI_TOOLS_DOMAIN, type AiSwitchConfig } from "./config.ts";
import { type Bins, firstLine, type Runner } from "./exec.ts";

/** A service command that failed. */
export class ServiceError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ServiceError";
  }
}

/** Stops and starts the configured GPU services. */
export class Services {
  #run: Runner;
  #bins: Bins;
  #config: AiSwitchConfig;

  /** Drives the services of `config` with `bins` through `run`. */
  constructor(run: Runner, bins: Bins, config: AiSwitchConfig) {
    this.#run = run;
    this.#bins = bins;
    this.#config = config;
  }

  /** The exact command for `verb unit`, for dry runs and messages. */
  command(verb: "stop" | "start", unit: string): [string, string[]] {
    if (this.#config.serviceManager === "incus") {
      return [this.#bins.incus, [
        "exec",
        this.#config.gpuMachine,
        "--project",
        AI_TOOLS_DOMAIN,
        "--",
        "systemctl",
        verb,
        unit,
      ]];
    }
    return [this.#bins.systemctl, [verb, unit]];
  }

  /** Stops every service, in order; throws on the first failure. */
  async stopAll(): Promise<void> {
    for (const unit of this.#config.gpuServices) await this.#one("stop", unit);
  }

  /**
   * Starts every service; tries all of them even if one fails, then throws
   * naming every failure.
   */
  async startAll(): Promise<void> {
    const failures: string[] = [];
    for (const unit of this.#config.gpuServices) {
      try {
        await this.#one("start", unit);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    if (failures.length) throw new ServiceError(failures.join("; "));
  }

  async #one(verb: "stop" | "start", unit: string): Promise<void> {
    const [bin, args] = this.command(verb, unit);
    const r = await this.#run(bin, args);
    if (r.code !== 0) {
      throw new ServiceError(`${verb} ${unit} failed (${bin} exit ${r.code}): ${firstLine(r)}`);
    }
  }
}
