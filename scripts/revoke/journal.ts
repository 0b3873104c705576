/**
 * Replacing several policy files so that a crash never leaves half of them:
 * every new file is written and fsynced in a staging folder beside them, the
 * whole set is validated there, then an intent file (the commit point) is
 * written, each file is renamed into place, and the intent is removed.
 *
 * On the next run {@link recover} finishes the job: a staging folder without
 * an intent is discarded (nothing was replaced: roll back); one with an
 * intent has its remaining files renamed into place (roll forward). Every
 * file the commit replaces is first copied to a timestamped backup folder.
 *
 * @module
 */
import { writeNewFile } from "../common/root_fs.ts";

/** The staging folder, inside the config folder (same filesystem: rename is atomic). */
export const STAGING_DIR = ".revoke-staging";
/** The intent file inside the staging folder: present = committed. */
export const INTENT_FILE = "INTENT.json";
/** Where backups go, inside the config folder. */
export const BACKUP_DIR = "backup";

/** The commit record. */
export interface Intent {
  /** Format version. */
  version: 1;
  /** The recipient being revoked (for messages). */
  recipient: string;
  /** The file names to rename from the staging folder into the config folder. */
  files: string[];
  /** The backup folder of the originals. */
  backupDir: string;
  /** When the commit started (ISO 8601). */
  createdAt: string;
}

/** A test barrier called at each step (never set in production). */
export type StepHook = (step: string) => void | Promise<void>;

function fsyncDir(dir: string): void {
  const f = Deno.openSync(dir, { read: true });
  try {
    f.syncSync();
  } finally {
    f.close();
  }
}

/**
 * Writes `text` to `path` (new file) with the owner and mode of `like`, and
 * fsyncs it; owner and mode are set on the descriptor (root_fs's rule).
 */
function writeSynced(path: string, text: string, like?: Deno.FileInfo): void {
  writeNewFile(path, new TextEncoder().encode(text), {
    uid: like?.uid ?? null,
    gid: like?.gid ?? null,
    mode: like ? (like.mode ?? 0o644) & 0o7777 : 0o644,
  });
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** A timestamp usable in a file name: `2026-11-22T04-30-00-123Z`. */
export function stamp(now: Date): string {
  return now.toISOString().replace(/[:.]/g, "-");
}

/**
 * Writes the staging folder: every file of `configDir` that a policy load
 * reads (`allFiles`), with `changes` applied. Returns the staging path; the
 * caller validates it before {@link commit}.
 */
export function stage(
  configDir: string,
  allFiles: readonly string[],
  changes: Record<string, string>,
): string {
  const dir = `${configDir}/${STAGING_DIR}`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  for (const name of allFiles) {
    const like = statOrUndefined(`${configDir}/${name}`);
    const text = (Object.hasOwn(changes, name) ? changes[name] : undefined) ??
      Deno.readTextFileSync(`${configDir}/${name}`);
    writeSynced(`${dir}/${name}`, text, like);
  }
  fsyncDir(dir);
  return dir;
}

/** Removes a staging folder that was never committed. */
export function discard(configDir: string): void {
  try {
    Deno.removeSync(`${configDir}/${STAGING_DIR}`, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Commits the staged `files`: backup, intent, one rename per file, intent
 * removed. `hook` is called after each step (tests stop the process there).
 */
export async function commit(
  configDir: string,
  recipient: string,
  files: readonly string[],
  now: Date,
  hook: StepHook = () => {},
): Promise<Intent> {
  const staging = `${configDir}/${STAGING_DIR}`;
  const backupDir = `${configDir}/${BACKUP_DIR}/${stamp(now)}-revoke-${recipient}`;
  Deno.mkdirSync(backupDir, { recursive: true, mode: 0o700 });
  for (const name of files) {
    const like = statOrUndefined(`${configDir}/${name}`);
    writeSynced(`${backupDir}/${name}`, Deno.readTextFileSync(`${configDir}/${name}`), like);
  }
  fsyncDir(backupDir);
  await hook("backed-up");
  const intent: Intent = {
    version: 1,
    recipient,
    files: [...files],
    backupDir,
    createdAt: now.toISOString(),
  };
  writeSynced(`${staging}/${INTENT_FILE}.tmp`, JSON.stringify(intent, null, 2) + "\n");
  Deno.renameSync(`${staging}/${INTENT_FILE}.tmp`, `${staging}/${INTENT_FILE}`);
  fsyncDir(staging);
  await hook("intent");
  await rollForward(configDir, intent, hook);
  return intent;
}

async function rollForward(configDir: string, intent: Intent, hook: StepHook): Promise<void> {
  const staging = `${configDir}/${STAGING_DIR}`;
  for (const name of intent.files) {
    if (statOrUndefined(`${staging}/${name}`)) {
      Deno.renameSync(`${staging}/${name}`, `${configDir}/${name}`);
      fsyncDir(configDir);
    }
    await hook(`renamed:${name}`);
  }
  Deno.removeSync(`${staging}/${INTENT_FILE}`);
  fsyncDir(staging);
  await hook("committed");
  Deno.removeSync(staging, { recursive: true });
  fsyncDir(configDir);
}

/** What {@link recover} did. */
export type Recovery =
  | { kind: "none" }
  | { kind: "rolled_back" }
  | { kind: "rolled_forward"; intent: Intent };

/** Completes or rolls back an interrupted commit left in `configDir`. */
export async function recover(configDir: string): Promise<Recovery> {
  const staging = `${configDir}/${STAGING_DIR}`;
  if (!statOrUndefined(staging)) return { kind: "none" };
  const intentPath = `${staging}/${INTENT_FILE}`;
  if (!statOrUndefined(intentPath)) {
    discard(configDir);
    fsyncDir(configDir);
    return { kind: "rolled_back" };
  }
  let intent: Intent;
  try {
    intent = JSON.parse(Deno.readTextFileSync(intentPath));
    if (intent.version !== 1 || !Array.isArray(intent.files)) throw new Error("unknown format");
    for (const f of intent.files) {
      if (typeof f !== "string" || f.includes("/") || f.startsWith(".")) {
        throw new Error(`bad file name ${JSON.stringify(f)}`);
      }
    }
  } catch (e) {
    throw new Error(
      `${intentPath}: unreadable intent (${e instanceof Error ? e.message : e}); ` +
        `restore the files from ${configDir}/${BACKUP_DIR}/ by hand, then remove ${staging}`,
    );
  }
  await rollForward(configDir, intent, () => {});
  return { kind: "rolled_forward", intent };
}
