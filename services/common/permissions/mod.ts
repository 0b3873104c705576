/**
 * The permission manifest and what it is a function of: deployment layouts
 * (`layout.ts`), the program -> permissions table (`manifest.ts`) and the
 * rendering of a program's `deno run` flags (`flags.ts`), and the pinned
 * command line of joi-retrieve (`retrieve_argv.ts`).
 *
 * @module
 */
export * from "./layout.ts";
export * from "./manifest.ts";
export * from "./flags.ts";
export * from "./retrieve_argv.ts";
