/**
 * The nftables side of a switch: check a transaction, apply it, read the
 * live table back.
 *
 * @module
 */
import { type CommandResult, firstLine, type Runner } from "./exec.ts";
import { FAMILY, TABLE, transaction } from "./ruleset.ts";

/** An nft invocation that failed. */
export class NftError extends Error {
  /** Creates the error from the failing command's result. */
  constructor(what: string, result: CommandResult) {
    super(`nft ${what} failed (exit ${result.code}): ${firstLine(result)}`);
    this.name = "NftError";
  }
}

/** Drives `nft` for the ai-switch table. */
export class Nft {
  #run: Runner;
  #bin: string;

  /** Uses `bin` (absolute path) through `run`. */
  constructor(run: Runner, bin: string) {
    this.#run = run;
    this.#bin = bin;
  }

  /** Checks the replacement of the table by `tableText` without applying it (`nft -c -f -`). */
  async check(tableText: string): Promise<void> {
    const r = await this.#run(this.#bin, ["-c", "-f", "-"], transaction(tableText));
    if (r.code !== 0) throw new NftError("check (-c -f -)", r);
  }

  /** Replaces the table by `tableText` in one atomic transaction (`nft -f -`). */
  async apply(tableText: string): Promise<void> {
    const r = await this.#run(this.#bin, ["-f", "-"], transaction(tableText));
    if (r.code !== 0) throw new NftError("apply (-f -)", r);
  }

  /** The live table as nft prints it, or `null` if it does not exist. */
  async list(): Promise<string | null> {
    const r = await this.#run(this.#bin, ["list", "table", FAMILY, TABLE]);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return null;
    throw new NftError(`list table ${FAMILY} ${TABLE}`, r);
  }
}
