/**
 * The systemd units of a production deployment, rendered from the permission
 * manifest: the unit format (`ini.ts`), the sandbox (`hardening.ts`), the
 * `ExecStart=` lines (`exec.ts`), the per-channel retrieve units
 * (`retrieve.ts`), the mesh VM's memory caps (`memory.ts`), the addresses they are built from (`addresses.ts`) and the
 * whole set (`render.ts`).
 *
 * @module
 */
export * from "./ini.ts";
export * from "./hardening.ts";
export * from "./exec.ts";
export * from "./retrieve.ts";
export * from "./memory.ts";
export * from "./addresses.ts";
export * from "./render.ts";
