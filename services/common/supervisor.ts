/**
 * A small process supervisor for the local run: starts each program as its own
 * child process, prefixes its output lines with its name, restarts it with
 * exponential backoff when it exits, and stops everything cleanly.
 *
 * Production does not use this: systemd supervises there.
 *
 * @module
 */

/** One supervised program. */
export interface ChildSpec {
  /** Name used as the log prefix. */
  name: string;
  /** Executable (resolved through PATH, e.g. `deno`). */
  command: string;
  /** Arguments. */
  args: string[];
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables (added to the inherited environment). */
  env?: Readonly<Record<string, string>>;
  /** Whether the child gets a stdin pipe the supervisor can write to. */
  stdin?: boolean;
  /** Receives each stdout line; default: printed with the name prefix. */
  onStdoutLine?: (line: string) => void;
}

/** Restart policy. */
export interface Backoff {
  /** First delay after a crash. */
  initialMs: number;
  /** Upper bound of the delay. */
  maxMs: number;
  /** A child that ran this long is considered healthy again (delay resets). */
  resetAfterMs: number;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  /** Where prefixed lines go (default: stdout). */
  print?: (line: string) => void;
  /** Restart policy (default 500 ms doubling to 30 s, reset after 60 s up). */
  backoff?: Backoff;
  /** Clock, for tests. */
  now?: () => number;
}

/** What the supervisor knows of one child. */
export interface ChildStatus {
  name: string;
  pid: number | null;
  restarts: number;
  running: boolean;
  lastExitCode: number | null;
}

interface Slot {
  spec: ChildSpec;
  child: Deno.ChildProcess | null;
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  restarts: number;
  delayMs: number;
  startedAt: number;
  lastExitCode: number | null;
  timer: ReturnType<typeof setTimeout> | null;
  exited: Promise<void> | null;
}

const encoder = new TextEncoder();

/**
 * Calls `onLine` with each line of `stream` (without its newline; a last
 * unterminated line too) until the stream ends or fails.
 */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
  } catch {
    // the child went away mid-line
  } finally {
    if (buffered) onLine(buffered);
    reader.releaseLock();
  }
}

/** Starts, restarts and stops a set of child processes. */
export class Supervisor {
  #slots: Slot[];
  #print: (line: string) => void;
  #backoff: Backoff;
  #now: () => number;
  #stopping = false;

  /** Creates a supervisor for `specs`; nothing starts until {@link start}. */
  constructor(specs: ChildSpec[], options: SupervisorOptions = {}) {
    this.#print = options.print ?? ((line) => console.log(line));
    this.#backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 };
    this.#now = options.now ?? Date.now;
    this.#slots = specs.map((spec) => ({
      spec,
      child: null,
      writer: null,
      restarts: 0,
      delayMs: this.#backoff.initialMs,
      startedAt: 0,
      lastExitCode: null,
      timer: null,
      exited: null,
    }));
  }

  /** Starts every child. */
  start(): void {
    for (const slot of this.#slots) this.#spawn(slot);
  }

  /** Writes one line to the stdin of child `name`; false if it is not running. */
  async writeLine(name: string, line: string): Promise<boolean> {
    const slot = this.#slots.find((s) => s.spec.name === name);
    if (!slot?.writer) return false;
    try {
      await slot.writer.write(encoder.encode(line + "\n"));
      return true;
    } catch {
      return false;
    }
  }

  /** A snapshot of every child. */
  status(): ChildStatus[] {
    return this.#slots.map((s) => ({
      name: s.spec.name,
      pid: s.child?.pid ?? null,
      restarts: s.restarts,
      running: s.child !== null,
      lastExitCode: s.lastExitCode,
    }));
  }

  /**
   * Stops every child: `signal` first, SIGKILL for those still running after
   * `graceMs`. Resolves when all have exited.
   */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 5000): Promise<void> {
    this.#stopping = true;
    for (const slot of this.#slots) {
      if (slot.timer !== null) clearTimeout(slot.timer);
      slot.timer = null;
      try {
        slot.child?.kill(signal);
      } catch {
        // already gone
      }
    }
    const all = Promise.all(this.#slots.map((s) => s.exited ?? Promise.resolve()));
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      killTimer = setTimeout(() => {
        for (const slot of this.#slots) {
          try {
            slot.child?.kill("SIGKILL");
          } catch {
            // already gone
          }
        }
        resolve();
      }, graceMs);
    });
    await Promise.race([all, deadline]);
    await all;
    clearTimeout(killTimer);
  }

  #spawn(slot: Slot): void {
    const { spec } = slot;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(spec.command, {
        args: spec.args,
        ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
        ...(spec.env ? { env: { ...spec.env } } : {}),
        stdin: spec.stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      this.#print(`[${spec.name}] could not start: ${(e as Error).message}`);
      this.#scheduleRestart(slot);
      return;
    }
    slot.child = child;
    slot.startedAt = this.#now();
    slot.writer = spec.stdin ? child.stdin.getWriter() : null;
    const prefix = (line: string) => this.#print(`[${spec.name}] ${line}`);
    const out = pumpLines(child.stdout, spec.onStdoutLine ?? prefix);
    const err = pumpLines(child.stderr, prefix);
    slot.exited = (async () => {
      const status = await child.status;
      await Promise.all([out, err]);
      slot.child = null;
      try {
        slot.writer?.releaseLock();
      } catch {
        // nothing to release
      }
      slot.writer = null;
      slot.lastExitCode = status.code;
      if (this.#stopping) return;
      this.#print(
        `[${spec.name}] exited with code ${status.code}${
          status.signal ? ` (${status.signal})` : ""
        }`,
      );
      if (this.#now() - slot.startedAt >= this.#backoff.resetAfterMs) {
        slot.delayMs = this.#backoff.initialMs;
      }
      this.#scheduleRestart(slot);
    })();
  }

  #scheduleRestart(slot: Slot): void {
    if (this.#stopping) return;
    const delay = slot.delayMs;
    slot.delayMs = Math.min(slot.delayMs * 2, this.#backoff.maxMs);
    this.#print(`[${slot.spec.name}] restarting in ${delay} ms`);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      slot.restarts++;
      this.#spawn(slot);
    }, delay);
  }
}
