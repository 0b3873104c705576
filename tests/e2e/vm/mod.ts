/**
 * Booted VMs for end-to-end tests: Debian images with systemd as PID 1 in
 * namespaces, on one bridge (see `../../../../shared/design/booting-systemd.md`
 * and {@link ./boot.sh}).
 *
 * ```ts
 * const c = await Cluster.start({ hosts: [{ name: "joi", address: "10.99.0.2" }], prefix: 29 });
 * try {
 *   await c.vms.joi.exec(["systemctl", "is-system-running"]);
 * } finally {
 *   await c.destroy();
 * }
 * ```
 *
 * @module
 */
export { Cluster, type ClusterHost, type ClusterOptions, RUN_DIR } from "./cluster.ts";
export { BASE_PACKAGES, ensureImage, IMAGE_DIR, OFFERED_PACKAGES, SUITE } from "./image.ts";
export { type BridgeHost, buildBridge, deleteNamespaces } from "./network.ts";
export { type ShellResult, ShellSession } from "./shell.ts";
export { type ExecOptions, type ExecResult, removeCgroup, removeTree, Vm, VM_PATH } from "./vm.ts";
