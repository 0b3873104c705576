/**
 * The one rendering of the command line that runs `joi-retrieve`: the pinned
 * argument vector after the entry binary (from the permission manifest's
 * `retrieve` entry) and the sudoers pattern that admits exactly that vector.
 * The query never travels in argv: it is the request line on stdin.
 *
 * The entry binary is a root-owned copy of Deno (`/usr/local/bin/joi-retrieve`:
 * no interpreter wrapper, `deno compile` is unavailable offline). In
 * production each retrieve unit's `ExecStart=` is that binary with this argv;
 * in the local run sudo pins the whole command line, every Deno flag included,
 * so anything else (`eval`, `-A`, another script) is refused before it runs.
 * The units, provision (sudoers) and the broker all go through this module.
 *
 * @module
 */
import type { Layout } from "./layout.ts";
import { type ProgramSpec, programSpec } from "./manifest.ts";
import { permissionFlags } from "./flags.ts";

/** Deno flags that keep the retrieve run self-contained (no config, lock, remote or npm). */
export const RETRIEVE_DENO_FLAGS = [
  "--no-prompt",
  "--no-config",
  "--no-lock",
  "--no-remote",
  "--no-npm",
] as const;

const absolute = (p: string, cwd: string): string => {
  if (p.startsWith("/")) return p.replace(/\/+$/, "") || "/";
  const parts = `${cwd}/${p}`.split("/");
  const out: string[] = [];
  for (const part of parts) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
};

/** Characters a pinned path may not hold (sudoers syntax, whitespace, regex-unfriendly). */
const UNSAFE = /[\s,:\\"'#!()*?[\]{}|^$+]/;

function checkPath(p: string, what: string): string {
  if (UNSAFE.test(p.replace(/^--[a-z-]+=/, ""))) {
    throw new Error(
      `retrieve argv: ${what} ${JSON.stringify(p)} holds a character sudoers cannot pin ` +
        `(whitespace , : \\ " ' # ! ( ) * ? [ ] { } | ^ $ +); move it to a plain path`,
    );
  }
  return p;
}

/** The retrieve spec with every path made absolute against `cwd`. */
export function retrieveSpec(layout: Layout, cwd: string): ProgramSpec {
  const spec = programSpec("retrieve", layout);
  const abs = (p: string) => absolute(p, cwd);
  return {
    ...spec,
    entry: abs(`${layout.codeDir}/${spec.entry}`),
    permissions: {
      ...spec.permissions,
      read: spec.permissions.read.map(abs),
      write: spec.permissions.write.map(abs),
    },
    args: spec.args.map((a) => {
      const [, flag, value = ""] = a.match(/^(--[a-z-]+=)(.*)$/) ?? [];
      return flag && !value.startsWith("/") && value !== "" ? `${flag}${abs(value)}` : a;
    }),
  };
}

/**
 * The fixed arguments after the entry point binary (the whole command line:
 * the request comes on stdin): `run <flags> [--v8-flags=...] <--allow-*> <entry> <args>`.
 */
export function retrieveFixedArgv(spec: ProgramSpec): string[] {
  const p = spec.permissions;
  if (p.write.length || p.net.length || p.run.length || p.env.length) {
    throw new Error(
      "permission manifest: retrieve must have read (and sys=uid) only; " +
        "remove write/net/run/env from its entry",
    );
  }
  const argv = [
    "run",
    ...RETRIEVE_DENO_FLAGS,
    ...(spec.v8Flags.length ? [`--v8-flags=${spec.v8Flags.join(",")}`] : []),
    ...permissionFlags(p),
    spec.entry,
    ...spec.args,
  ];
  for (const a of argv) checkPath(a, "argument");
  if (!spec.entry.startsWith("/")) throw new Error("retrieve argv: entry must be absolute");
  return argv;
}

/** Escapes a literal for a POSIX extended regex as sudoers reads it. */
function reLiteral(s: string): string {
  return s.replace(/[.[\]()*+?{}|^$\\]/g, (c) => `\\${c}`);
}

/** The sudoers argument pattern admitting exactly `fixed` and nothing more: `^run ... --root=...$`. */
export function sudoersArgsPattern(fixed: string[]): string {
  return `^${fixed.map(reLiteral).join(" ")}$`;
}
