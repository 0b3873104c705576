/**
 * The per-direction HMAC keys: reading them safely and creating them.
 *
 * A key file is `<secretsDir>/<direction>.key` (`mesh_to_joi.key`,
 * `joi_to_mesh.key`, `openhab_to_joi.key`); both ends of a direction hold
 * the same file. From it come the direction's two keys ({@link WireKey}):
 * the request key (the bytes as they are) and the response key,
 * HKDF-SHA256(ikm = the bytes, salt = "joi-wire-v2",
 * info = "joi-wire-v2 response key", 32 bytes). Without a `secretsDir`, the systemd credentials directory
 * `$CREDENTIALS_DIRECTORY` is used (`LoadCredential=mesh_to_joi.key:/etc/...`).
 *
 * A key file is refused when it:
 * - is a symlink or not a regular file;
 * - grants any permission to group or others (`mode & 0o077`): fix with
 *   `chmod 600 <file>` (systemd credentials are 0400 and pass);
 * - holds less than 32 bytes of key material.
 *
 * Accepted encodings (decided on the content, surrounding whitespace ignored for text):
 * 1. hex: only `0-9a-fA-F`, even length, at least 64 chars (32 bytes) —
 *    what {@link generateKeyFile} writes;
 * 2. base64 (standard or URL-safe alphabet, optional `=` padding) decoding to
 *    at least 32 bytes, e.g. `openssl rand -base64 32`;
 * 3. raw binary: any file that is not printable ASCII text, at least 32 bytes,
 *    used as is, e.g. `head -c 32 /dev/urandom`.
 * Printable text that is neither hex nor base64 (a passphrase) is refused:
 * its length says nothing about its entropy.
 *
 * Keys are imported as non-extractable WebCrypto keys and never appear in
 * argv, the environment or logs.
 *
 * @module
 */
import { exists } from "../fs.ts";
import { bytesToHex, hexToBytes, importHmacKey } from "./hmac.ts";
import { RESPONSE_KEY_INFO, RESPONSE_KEY_SALT } from "./response.ts";
import type { Direction } from "./sign.ts";

/** The minimum key size in bytes. */
export const MIN_KEY_BYTES = 32;

/** A key file that cannot be used; the message names the file and the fix. */
export class KeyFileError extends Error {
  /** The offending path. */
  readonly path: string;
  /** Creates the error for `path`. */
  constructor(path: string, message: string) {
    super(message);
    this.name = "KeyFileError";
    this.path = path;
  }
}

const HEX = /^[0-9a-fA-F]+$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const PRINTABLE = /^[\x20-\x7e\t\r\n]*$/;

/**
 * Decodes key material per the module rules; throws a {@link KeyFileError}
 * naming `path` when it is too short or a passphrase.
 */
export function decodeKeyMaterial(path: string, bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  const generate = `create a new one with \`openssl rand -hex 32 > ${path}\` ` +
    `(or joi's generateKeyFile) on one side and copy it to the other`;
  if (!PRINTABLE.test(text)) {
    if (bytes.length < MIN_KEY_BYTES) {
      throw new KeyFileError(
        path,
        `key file ${path} holds ${bytes.length} raw bytes; at least ${MIN_KEY_BYTES} are required: ${generate}`,
      );
    }
    return bytes.slice();
  }
  const trimmed = text.trim();
  if (trimmed.length === 0) {
    throw new KeyFileError(path, `key file ${path} is empty: ${generate}`);
  }
  if (HEX.test(trimmed)) {
    if (trimmed.length % 2 !== 0) {
      throw new KeyFileError(
        path,
        `key file ${path} holds an odd number of hex digits: ${generate}`,
      );
    }
    if (trimmed.length < MIN_KEY_BYTES * 2) {
      throw new KeyFileError(
        path,
        `key file ${path} holds ${trimmed.length / 2} bytes of hex key; ` +
          `at least ${MIN_KEY_BYTES} are required: ${generate}`,
      );
    }
    return hexToBytes(trimmed);
  }
  if (BASE64.test(trimmed)) {
    let decoded: Uint8Array;
    try {
      const std = trimmed.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
      const padded = std + "=".repeat((4 - (std.length % 4)) % 4);
      decoded = Uint8Array.from(atob(padded), (ch) => ch.charCodeAt(0));
    } catch {
      throw new KeyFileError(path, `key file ${path} is not valid base64: ${generate}`);
    }
    if (decoded.length < MIN_KEY_BYTES) {
      throw new KeyFileError(
        path,
        `key file ${path} holds ${decoded.length} bytes of base64 key; ` +
          `at least ${MIN_KEY_BYTES} are required: ${generate}`,
      );
    }
    return decoded;
  }
  throw new KeyFileError(
    path,
    `key file ${path} holds text that is neither hex nor base64 (a passphrase?); ` +
      `keys must be random: ${generate}`,
  );
}

/** What a secret file is called in errors, and how to create one. */
export interface SecretFileKind {
  /** E.g. "key file", "token file". */
  what: string;
  /** The fix for a missing file. */
  howToCreate: (path: string) => string;
}

const KEY_FILE: SecretFileKind = {
  what: "key file",
  howToCreate: (p) => `create it with \`openssl rand -hex 32 > ${p} && chmod 600 ${p}\``,
};

/**
 * The raw bytes of a secret file (a key, an API token), read only when it is
 * a regular file (not a symlink) granting no group/other access, and still
 * the same file once opened. Errors name the file and the fix.
 */
export async function readSecretFile(
  path: string,
  kind: SecretFileKind = KEY_FILE,
): Promise<Uint8Array> {
  const what = kind.what;
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new KeyFileError(
        path,
        `${what} ${path} does not exist: ${kind.howToCreate(path)}`,
      );
    }
    throw new KeyFileError(path, `cannot inspect ${what} ${path}: ${(e as Error).message}`);
  }
  if (info.isSymlink) {
    throw new KeyFileError(
      path,
      `${what} ${path} is a symlink; refusing to follow it: replace it with the file itself`,
    );
  }
  if (!info.isFile) {
    throw new KeyFileError(path, `${what} ${path} is not a regular file`);
  }
  checkMode(path, info, what);
  const file = await Deno.open(path, { read: true });
  try {
    // The path may have been swapped between lstat and open: check the open file is the same.
    const opened = await file.stat();
    if (opened.ino !== info.ino || opened.dev !== info.dev || !opened.isFile) {
      throw new KeyFileError(path, `${what} ${path} changed while it was being opened; retry`);
    }
    checkMode(path, opened, what);
    return new Uint8Array(await new Response(file.readable).arrayBuffer());
  } finally {
    try {
      file.close();
    } catch {
      // already closed by the readable stream
    }
  }
}

/**
 * Reads and decodes a key file, refusing it when it is a symlink, not a
 * regular file, readable by group/other, or not 32+ bytes of key material.
 */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  return decodeKeyMaterial(path, await readSecretFile(path, KEY_FILE));
}

function checkMode(path: string, info: Deno.FileInfo, what = "key file"): void {
  if (info.mode === null) return; // not reported on this platform (Windows)
  const loose = info.mode & 0o077;
  if (loose !== 0) {
    throw new KeyFileError(
      path,
      `${what} ${path} has mode ${(info.mode & 0o777).toString(8).padStart(4, "0")}, ` +
        `which grants group/other access; fix it with \`chmod 600 ${path}\``,
    );
  }
}

/** Where {@link loadWireKey} looks for `name`: `secretsDir` or `$CREDENTIALS_DIRECTORY`. */
export function keyPath(secretsDir: string | undefined, name: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === "." || name === "..") {
    throw new KeyFileError(name, `key name "${name}" must be a plain file name`);
  }
  let dir = secretsDir;
  if (dir === undefined) {
    dir = Deno.env.get("CREDENTIALS_DIRECTORY");
    if (dir === undefined || dir === "") {
      throw new KeyFileError(
        name,
        `no secrets directory given and $CREDENTIALS_DIRECTORY is not set: ` +
          `pass the directory holding ${name}, or start the service with systemd ` +
          `LoadCredential=${name}:/etc/<service>/${name}`,
      );
    }
  }
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

/**
 * Creates `path` holding a fresh 32-byte random key as 64 hex digits and a
 * newline, mode 0600. Atomic and never overwriting: the key is written and
 * synced to a temporary file in the same directory, then hard-linked to
 * `path` (which fails if `path` exists), so `path` is either absent or complete.
 */
export async function generateKeyFile(path: string): Promise<void> {
  const bytes = crypto.getRandomValues(new Uint8Array(MIN_KEY_BYTES));
  const hex = bytesToHex(bytes);
  bytes.fill(0);
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  const tmp = `${dir}/.${base}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    await Deno.chmod(tmp, 0o600); // the umask may have narrowed, never widened; be exact
    await file.write(new TextEncoder().encode(hex + "\n"));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.link(tmp, path);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new KeyFileError(
        path,
        `key file ${path} already exists; refusing to overwrite it (remove it first to rotate)`,
      );
    }
    throw new KeyFileError(path, `cannot create key file ${path}: ${(e as Error).message}`);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/** The two keys of one direction: requests are signed with one, their answers with the other. */
export interface WireKey {
  /** The direction this key belongs to. */
  readonly direction: Direction;
  /** HMAC key of requests (the key file's bytes). */
  readonly request: CryptoKey;
  /** HMAC key of responses, derived with HKDF (see the module doc). */
  readonly response: CryptoKey;
}

const encoder = new TextEncoder();

/** Derives the {@link WireKey} of `direction` from raw key bytes (at least 32). */
export async function importWireKey(raw: Uint8Array, direction: Direction): Promise<WireKey> {
  const request = await importHmacKey(raw);
  const ikm = await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    "HKDF",
    false,
    ["deriveBits"],
  );
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: encoder.encode(RESPONSE_KEY_SALT),
        info: encoder.encode(RESPONSE_KEY_INFO),
      },
      ikm,
      256,
    ),
  );
  try {
    return { direction, request, response: await importHmacKey(bits) };
  } finally {
    bits.fill(0);
  }
}

/**
 * Loads `<direction>.key` from `secretsDir` (or `$CREDENTIALS_DIRECTORY`) as
 * the direction's {@link WireKey}. Throws {@link KeyFileError} saying what is
 * wrong with the file and how to fix it.
 */
export async function loadWireKey(
  secretsDir: string | undefined,
  direction: Direction,
): Promise<WireKey> {
  const bytes = await readKeyFile(keyPath(secretsDir, `${direction}.key`));
  try {
    return await importWireKey(bytes, direction);
  } finally {
    bytes.fill(0);
  }
}

/**
 * Like {@link loadWireKey}, but `undefined` when the key file does not exist;
 * a file that exists but is unusable is an error, never silently ignored.
 */
export async function loadOptionalWireKey(
  secretsDir: string | undefined,
  direction: Direction,
): Promise<WireKey | undefined> {
  if (!(await exists(keyPath(secretsDir, `${direction}.key`)))) return undefined;
  return await loadWireKey(secretsDir, direction);
}
