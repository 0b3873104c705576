/**
 * A service's own Nebula certificate, as its watches see it: read at start
 * and re-read every few hours (a renewed certificate is picked up without a
 * restart), reported as `{name, not_after}` or `{error}` (null when the
 * service has none: the local run without Nebula).
 *
 * In production each service reads its node's public certificate,
 * `/etc/nebula/<node>.crt` (`--nebula-cert`; its sandbox admits that one
 * file, never the key beside it).
 *
 * @module
 */
import { type NebulaCert, readNebulaCert } from "./nebula_cert.ts";

/** The `/health` and link-answer form of a certificate. */
export type CertFacts = { name: string; not_after: number } | { error: string } | null;

/** Reads one certificate file on demand. */
export class CertReader {
  readonly path: string | undefined;
  #cert: NebulaCert | undefined;
  #error: string | undefined;

  /** `path` undefined: this service has no certificate (the local run). */
  constructor(path: string | undefined) {
    this.path = path;
  }

  /** Reads the file again. A missing file means no certificate (the local run). */
  async refresh(): Promise<void> {
    if (this.path === undefined) return;
    try {
      await Deno.lstat(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        this.#cert = undefined;
        this.#error = undefined;
        return;
      }
    }
    try {
      this.#cert = await readNebulaCert(this.path);
      this.#error = undefined;
    } catch (e) {
      this.#cert = undefined;
      this.#error = (e as Error).message.slice(0, 300);
    }
  }

  /** The certificate last read, if any. */
  get cert(): NebulaCert | undefined {
    return this.#cert;
  }

  /** What the watches report. */
  facts(): CertFacts {
    if (this.#cert) return { name: this.#cert.name, not_after: this.#cert.notAfter };
    return this.#error !== undefined ? { error: this.#error } : null;
  }
}
