/**
 * Copying a tree of code for another machine. Code (`services/`, `scripts/`,
 * ...) is copied file by file: regular files keep only their executable bit
 * (0755 or 0644). `node_modules` must keep its symlinks: each package's own
 * dependencies are its siblings inside `.deno/<name>@<version>/node_modules/`
 * (linkify-it finds uc.micro there), which a copy that materialises the
 * top-level links loses. Deno grants `symlink()` only with unscoped flags, so
 * that copy is `cp -R -P` (links copied as links, owned by whoever runs it).
 *
 * @module
 */

/** Copies a tree, materialising symlinks; dangling links are skipped. Returns the file count. */
export async function copyTree(from: string, to: string): Promise<number> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.copyFile(from, to);
    await Deno.chmod(to, info.mode! & 0o111 ? 0o755 : 0o644);
    return 1;
  }
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  let n = 0;
  for await (const e of Deno.readDir(from)) {
    try {
      n += await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && e.isSymlink) continue; // dangling link
      throw err;
    }
  }
  return n;
}

/** The copy tool (the manifests of install and bundle admit exactly it). */
export const CP_BIN = "/usr/bin/cp";

/**
 * Copies `from` to `to` (which must not exist) keeping symlinks as symlinks:
 * `cp -R -P --no-preserve=all`. For `node_modules`.
 */
export async function copyTreeWithLinks(from: string, to: string, cp = CP_BIN): Promise<void> {
  const out = await new Deno.Command(cp, {
    args: ["-R", "-P", "--no-preserve=all", "--", from, to],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${cp} -R -P ${from} ${to} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}
