/**
 * `deno task start`: joi's local run on embedded defaults.
 *
 * - creates `./var` (0700) with one state directory per program;
 * - generates the missing keys (0600) on first run;
 * - starts each service as its own Deno process with exactly the flags the
 *   permission manifest gives it, on loopback, with state in `./var`;
 * - uses the terminal in place of Signal: each line you type is a DM from the
 *   owner (`@family ...`, `@critical ...`, `@owner ...` send it in that group),
 *   and everything joi sends is printed with its channel;
 * - supervises (restart with backoff, logs prefixed by program) and shuts down
 *   cleanly on Ctrl-C and SIGTERM.
 *
 * Its own permissions are the manifest's `main` entry: read the repository,
 * write `./var`, run `deno`, and dial the three local ports for `/health`
 * and Ollama's (once, to say at start-up when no Ollama is reachable).
 *
 * @module
 */
import { parseCommandLine, runMain } from "./services/common/cli.ts";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  type ProgramName,
  programSpec,
} from "./services/common/permissions/mod.ts";
import { type ChildSpec, pumpLines, Supervisor } from "./services/common/supervisor.ts";
import { exists } from "./services/common/fs.ts";
import { webSearchAccess } from "./services/common/units/mod.ts";
import { loadPolicyFile } from "./services/common/policy/mod.ts";
import { generateKeyFile } from "./services/common/wire/keys.ts";
import { ollamaStartLine, probeOllama } from "./services/joi/llm/ollama_probe.ts";

/** The keys the local run needs, each generated once with mode 0600. */
export const LOCAL_KEYS = ["mesh_to_joi.key", "joi_to_mesh.key", "memory.key"] as const;

/** Programs of the local run, in start order. */
export const LOCAL_PROGRAMS: ProgramName[] = ["knowledge", "joi", "mesh"];

/** Creates the state directories (0700) and missing keys (0600). */
export async function prepareVar(layout: Layout): Promise<string[]> {
  const dirs = [
    layout.joiStateDir.replace(/\/joi$/, ""),
    layout.joiStateDir,
    layout.meshStateDir,
    layout.relayStateDir,
    layout.logDir,
    layout.secretsDir("joi"),
    layout.retrieveSocketDir,
  ];
  for (const dir of dirs) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.chmod(dir, 0o700);
  }
  const created: string[] = [];
  for (const name of LOCAL_KEYS) {
    const path = `${layout.secretsDir("joi")}/${name}`;
    if (await exists(path)) continue;
    await generateKeyFile(path);
    created.push(path);
  }
  return created;
}

/** Renders a JSON log line from a child as `level event k=v ...` for humans. */
export function humanize(line: string): string {
  if (!line.startsWith("{")) return line;
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const { ts: _ts, level, program: _p, component, event, ...rest } = rec;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    const where = component ? `${component}: ` : "";
    return `${String(level).padEnd(8)} ${where}${String(event)}${fields ? " " + fields : ""}`;
  } catch {
    return line;
  }
}

/** The supervised children of the local run. */
export function localChildren(layout: Layout, print: (line: string) => void): ChildSpec[] {
  return LOCAL_PROGRAMS.map((name) => {
    const spec = programSpec(name, layout);
    const child: ChildSpec = { name, command: "deno", args: denoRunArgs(spec), env: spec.env };
    if (name === "mesh" && layout.signal.kind === "terminal") {
      child.stdin = true;
      // The terminal transport prints what joi sends on stdout: show it as is.
      child.onStdoutLine = (line) => print(line);
    }
    return child;
  });
}

async function waitHealthy(layout: Layout, timeoutMs: number): Promise<string[]> {
  const ports = [layout.joiInbound, layout.meshOutbound, layout.joiIngest];
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(ports.map((p) => `${p.host}:${p.port}`));
  while (pending.size && Date.now() < deadline) {
    for (const hp of [...pending]) {
      try {
        const res = await fetch(`http://${hp}/health`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.ok) pending.delete(hp);
      } catch {
        // not up yet
      }
    }
    if (pending.size) await new Promise((r) => setTimeout(r, 250));
  }
  return [...pending];
}

async function main(): Promise<number> {
  const { values } = parseCommandLine("start", {
    args: Deno.args,
    options: {
      "base-port": { type: "string", default: "8443" },
      "var-dir": { type: "string", default: "./var" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log("usage: deno task start [--base-port 8443] [--var-dir ./var]");
    return 0;
  }
  const basePort = Number(values["base-port"]);
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65533) {
    console.error(
      `main: --base-port must be an integer from 1024 to 65533, got ${values["base-port"]}`,
    );
    return 2;
  }
  // Absolute: Deno admits Unix sockets (the retrieve sockets) by absolute path only.
  const varDir = values["var-dir"].startsWith("/")
    ? values["var-dir"]
    : `${Deno.cwd()}/${values["var-dir"].replace(/^\.\//, "")}`;
  // joi may dial the search proxy only when tools.yaml enables web search
  const webSearch = webSearchAccess(loadPolicyFile("tools", "./policies/tools.yaml"));
  // one retrieve socket per channel: joi and the broker are allowed exactly these
  const channels = loadPolicyFile("channelUsers", "./policies/channel_users.yaml")
    .allowed_channel_users;
  const layout = localLayout({
    basePort,
    varDir,
    channels,
    ...(webSearch ? { webSearch } : {}),
  });
  const print = (line: string) => console.log(line);
  const created = await prepareVar(layout);
  for (const path of created) print(`[main] generated key ${path} (mode 0600)`);

  const supervisor = new Supervisor(localChildren(layout, print), {
    print: (line) => {
      const m = line.match(/^(\[[^\]]+\] )(.*)$/);
      print(m ? `${m[1]}${humanize(m[2] ?? "")}` : line);
    },
  });
  supervisor.start();

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      print("[main] stopping...");
      await supervisor.stop("SIGTERM", 5000);
      print("[main] stopped cleanly");
    })();
    return stopping;
  };
  const done = new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => stop().then(resolve));
    }
  });

  // Ollama is not ours to start: say in one line when there is none, and how to get it
  const model = loadPolicyFile("llm", "./policies/llm.yaml").primary_model;
  const ollama = `http://${layout.llm.host}:${layout.llm.port}`;
  const noModel = ollamaStartLine(ollama, model, await probeOllama(ollama, model));
  if (noModel) print(`[main] ${noModel}`);

  const down = await waitHealthy(layout, 30_000);
  if (down.length) {
    print(`[main] not healthy after 30 s: ${down.join(", ")} (see the logs above)`);
  } else {
    print(
      `[main] joi is up: inbound ${layout.joiInbound.port}, mesh ${layout.meshOutbound.port}, ` +
        `ingest ${layout.joiIngest.port}. Type a message (a DM from the owner); ` +
        `"@family ..." or "@critical ..." writes in that group (in the family group joi ` +
        `answers only when addressed: "@family joi, ..."); Ctrl-C stops.`,
    );
  }

  // The terminal chat: every line typed goes to the mesh's terminal transport
  // (writeLine queues the lines in order on the child's stdin writer).
  pumpLines(Deno.stdin.readable, (typed) => {
    const line = typed.trim();
    if (!line) return;
    supervisor.writeLine("mesh", line).then((sent) => {
      if (!sent) print("[main] the mesh is not running; message not sent");
    });
  }).catch(() => {});

  await done;
  return 0;
}

if (import.meta.main) await runMain(() => main());
