/**
 * A "VM" of the booted end-to-end test: a copy of the cached Debian image with
 * systemd booted as PID 1 in its own PID, mount, UTS and IPC namespaces, inside
 * a named network namespace on the bridge ({@link ./boot.sh} says exactly what
 * it sees of the host). Commands run inside with `nsenter` into all of its
 * namespaces, as root with a clean environment, or as a given user.
 *
 * `systemctl reboot` inside ends PID 1 with SIGHUP and `systemctl poweroff`
 * with SIGINT; {@link Vm.reboot} boots the same root file system again (the
 * network namespace, like a VM's NIC, stays), {@link Vm.poweroff} stops it.
 * {@link Vm.destroy} leaves nothing: the namespace's init is killed if it is
 * still up (the kernel takes every process of the VM with it, its mounts go
 * with its mount namespace), its cgroup trees are removed, and so is its root
 * file system.
 *
 * @module
 */
import { Child, sh } from "../process.ts";
import { ShellSession } from "./shell.ts";

const BOOT_SH = new URL("./boot.sh", import.meta.url).pathname;

/** The environment of every command run inside a VM (a root login's). */
export const VM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** How a {@link Vm} is made. */
export interface VmOptions {
  /** Host name inside (`joi`, `mesh`, `openhab`). */
  name: string;
  /** The image it runs (see {@link ./image.ts}), shared read-only by every VM. */
  image: string;
  /**
   * Absolute path of the VM's disk: `upper/` holds what it wrote (overlaid on
   * the image), `work/` is overlayfs's, `root/` the mount point (created by
   * {@link Vm.create}; the root file system is visible inside the VM only).
   */
  disk: string;
  /** Named network namespace it boots in. */
  netns: string;
  /** Its cgroup name, the same in every hierarchy (unique per run and VM). */
  cgroup: string;
}

/** Options of {@link Vm.exec}. */
export interface ExecOptions {
  /** Run as this user (via `runuser`), else root. */
  user?: string;
  /** Working directory inside (default `/`). */
  cwd?: string;
  /** Text for stdin. */
  input?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Throw unless the exit status is 0 (default true). */
  check?: boolean;
  /** Kill it after this long (default 120 s). */
  timeoutMs?: number;
}

/** The outcome of a command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** One booted Debian with systemd as init. */
export class Vm {
  readonly name: string;
  readonly disk: string;
  readonly netns: string;
  readonly cgroup: string;
  readonly image: string;
  /** Host pid of the VM's PID 1 while it runs. */
  pid: number | null = null;
  /** How often it was booted. */
  boots = 0;
  #init: Child | null = null;
  #sessions = new Set<ShellSession>();
  /** Console output of every boot (systemd's own messages). */
  readonly console: string[] = [];

  private constructor(o: VmOptions) {
    this.name = o.name;
    this.disk = o.disk;
    this.netns = o.netns;
    this.cgroup = o.cgroup;
    this.image = o.image;
    if (!/^[A-Za-z0-9_.-]+$/.test(o.cgroup)) throw new Error(`vm: bad cgroup name ${o.cgroup}`);
  }

  /** Makes its empty disk, with its own host name and machine id over the image's. */
  static async create(o: VmOptions): Promise<Vm> {
    const vm = new Vm(o);
    for (const d of ["upper/etc", "work", "root"]) {
      await Deno.mkdir(`${o.disk}/${d}`, { recursive: true, mode: 0o755 });
    }
    const etc = `${o.disk}/upper/etc`;
    await Deno.writeTextFile(`${etc}/hostname`, `${o.name}\n`, { mode: 0o644 });
    await Deno.writeTextFile(
      `${etc}/hosts`,
      `127.0.0.1\tlocalhost\n127.0.1.1\t${o.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
      { mode: 0o644 },
    );
    const id = crypto.randomUUID().replaceAll("-", "");
    await Deno.writeTextFile(`${etc}/machine-id`, `${id}\n`, { mode: 0o444 });
    return vm;
  }

  /** Whether its init is running. */
  get running(): boolean {
    return this.#init !== null && !this.#init.exited;
  }

  /**
   * Boots it and waits until systemd has finished starting up; resolves with
   * `systemctl is-system-running` (`running`, or `degraded` when a unit failed).
   */
  async boot(timeoutMs = 90_000): Promise<string> {
    if (this.running) throw new Error(`vm ${this.name}: already running`);
    this.boots++;
    const init = new Child(`${this.name} VM (boot ${this.boots})`, "nsenter", [
      `--net=/run/netns/${this.netns}`,
      "--",
      "unshare",
      "--fork",
      "--pid",
      "--mount",
      "--uts",
      "--ipc",
      "--propagation",
      "private",
      "bash",
      BOOT_SH,
      this.image,
      this.disk,
      this.cgroup,
    ]);
    this.#init = init;
    const deadline = Date.now() + timeoutMs;
    // unshare --fork's child becomes bash (mounts), then execs systemd
    while (true) {
      if (init.exited) throw new Error(`vm ${this.name}: boot failed:\n${init.tail()}`);
      const pid = await initPid(init.process.pid);
      if (pid !== null && await procFile(`${pid}/comm`) === "systemd\n") {
        this.pid = pid;
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(`vm ${this.name}: systemd did not start:\n${init.tail()}`);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    while (true) {
      const r = await this.exec(["systemctl", "is-system-running", "--wait"], {
        check: false,
        timeoutMs: Math.max(1_000, deadline - Date.now()),
      });
      const state = r.stdout.trim();
      if (["running", "degraded"].includes(state)) return state;
      if (init.exited) throw new Error(`vm ${this.name}: init exited:\n${init.tail()}`);
      if (Date.now() > deadline) {
        throw new Error(`vm ${this.name}: not up after ${timeoutMs} ms (state ${state})`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** The arguments that run `args` inside, as root or `o.user`, in `cwd` (default `/`). */
  #enter(args: string[], o: ExecOptions = {}): string[] {
    if (this.pid === null) throw new Error(`vm ${this.name}: not running`);
    const env = Object.entries({
      PATH: VM_PATH,
      HOME: "/root",
      LANG: "C.UTF-8",
      TERM: "dumb",
      ...o.env,
    }).map(([k, v]) => `${k}=${v}`);
    const as = o.user ? ["runuser", "-u", o.user, "--"] : [];
    // nsenter's --wd would name a host path: change directory inside instead
    const cd = o.cwd ? ["sh", "-c", 'cd "$0" && exec "$@"', o.cwd] : [];
    return ["-t", String(this.pid), "-a", "--", "env", "-i", ...env, ...cd, ...as, ...args];
  }

  /** Runs a command inside the VM. */
  async exec(args: string[], o: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = o.timeoutMs ?? 120_000;
    const child = new Deno.Command("nsenter", {
      args: this.#enter(args, o),
      stdin: o.input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).spawn();
    if (o.input !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.input));
      await w.close();
    }
    let out: Deno.CommandOutput;
    try {
      out = await child.output();
    } catch (e) {
      throw new Error(`vm ${this.name}: ${args.join(" ")}: ${(e as Error).message}`);
    }
    const r = {
      code: out.signal ? 128 : out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if (out.signal === "SIGTERM" || out.signal === "SIGKILL") {
      r.stderr += `\n(killed by ${out.signal}: timed out after ${timeoutMs} ms?)`;
    }
    if ((o.check ?? true) && r.code !== 0) {
      throw new Error(
        `vm ${this.name}: ${args.join(" ")} exited ${r.code}:\n${r.stdout}${r.stderr}`.trim(),
      );
    }
    return r;
  }

  /** Reads a file inside the VM (as root). */
  async readFile(path: string): Promise<string> {
    return (await this.exec(["cat", "--", path])).stdout;
  }

  /** Writes a file inside the VM (as root), with `mode` and `owner` (`user:group`) when given. */
  async writeFile(
    path: string,
    text: string,
    o: { mode?: number; owner?: string } = {},
  ): Promise<void> {
    const script = 'umask 077; cat > "$1"' +
      (o.mode !== undefined ? ' && chmod "$2" "$1"' : "") +
      (o.owner ? ' && chown "$3" "$1"' : "");
    await this.exec(
      ["sh", "-c", script, "sh", path, (o.mode ?? 0o600).toString(8), o.owner ?? ""],
      {
        input: text,
      },
    );
  }

  /**
   * Copies a host directory's contents into the VM (a tar stream, as `scp -r`
   * or `rsync -a` would: modes, links and root's ownership kept). A directory
   * that exists already keeps its own owner and mode.
   */
  async copyIn(hostDir: string, vmDir: string): Promise<void> {
    if (this.pid === null) throw new Error(`vm ${this.name}: not running`);
    await sh("bash", [
      "-c",
      'set -o pipefail; tar -C "$1" -cf - . | ' +
      'nsenter -t "$3" -a -- sh -c \'mkdir -p "$0" && tar -C "$0" --no-overwrite-dir -xpf -\' "$2"',
      "bash",
      hostDir,
      vmDir,
      String(this.pid),
    ]);
  }

  /**
   * A root shell session inside, starting in `cwd`. A reboot or poweroff ends
   * it first, as it ends a login: a shell entered from outside the VM is no
   * child of its init, and systemd's last stage would wait on it.
   */
  shell(cwd = "/root"): ShellSession {
    const s = new ShellSession(
      `${this.name} VM`,
      "nsenter",
      this.#enter(["bash", "--noprofile", "--norc"], { cwd }),
    );
    this.#sessions.add(s);
    return s;
  }

  /**
   * `systemctl reboot`, then waits for the new boot to finish starting up. A
   * shutdown that hangs (a unit that ignores SIGTERM holds it for its whole
   * stop timeout) is cut after `stopTimeoutMs`; the VM is booted again all
   * the same, and the error names the jobs that were still running.
   */
  async reboot(timeoutMs = 90_000, stopTimeoutMs = 120_000): Promise<string> {
    const stop = await this.#stop("reboot", stopTimeoutMs);
    const state = await this.boot(timeoutMs);
    if (stop.how !== "SIGHUP") {
      // the journal is on the VM's disk: the last boot's end says what held it
      const last = await this.exec(
        ["journalctl", "-b", "-1", "-n", "25", "--no-pager", "-o", "short-monotonic"],
        { check: false },
      );
      throw new Error(
        `vm ${this.name}: reboot ended the VM with ${stop.how}, not SIGHUP` +
          (stop.hung ? ` (shutdown hung ${stopTimeoutMs} ms; jobs: ${stop.hung})` : "") +
          `\nthe end of the previous boot's journal:\n${last.stdout}`,
      );
    }
    return state;
  }

  /** `systemctl poweroff`, and waits until the VM is gone. */
  async poweroff(stopTimeoutMs = 120_000): Promise<void> {
    const stop = await this.#stop("poweroff", stopTimeoutMs);
    if (stop.how !== "SIGINT") {
      throw new Error(
        `vm ${this.name}: poweroff ended the VM with ${stop.how}, not SIGINT` +
          (stop.hung ? ` (shutdown hung; still running:\n${stop.hung})` : ""),
      );
    }
  }

  /**
   * Asks systemd to reboot or power off; resolves with how init ended and,
   * when it had to be killed, what systemd was still doing.
   */
  async #stop(
    verb: "reboot" | "poweroff",
    timeoutMs: number,
  ): Promise<{ how: string; hung?: string }> {
    const init = this.#init;
    if (!init || init.exited) throw new Error(`vm ${this.name}: not running`);
    await Promise.all([...this.#sessions].map((s) => s.close()));
    this.#sessions.clear();
    // the command itself may be killed with the VM: its status says nothing
    await this.exec(["systemctl", verb], { check: false, timeoutMs: 30_000 });
    let hung: string | undefined;
    const timer = setTimeout(async () => {
      const jobs = await this.exec(["systemctl", "list-jobs", "--no-pager"], {
        check: false,
        timeoutMs: 5_000,
      }).catch((e) => ({ stdout: String(e) }));
      hung = jobs.stdout.trim() || "(no job list)";
      await this.#kill();
    }, timeoutMs);
    const status = await init.process.status;
    clearTimeout(timer);
    this.console.push(init.output.join(""));
    this.#init = null;
    this.pid = null;
    await this.#removeCgroups();
    const how = status.signal ?? `exit ${status.code}`;
    return hung === undefined ? { how } : { how, hung };
  }

  async #kill(): Promise<void> {
    // SIGKILL to a PID namespace's init takes every process of the VM with it
    const pid = this.pid ?? (this.#init ? await initPid(this.#init.process.pid) : null);
    if (pid !== null) await sh("kill", ["-KILL", String(pid)], false);
    try {
      this.#init?.process.kill("SIGKILL");
    } catch { /* gone */ }
  }

  async #removeCgroups(): Promise<string[]> {
    return await removeCgroup(this.cgroup);
  }

  /** The last lines of its journal (for failure messages). */
  async journal(lines = 80, unit?: string): Promise<string> {
    if (!this.running) return "(not running)";
    const r = await this.exec(
      [
        "journalctl",
        "--no-pager",
        "-o",
        "short-monotonic",
        "-n",
        String(lines),
        ...(
          unit ? ["-u", unit] : []
        ),
      ],
      { check: false, timeoutMs: 15_000 },
    );
    return r.stdout + r.stderr;
  }

  /**
   * Stops it (poweroff, or SIGKILL to its init when that fails or takes too
   * long), removes its cgroups and (unless `keep`) its root file system;
   * returns what could not be undone.
   */
  async destroy(keep = false): Promise<string[]> {
    const problems: string[] = [];
    if (this.running) {
      try {
        await this.poweroff();
      } catch (e) {
        problems.push(`vm ${this.name}: ${(e as Error).message}`);
        await this.#kill();
        await this.#init?.process.status;
        this.#init = null;
        this.pid = null;
      }
    }
    problems.push(...await this.#removeCgroups());
    if (!keep) problems.push(...await removeTree(this.disk));
    return problems;
  }
}

/** The host pid of the namespace's init: the one child of `unshare --fork` (pid `unshare`). */
async function initPid(unshare: number): Promise<number | null> {
  const pid = Number(
    (await procFile(`${unshare}/task/${unshare}/children`)).trim().split(/\s+/)[0],
  );
  return pid > 0 ? pid : null;
}

/** A file under /proc ("" when it cannot be read): Deno's own reads there need --allow-all. */
async function procFile(path: string): Promise<string> {
  return (await sh("sh", ["-c", 'cat "/proc/$1" 2>/dev/null; true', "sh", path], false)).stdout;
}

/**
 * Removes cgroup `name` (and everything below it) from every hierarchy under
 * /sys/fs/cgroup; returns what could not be removed.
 */
export async function removeCgroup(name: string): Promise<string[]> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) return [`bad cgroup name ${name}`];
  // the last processes of a killed VM may take a moment to leave their cgroups
  for (let attempt = 0;; attempt++) {
    const r = await sh("sh", [
      "-c",
      'for h in /sys/fs/cgroup/*; do [ -d "$h/$1" ] && ' +
      'find "$h/$1" -depth -type d -exec rmdir {} + 2>/dev/null; done; ' +
      'ls -d /sys/fs/cgroup/*/"$1" 2>/dev/null; true',
      "sh",
      name,
    ], false);
    const left = r.stdout.trim();
    if (!left) return [];
    if (attempt >= 50) return [`cgroups left: ${left.split("\n").join(", ")}`];
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * Removes a directory tree that may hold immutable files (the README has the
 * operator `chattr +i` some); returns what could not be removed.
 */
export async function removeTree(path: string): Promise<string[]> {
  try {
    await Deno.remove(path, { recursive: true });
    return [];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
  }
  await sh("chattr", ["-R", "-f", "-i", path], false);
  try {
    await Deno.remove(path, { recursive: true });
    return [];
  } catch (e) {
    return [`remove ${path}: ${(e as Error).message}`];
  }
}
