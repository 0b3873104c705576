/**
 * The state file: one line naming the domain that currently reaches
 * ai-tools (`cat /opt/anklume/ai-access-current`). Written atomically:
 * a sibling temporary file, fsync, rename.
 *
 * @module
 */
import { bridgeName } from "./config.ts";

/** The temporary sibling used for the atomic write (the manifest grants exactly it). */
export function tempPathOf(stateFile: string): string {
  return `${stateFile}.tmp`;
}

/**
 * The current domain, or `null` when the file does not exist yet.
 * Throws if the content is not a single domain name.
 */
export async function readState(stateFile: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(stateFile);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`cannot read the state file ${stateFile}: ${(e as Error).message}`);
  }
  const domain = text.trim();
  try {
    bridgeName(domain);
  } catch {
    throw new Error(
      `state file ${stateFile} does not hold a domain name (${
        JSON.stringify(text.slice(0, 40))
      }): ` +
        `run ai-switch switch --domain <domain> to rewrite it`,
    );
  }
  return domain;
}

/** Replaces the state with `domain` atomically (0644: the domain is not secret). */
export async function writeState(stateFile: string, domain: string): Promise<void> {
  bridgeName(domain);
  const tmp = tempPathOf(stateFile);
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o644 });
  try {
    await file.write(new TextEncoder().encode(domain + "\n"));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, stateFile);
}

/** Puts back what {@link readState} returned before a failed switch (`null`: no file). */
export async function restoreState(stateFile: string, previous: string | null): Promise<void> {
  if (previous === null) {
    try {
      await Deno.remove(stateFile);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return;
  }
  await writeState(stateFile, previous);
}
