/**
 * What systemd says about a booted VM's units, for the booted test: the units
 * the deployment installed (their unit file under `/etc/systemd/system`), their
 * state, main process and its user, `systemd-analyze security`'s exposure
 * (online: asked of the running systemd), failed units, and waiting for a
 * service to come back after it was killed or its VM rebooted.
 *
 * @module
 */
import type { Vm } from "../vm/vm.ts";

/** Where the deployment's unit files go. */
export const UNIT_DIR = "/etc/systemd/system";

/** Properties of one unit. */
export interface UnitState {
  id: string;
  loadState: string;
  activeState: string;
  subState: string;
  fragmentPath: string;
  user: string;
  mainPid: number;
  /** How often systemd restarted it (`NRestarts`). */
  restarts: number;
}

const PROPS = "Id,LoadState,ActiveState,SubState,FragmentPath,User,MainPID,NRestarts";

/** `systemctl show` of `units`, parsed. */
export async function unitStates(vm: Vm, units: string[]): Promise<UnitState[]> {
  if (units.length === 0) return [];
  const r = await vm.exec(["systemctl", "show", `--property=${PROPS}`, "--", ...units]);
  return r.stdout.trim().split(/\n\s*\n/).map((block) => {
    const p = Object.fromEntries(
      block.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    ) as Record<string, string>;
    return {
      id: p.Id ?? "",
      loadState: p.LoadState ?? "",
      activeState: p.ActiveState ?? "",
      subState: p.SubState ?? "",
      fragmentPath: p.FragmentPath ?? "",
      user: p.User ?? "",
      mainPid: Number(p.MainPID ?? 0),
      restarts: Number(p.NRestarts ?? 0),
    };
  });
}

/** One unit's state. */
export async function unitState(vm: Vm, unit: string): Promise<UnitState> {
  const [s] = await unitStates(vm, [unit]);
  if (!s) throw new Error(`${vm.name}: systemctl show ${unit} said nothing`);
  return s;
}

/** Every loaded unit whose file the deployment installed (in {@link UNIT_DIR}). */
export async function deployedUnits(vm: Vm): Promise<UnitState[]> {
  const r = await vm.exec(["systemctl", "list-units", "--all", "--no-legend", "--plain"]);
  const names = r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => /\.(service|socket|timer|path)$/.test(n));
  const states = await unitStates(vm, names);
  // a masked unit's file is a link to /dev/null: not something the deployment runs
  return states.filter((s) =>
    s.loadState === "loaded" && s.fragmentPath.startsWith(`${UNIT_DIR}/`)
  );
}

/** Units in the `failed` state. */
export async function failedUnits(vm: Vm): Promise<string[]> {
  const r = await vm.exec([
    "systemctl",
    "list-units",
    "--failed",
    "--all",
    "--no-legend",
    "--plain",
  ]);
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter(Boolean);
}

/** `systemd-analyze security` of `unit`, online: its overall exposure. */
export async function exposure(vm: Vm, unit: string): Promise<number> {
  const r = await vm.exec(["systemd-analyze", "security", "--no-pager", unit], { check: false });
  if (/Unknown key|Unknown section|Failed to/i.test(r.stderr)) {
    throw new Error(`${vm.name}: systemd-analyze security ${unit}: ${r.stderr.trim()}`);
  }
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
  if (!m) {
    throw new Error(
      `${vm.name}: no exposure for ${unit} (exit ${r.code}):\n${r.stdout}${r.stderr}`,
    );
  }
  return Number(m[1]);
}

/** The user name a process runs as (`ps -o user=`), or "" when it is gone. */
export async function processUser(vm: Vm, pid: number): Promise<string> {
  const r = await vm.exec(["ps", "-o", "user=", "-p", String(pid)], { check: false });
  return r.stdout.trim();
}

/**
 * Waits until `unit` is active and running with a main process other than
 * `notPid` (after a kill, a restart or a reboot); returns its state.
 */
export async function waitRunning(
  vm: Vm,
  unit: string,
  o: { notPid?: number; timeoutMs?: number } = {},
): Promise<UnitState> {
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  let last: UnitState | null = null;
  while (Date.now() < deadline) {
    last = await unitState(vm, unit);
    const fresh = o.notPid === undefined || last.mainPid !== o.notPid;
    if (last.activeState === "active" && last.subState === "running" && last.mainPid > 0 && fresh) {
      return last;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `${vm.name}: ${unit} not running again (last: ${JSON.stringify(last)})\n${await vm.journal(
      30,
      unit,
    )}`,
  );
}
