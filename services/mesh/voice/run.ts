/**
 * Runs one configured voice executable (whisper.cpp, ffmpeg, piper) with a
 * deadline: on timeout or abort the child is killed (SIGKILL) and the result
 * says so. The child gets an empty environment apart from a fixed PATH, no
 * stdin unless given, and its output is capped.
 *
 * @module
 */
import { readHead } from "../../common/read_head.ts";

/** Outcome of {@link runTool}. */
export interface RunResult {
  /** Exit code (null when killed). */
  code: number | null;
  /** True when the deadline killed it. */
  timedOut: boolean;
  /** stdout (capped), decoded as UTF-8. */
  stdout: string;
  /** stderr (capped), for the log's length only. */
  stderrBytes: number;
}

/** Options of {@link runTool}. */
export interface RunOptions {
  /** Absolute path of the executable. */
  bin: string;
  args: string[];
  /** Text written to stdin (piper reads the text there). */
  stdin?: string;
  /** Deadline (ms since epoch, by `Date.now`). */
  deadline: number;
  /** Largest stdout kept (default 64 KiB). */
  maxOutputBytes?: number;
}

const decoder = new TextDecoder();

/** Runs the tool; never throws for the child's behaviour (spawn errors do throw). */
export async function runTool(o: RunOptions): Promise<RunResult> {
  const remaining = o.deadline - Date.now();
  if (remaining <= 0) return { code: null, timedOut: true, stdout: "", stderrBytes: 0 };
  const child = new Deno.Command(o.bin, {
    args: o.args,
    stdin: o.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8" },
  }).spawn();
  const outReader = child.stdout.getReader();
  const errReader = child.stderr.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    // a grandchild may still hold the pipes open: stop reading them
    outReader.cancel().catch(() => {});
    errReader.cancel().catch(() => {});
  }, remaining);
  try {
    if (o.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const [out, err, status] = await Promise.all([
      readHead(outReader, o.maxOutputBytes ?? 64 * 1024),
      readHead(errReader, 4096),
      child.status,
    ]);
    return {
      code: timedOut ? null : status.code,
      timedOut,
      stdout: decoder.decode(out.bytes),
      stderrBytes: err.total,
    };
  } finally {
    clearTimeout(timer);
  }
}
