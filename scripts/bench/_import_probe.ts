/**
 * Imports one module (argument: a path relative to the working directory, a
 * bare npm name of the import map, or a `node:` module), runs a full garbage
 * collection and exits: `bench imports` reads V8's live-object statistics
 * printed by `--trace-gc-object-stats` (with `--expose-gc`).
 *
 * @module
 */
const specifier = Deno.args[0] ?? "";
if (specifier !== "") {
  const local = specifier.startsWith("services/") || specifier.startsWith("scripts/");
  await import(local ? new URL(specifier, `file://${Deno.cwd()}/`).href : specifier);
}
(globalThis as unknown as { gc: () => void }).gc();
