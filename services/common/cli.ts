/**
 * Command lines of outside input: `node:util`'s `parseArgs` throws a
 * `TypeError` on an unknown option or a missing value, which, left uncaught,
 * kills a program with a stack trace. {@link parseCommandLine} turns it into
 * a {@link UsageError} naming the program; {@link runMain} prints that one
 * line and exits 2.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command line the program cannot use; the message says why. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** `parseArgs(config)`, refusing bad input with a {@link UsageError} that names `program`. */
export function parseCommandLine<T extends ParseArgsConfig>(
  program: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(`${program}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Runs `main` and exits with its code; a {@link UsageError} is printed and exits 2. */
export async function runMain(main: () => number | Promise<number>): Promise<never> {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    Deno.exit(2);
  }
}
