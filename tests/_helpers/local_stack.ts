/**
 * The local stack as `deno task start` runs it, for tests: main.ts with its
 * manifest flags at a free range of three ports, its stdout collected line
 * by line. Used by the local-run test and the endpoint fuzz.
 *
 * @module
 */
import { denoRunArgs, localLayout, programSpec } from "../../services/common/permissions/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A base port whose three ports (joi, mesh, ingest) are free now. */
export function freeBasePort(): number {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    const held: Deno.Listener[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
      return base;
    } catch {
      // taken: try another range
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error("no free range of three ports");
}

/** A running local stack. */
export interface LocalStack {
  /** joi's inbound port; the mesh is `base + 1`, the ingest `base + 2`. */
  base: number;
  /** The process (main.ts). */
  child: Deno.ChildProcess;
  /** Its stdout lines so far. */
  lines: string[];
  /** Ends when stdout closes. */
  pump: Promise<void>;
  /** Its whole stderr, when it exits. */
  errs: Promise<string>;
  /** Waits until `pred` holds (throws naming `what`, with the output, after `ms`). */
  until(what: string, pred: () => boolean, ms?: number): Promise<void>;
}

/** Starts main.ts with its manifest flags over `varDir` at a free base port. */
export function startLocalStack(varDir: string): LocalStack {
  const base = freeBasePort();
  const layout = localLayout({ basePort: base, varDir });
  const child = new Deno.Command("deno", {
    args: [
      ...denoRunArgs(programSpec("main", layout)),
      `--base-port=${base}`,
      `--var-dir=${varDir}`,
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const pump = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n").filter((l) => l !== ""));
    }
  })();
  const errs = new Response(child.stderr).text();
  const until = async (what: string, pred: () => boolean, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { base, child, lines, pump, errs, until };
}
