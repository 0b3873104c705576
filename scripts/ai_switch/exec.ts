/**
 * Running the external binaries (nft, nvidia-smi, systemctl, incus, kill) by
 * absolute path, with a clean environment, and collecting their output.
 *
 * @module
 */

/** What a finished command returned. */
export interface CommandResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
}

/** Runs `bin args` (optionally feeding `stdin`) and returns its result. */
export type Runner = (bin: string, args: string[], stdin?: string) => Promise<CommandResult>;

/** The binaries ai-switch runs, by absolute path. */
export interface Bins {
  /** nftables (`/usr/sbin/nft`). */
  nft: string;
  /** NVIDIA's management tool (`/usr/bin/nvidia-smi`). */
  nvidiaSmi: string;
  /** systemd's control tool (`/usr/bin/systemctl`). */
  systemctl: string;
  /** Incus client (`/usr/bin/incus`). */
  incus: string;
  /** procps kill (`/usr/bin/kill`), for GPU compute processes. */
  kill: string;
}

/** Production locations of {@link Bins}. */
export const DEFAULT_BINS: Bins = {
  nft: "/usr/sbin/nft",
  nvidiaSmi: "/usr/bin/nvidia-smi",
  systemctl: "/usr/bin/systemctl",
  incus: "/usr/bin/incus",
  kill: "/usr/bin/kill",
};

/** The only environment children get: no inherited variables (LD_PRELOAD, ...). */
const CHILD_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };

const decoder = new TextDecoder();

/** The real runner: `Deno.Command` with a cleared environment. */
export const runCommand: Runner = async (bin, args, stdin) => {
  if (!bin.startsWith("/")) {
    throw new Error(`refusing to run ${JSON.stringify(bin)}: binaries are run by absolute path`);
  }
  const child = new Deno.Command(bin, {
    args,
    clearEnv: true,
    env: CHILD_ENV,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
    } catch {
      // the child exited early; its status and stderr say why
    }
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
};

/** The first non-empty line of a command's stderr (or stdout), for error messages. */
export function firstLine(r: CommandResult): string {
  const text = (r.stderr.trim() || r.stdout.trim()).split("\n")[0] ?? "";
  return text.length > 300 ? text.slice(0, 300) + "..." : text;
}
