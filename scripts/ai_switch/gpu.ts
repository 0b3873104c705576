/**
 * VRAM flush through `nvidia-smi`: list the compute processes, kill them,
 * attempt a GPU reset (non-fatal: many GPUs refuse it), then check that no
 * compute process remains and that memory in use dropped.
 *
 * @module
 */
import { firstLine, type Runner } from "./exec.ts";

/** One GPU compute process as nvidia-smi lists it. */
export interface ComputeApp {
  /** Process id (always > 1: pid 0, 1 and negatives are refused). */
  pid: number;
  /** Memory it holds, MiB. */
  usedMiB: number;
}

/** What a flush did and observed. */
export interface FlushReport {
  /** Processes listed before, with their memory. */
  before: ComputeApp[];
  /** GPU memory in use before, MiB. */
  usedBeforeMiB: number;
  /** Pids a kill was sent to. */
  killed: number[];
  /** Whether `--gpu-reset` succeeded; its error otherwise. */
  reset: { ok: true } | { ok: false; error: string };
  /** Processes still listed after. */
  after: ComputeApp[];
  /** GPU memory in use after, MiB. */
  usedAfterMiB: number;
}

/** The flush could not clear the GPU; the switch must not proceed. */
export class FlushError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "FlushError";
  }
}

const INT = /^\d+$/;

/**
 * Parses `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`.
 * Refuses anything that is not two non-negative integers per line, and any
 * pid <= 1, so a malformed line can never become `kill -KILL -1`.
 */
export function parseComputeApps(text: string): ComputeApp[] {
  const apps: ComputeApp[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || /^No running/i.test(line)) continue;
    const parts = line.split(",").map((s) => s.trim());
    const [pid = "", mem = ""] = parts;
    if (parts.length !== 2 || !INT.test(pid) || !(INT.test(mem) || mem === "[N/A]")) {
      throw new FlushError(
        `nvidia-smi compute-apps line ${i + 1} is not "pid, used_memory": ${JSON.stringify(line)}`,
      );
    }
    const n = Number(pid);
    if (!Number.isSafeInteger(n) || n <= 1) {
      throw new FlushError(`nvidia-smi listed pid ${pid} (line ${i + 1}): refusing to kill it`);
    }
    apps.push({ pid: n, usedMiB: mem === "[N/A]" ? 0 : Number(mem) });
  }
  return apps;
}

/** Parses `nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits` (one line per GPU). */
export function parseMemoryUsed(text: string): number {
  let total = 0;
  let seen = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (!INT.test(line)) {
      throw new FlushError(`nvidia-smi memory.used is not an integer MiB: ${JSON.stringify(line)}`);
    }
    total += Number(line);
    seen++;
  }
  if (seen === 0) throw new FlushError("nvidia-smi reported no GPU (memory.used is empty)");
  return total;
}

/** Reads and flushes the GPU through `nvidia-smi` and `kill`. */
export class Gpu {
  #run: Runner;
  #smi: string;
  #kill: string;

  /** Uses the given absolute paths through `run`. */
  constructor(run: Runner, nvidiaSmi: string, kill: string) {
    this.#run = run;
    this.#smi = nvidiaSmi;
    this.#kill = kill;
  }

  /** The compute processes on the GPU now. */
  async computeApps(): Promise<ComputeApp[]> {
    const r = await this.#run(this.#smi, [
      "--query-compute-apps=pid,used_memory",
      "--format=csv,noheader,nounits",
    ]);
    if (r.code !== 0) {
      throw new FlushError(
        `nvidia-smi --query-compute-apps failed (exit ${r.code}): ${firstLine(r)}`,
      );
    }
    return parseComputeApps(r.stdout);
  }

  /** GPU memory in use now, MiB (summed over GPUs). */
  async memoryUsed(): Promise<number> {
    const r = await this.#run(this.#smi, [
      "--query-gpu=memory.used",
      "--format=csv,noheader,nounits",
    ]);
    if (r.code !== 0) {
      throw new FlushError(`nvidia-smi --query-gpu failed (exit ${r.code}): ${firstLine(r)}`);
    }
    return parseMemoryUsed(r.stdout);
  }

  /**
   * Kills every compute process, attempts a reset, and checks the result.
   * Throws {@link FlushError} if a process survives, or if processes held
   * memory and the amount in use did not drop.
   */
  async flush(): Promise<FlushReport> {
    const before = await this.computeApps();
    const usedBeforeMiB = await this.memoryUsed();
    const killed: number[] = [];
    for (const app of before) {
      // A process that already exited makes kill fail: the check below is what counts.
      await this.#run(this.#kill, ["-KILL", String(app.pid)]);
      killed.push(app.pid);
    }
    const r = await this.#run(this.#smi, ["--gpu-reset"]);
    const reset = r.code === 0
      ? { ok: true as const }
      : { ok: false as const, error: `exit ${r.code}: ${firstLine(r)}` };
    const after = await this.computeApps();
    const usedAfterMiB = await this.memoryUsed();
    const report = { before, usedBeforeMiB, killed, reset, after, usedAfterMiB };
    if (after.length > 0) {
      throw new FlushError(
        `GPU compute processes survived the flush: ${after.map((a) => a.pid).join(", ")} ` +
          `(check what restarts them; the switch is refused while they hold VRAM)`,
      );
    }
    const held = before.reduce((s, a) => s + a.usedMiB, 0);
    if (held > 0 && usedAfterMiB >= usedBeforeMiB) {
      throw new FlushError(
        `GPU memory in use did not drop after the flush (${usedBeforeMiB} MiB before, ` +
          `${usedAfterMiB} MiB after, ${held} MiB held by killed processes)`,
      );
    }
    return report;
  }
}
