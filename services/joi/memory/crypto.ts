/**
 * Encryption at rest for joi's memory: AES-256-GCM with a 96-bit random nonce
 * per record and the channel + record id as additional authenticated data, so
 * a ciphertext moved to another record or another channel fails to decrypt.
 *
 * The key lives in a credential file (`memory.key`, 64 hex characters, mode
 * 0600). Without it the databases hold only ciphertext.
 *
 * @module
 */
import { hkdfSync } from "node:crypto";

import { generateKeyFile, keyPath, readKeyFile } from "../../common/wire/keys.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** File name of the memory key inside the secrets directory. */
export const MEMORY_KEY_FILE = "memory.key";

/** A loaded memory key: the AES-GCM key and the hash chain's MAC key. */
export interface MemoryKey {
  /** The WebCrypto key (non-extractable AES-GCM). */
  readonly key: CryptoKey;
  /**
   * The hash chain's HMAC key, derived from the same secret with HKDF
   * (info `joi-memory-chain-v1`): without it nobody can recompute the chain
   * after deleting or reordering records.
   */
  readonly chainKey: Uint8Array;
}

/** HKDF label of the chain key (distinct from the encryption key's use). */
export const CHAIN_KEY_INFO = "joi-memory-chain-v1";

/** A sealed value: nonce and ciphertext, both base64. */
export interface Sealed {
  /** 12-byte nonce, base64. */
  nonce: string;
  /** AES-GCM ciphertext with its 16-byte tag, base64. */
  ciphertext: string;
}

/** Error reading or using the memory key. */
export class MemoryKeyError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "MemoryKeyError";
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Imports 32 raw bytes as a memory key. */
export async function importMemoryKey(raw: Uint8Array<ArrayBuffer>): Promise<MemoryKey> {
  if (raw.length !== 32) {
    throw new MemoryKeyError(`memory key: expected 32 bytes, got ${raw.length}`);
  }
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  const chainKey = new Uint8Array(hkdfSync("sha256", raw, new Uint8Array(0), CHAIN_KEY_INFO, 32));
  return { key, chainKey };
}

/**
 * Loads `<secretsDir>/memory.key` with the wire module's key-file checks
 * (regular file, not a symlink, no group/other permission, random material).
 * Create it with `openssl rand -hex 32` (mode 0600); the local run creates it.
 */
export async function loadMemoryKey(
  secretsDir: string,
  name = MEMORY_KEY_FILE,
): Promise<MemoryKey> {
  let bytes: Uint8Array;
  try {
    bytes = await readKeyFile(keyPath(secretsDir, name));
  } catch (e) {
    throw new MemoryKeyError(`memory key: ${(e as Error).message}`);
  }
  try {
    if (bytes.length !== 32) {
      throw new MemoryKeyError(
        `memory key ${secretsDir}/${name}: expected exactly 32 bytes of key, got ${bytes.length}; ` +
          `create one with \`openssl rand -hex 32 > memory.key && chmod 600 memory.key\``,
      );
    }
    return await importMemoryKey(new Uint8Array(bytes));
  } finally {
    bytes.fill(0);
  }
}

/** Writes a new random key file (0600, 64 hex digits). Refuses to overwrite an existing one. */
export function generateMemoryKeyFile(path: string): Promise<void> {
  return generateKeyFile(path);
}

/** The additional authenticated data binding a record to its place. */
export function recordAad(channel: string, id: number): Uint8Array<ArrayBuffer> {
  return encoder.encode(`joi-memory\u0000${channel}\u0000${id}`);
}

/** Encrypts `plaintext` for record `id` of `channel`. */
export async function seal(
  key: MemoryKey,
  channel: string,
  id: number,
  plaintext: string,
): Promise<Sealed> {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: recordAad(channel, id) },
    key.key,
    encoder.encode(plaintext),
  );
  return { nonce: toBase64(nonce), ciphertext: toBase64(new Uint8Array(ct)) };
}

/** Decrypts a sealed record; throws {@link MemoryKeyError} if it was altered or moved. */
export async function open(
  key: MemoryKey,
  channel: string,
  id: number,
  sealed: Sealed,
): Promise<string> {
  try {
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64(sealed.nonce), additionalData: recordAad(channel, id) },
      key.key,
      fromBase64(sealed.ciphertext),
    );
    return decoder.decode(pt);
  } catch {
    throw new MemoryKeyError(
      `memory record ${channel}#${id}: decryption failed (wrong key, or the record was altered)`,
    );
  }
}
