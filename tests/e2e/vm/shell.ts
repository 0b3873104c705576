/**
 * An operator's shell session: one `bash` process that runs command lines one
 * after the other, the way someone types them, so `cd` and `export` carry over
 * from one line to the next. Each command runs with stdin from `/dev/null`
 * (nothing can wait for a keyboard) and stderr merged into stdout; the session
 * reports its exit status and output. A transcript of everything is kept for
 * failure messages.
 *
 * @module
 */

/** The outcome of one command. */
export interface ShellResult {
  /** Exit status of the command. */
  code: number;
  /** What it printed (stdout and stderr, interleaved). */
  output: string;
}

const encoder = new TextEncoder();

/** A running `bash` fed one command at a time. */
export class ShellSession {
  /** Name used in messages (e.g. `joi VM`). */
  readonly name: string;
  /** Every command and its output, in order. */
  readonly transcript: string[] = [];
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buf = "";
  #waiting: (() => void) | null = null;
  #closed = false;
  #seq = 0;

  /**
   * Starts `cmd args` (which must end in a `bash` reading commands from
   * stdin, e.g. `nsenter -t PID -a -- env -i ... bash --noprofile --norc`).
   */
  constructor(name: string, cmd: string, args: string[], o: { cwd?: string } = {}) {
    this.name = name;
    this.#child = new Deno.Command(cmd, {
      args,
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#read(this.#child.stdout);
    this.#read(this.#child.stderr);
    this.#child.status.then(() => {
      this.#closed = true;
      this.#waiting?.();
    });
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) {
        this.#buf += dec.decode(chunk, { stream: true });
        this.#waiting?.();
      }
    } catch { /* the shell went away */ }
  }

  /**
   * Runs `command` (one or more lines of shell) and resolves with its exit
   * status and output; rejects when the shell dies or `timeoutMs` passes.
   */
  async run(command: string, timeoutMs = 300_000): Promise<ShellResult> {
    if (this.#closed) throw new Error(`${this.name}: the shell has exited`);
    const sentinel = `__joi_e2e_done_${++this.#seq}_${crypto.randomUUID().slice(0, 8)}__`;
    this.#buf = "";
    // the braces keep `cd`/`export` in this shell; the status line is printed
    // on a line of its own even when the command's output lacks a final newline
    await this.#writer.write(
      encoder.encode(`{\n${command}\n} </dev/null 2>&1; printf '\\n${sentinel} %d\\n' $?\n`),
    );
    const deadline = Date.now() + timeoutMs;
    const pattern = new RegExp(`\\n${sentinel} (\\d+)\\n`);
    while (true) {
      const m = pattern.exec(this.#buf);
      if (m) {
        const output = this.#buf.slice(0, m.index);
        this.#buf = this.#buf.slice(m.index + m[0].length);
        this.transcript.push(`$ ${command}\n${output}`);
        return { code: Number(m[1]), output };
      }
      if (this.#closed) {
        this.transcript.push(`$ ${command}\n${this.#buf}\n(the shell exited)`);
        throw new Error(`${this.name}: the shell exited while running: ${command}\n${this.#buf}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.transcript.push(`$ ${command}\n${this.#buf}\n(timed out)`);
        throw new Error(
          `${this.name}: no end of "${command}" after ${timeoutMs} ms; output so far:\n${this.#buf}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1_000));
        this.#waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiting = null;
    }
  }

  /** The last `n` lines of the transcript. */
  tail(n = 60): string {
    return this.transcript.join("\n").split("\n").slice(-n).join("\n");
  }

  /** Ends the shell (closing stdin, then SIGKILL if it lingers). */
  async close(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* closed */ }
    const killer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await this.#child.status;
    clearTimeout(killer);
  }
}
