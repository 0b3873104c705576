/**
 * Child processes for the end-to-end tests: {@link sh} runs a command to its
 * end, {@link Child} keeps a long-running one with its output (for failure
 * messages) and JSON lines on stdout, {@link waitUntil} polls a condition
 * while watching children for an early exit.
 *
 * @module
 */

const decoder = new TextDecoder();

/** Runs a command; throws with its stderr unless `check` is false. */
export async function sh(
  cmd: string,
  args: string[],
  check = true,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const r = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (check && out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${r.stderr.trim()}`);
  }
  return r;
}

/** How a {@link Child} is started. */
export interface ChildOptions {
  /** Working directory. */
  cwd?: string;
  /** Environment variables. */
  env?: Record<string, string>;
  /** Start from an empty environment. */
  clearEnv?: boolean;
  /** Pipe stdin (for {@link Child.send}). */
  stdin?: boolean;
  /** Parse stdout as JSON lines into {@link Child.lines}. */
  lines?: boolean;
}

/** A child process with its output kept for failure messages. */
export class Child {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  /** stderr (and stdout when not consumed as lines), as received. */
  readonly output: string[] = [];
  /** JSON lines received on stdout (when `lines` was asked for). */
  readonly lines: Record<string, unknown>[] = [];
  exited = false;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #watchers = new Set<() => void>();

  constructor(name: string, cmd: string, args: string[], o: ChildOptions = {}) {
    this.name = name;
    this.process = new Deno.Command(cmd, {
      args,
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      ...(o.env !== undefined ? { env: o.env } : {}),
      ...(o.clearEnv !== undefined ? { clearEnv: o.clearEnv } : {}),
      stdin: o.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (o.stdin) this.#writer = this.process.stdin.getWriter();
    this.#drain(this.process.stderr, false);
    this.#drain(this.process.stdout, o.lines ?? false);
    this.process.status.then(() => {
      this.exited = true;
      this.#notify();
    });
  }

  async #drain(stream: ReadableStream<Uint8Array>, lines: boolean): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of stream) {
        const text = dec.decode(chunk, { stream: true });
        if (!lines) {
          this.output.push(text);
          continue;
        }
        buf += text;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            this.lines.push(JSON.parse(line));
          } catch {
            this.output.push(line + "\n");
          }
          this.#notify();
        }
      }
    } catch { /* the process went away */ }
  }

  #notify(): void {
    for (const w of this.#watchers) w();
  }

  /** Writes one JSON line to stdin. */
  async send(value: unknown): Promise<void> {
    if (!this.#writer) throw new Error(`${this.name}: stdin is not piped`);
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
  }

  /** Waits (bounded) for a stdout line matching `pred`; fails naming `what`. */
  waitLine(
    what: string,
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 30_000,
  ): Promise<Record<string, unknown>> {
    const found = () => this.lines.find(pred);
    return new Promise((resolve, reject) => {
      const check = () => {
        const l = found();
        if (l) {
          done();
          resolve(l);
        } else if (this.exited) {
          done();
          reject(new Error(`${this.name} exited before ${what}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`gave up waiting for ${what} from ${this.name}:\n${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#watchers.delete(check);
      };
      this.#watchers.add(check);
      check();
    });
  }

  /** The last lines of its output, for failure messages. */
  tail(n = 40): string {
    return this.output.join("").split("\n").slice(-n).join("\n");
  }

  /** Sends `signal` (ignored when it already exited), then waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      await this.#writer?.close();
    } catch { /* closed */ }
    if (!this.exited) {
      try {
        this.process.kill(signal);
      } catch { /* gone */ }
    }
    const killer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await this.process.status;
    clearTimeout(killer);
  }
}

/**
 * Polls `cond` every 50 ms for at most `limitMs`; fails early when a child of
 * `watch` exits. The error names `what` and shows the children's output.
 */
export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  limitMs = 30_000,
  watch: Child[] = [],
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (true) {
    if (await cond()) return;
    const exited = watch.filter((c) => c.exited);
    if (exited.length > 0) {
      // give the others a moment to report too: several can fail for one cause
      await new Promise((r) => setTimeout(r, 1_000));
      throw new Error(
        watch.filter((c) => c.exited).map((c) =>
          `${c.name} exited while waiting for ${what}:\n${c.tail()}`
        ).join("\n"),
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `gave up after ${limitMs} ms waiting for ${what}\n` +
          watch.map((c) => `--- ${c.name}:\n${c.tail()}`).join("\n"),
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** JSON-lines events of a log file named `event` (empty when the file does not exist yet). */
export function logEvents(path: string, event: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l)).filter((e) =>
    e.event === event || e.msg === event || e.message === event
  );
}
