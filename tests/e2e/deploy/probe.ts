/**
 * Runs {@link ./socket_probe.ts} inside a booted VM as a given user: the
 * kernel's view of who may connect to which socket, and what comes back.
 *
 * @module
 */
import type { Vm } from "../vm/vm.ts";
import type { ProbeAnswer, ProbeRequest } from "./socket_probe.ts";

/** Where the probe is installed in a VM. */
export const PROBE_PATH = "/usr/local/lib/joi-e2e/socket_probe.ts";

/** Copies the probe into `vm` (root-owned, world-readable). */
export async function installProbe(vm: Vm): Promise<void> {
  await vm.exec(["mkdir", "-p", "-m", "0755", "/usr/local/lib/joi-e2e"]);
  await vm.writeFile(
    PROBE_PATH,
    await Deno.readTextFile(new URL("./socket_probe.ts", import.meta.url)),
    { mode: 0o644, owner: "root:root" },
  );
}

/**
 * Sends `requests` as `user` (Deno's flags admit exactly those sockets; the
 * kernel decides the rest) and returns the answers in order.
 */
export async function probeAs(
  vm: Vm,
  user: string,
  requests: ProbeRequest[],
): Promise<ProbeAnswer[]> {
  const sockets = [...new Set(requests.map((r) => r.socket))];
  const dirs = [...new Set(sockets.map((s) => s.slice(0, s.lastIndexOf("/"))))];
  const r = await vm.exec([
    "runuser",
    "-u",
    user,
    "--",
    "env",
    `DENO_DIR=/tmp/joi-e2e-probe-${user}`,
    "DENO_NO_UPDATE_CHECK=1",
    "NO_COLOR=1",
    "deno",
    "run",
    "--no-prompt",
    "--quiet",
    `--allow-read=${[...dirs, PROBE_PATH].join(",")}`,
    `--allow-write=${dirs.join(",")}`,
    `--allow-net=${sockets.map((s) => `unix:${s}`).join(",")}`,
    PROBE_PATH,
  ], { input: JSON.stringify(requests), timeoutMs: 300_000 });
  return JSON.parse(r.stdout) as ProbeAnswer[];
}
