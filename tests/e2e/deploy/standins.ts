/**
 * The stand-ins of the booted test, for what cannot exist on our machines:
 *
 * - signal-cli, installed on the mesh VM as `/usr/local/bin/signal-cli` (a
 *   wrapper running `tests/peers/signal_cli/daemon_main.ts` with the VM's
 *   Deno), so `signal-cli.socket` starts it and hands it the socket; the test
 *   plays "the Signal server" through its folder ({@link SignalServer});
 * - Ollama on the joi VM's `127.0.0.1:11434` and openHAB's event stream on the
 *   openHAB VM's `127.0.0.1:8080`: processes of the test started in those VMs'
 *   network namespaces (so a VM's reboot does not stop them, as a separate
 *   Ollama or openHAB host would not stop), driven over stdin/stdout.
 *
 * @module
 */
import { Child } from "../process.ts";
import type { RecordedRequest } from "../../peers/signal_cli/peer.ts";
import type { Vm } from "../vm/vm.ts";

const PEERS = new URL("../../peers/", import.meta.url).pathname;

/** Where the stand-in's code lives on the mesh VM. */
export const STANDIN_DIR = "/opt/signal-cli-standin";

/** The wrapper installed as `/usr/local/bin/signal-cli`. */
export const SIGNAL_CLI_WRAPPER = `#!/bin/sh
# A stand-in for signal-cli (the real one needs Java and a phone to link): the
# booted end-to-end test's ${STANDIN_DIR}/daemon_main.ts, speaking signal-cli's
# JSON-RPC on the socket signal-cli.socket hands over.
export DENO_DIR=/var/lib/signal-cli/.cache/deno DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
exec /usr/local/bin/deno run --no-prompt --quiet \\
  --allow-read=/var/lib/signal-cli,${STANDIN_DIR} --allow-write=/var/lib/signal-cli \\
  ${STANDIN_DIR}/daemon_main.ts "$@"
`;

/** Installs the signal-cli stand-in on `vm` (code root-owned, read-only). */
export async function installSignalCli(vm: Vm): Promise<void> {
  await vm.exec(["mkdir", "-p", "-m", "0755", STANDIN_DIR]);
  for (const f of ["peer.ts", "daemon_main.ts"]) {
    await vm.writeFile(
      `${STANDIN_DIR}/${f}`,
      await Deno.readTextFile(`${PEERS}signal_cli/${f}`),
      { mode: 0o644, owner: "root:root" },
    );
  }
  await vm.writeFile("/usr/local/bin/signal-cli", SIGNAL_CLI_WRAPPER, {
    mode: 0o755,
    owner: "root:root",
  });
}

/** "The Signal server" of the stand-in on the mesh VM: what arrives, what was sent. */
export class SignalServer {
  readonly vm: Vm;
  readonly dir: string;
  #seq = 0;

  constructor(vm: Vm, config = "/var/lib/signal-cli") {
    this.vm = vm;
    this.dir = `${config}/standin`;
  }

  /** Creates the folder (and its inbox) owned as signal-cli's config folder is. */
  async #ensureDir(): Promise<void> {
    await this.vm.exec([
      "sh",
      "-c",
      'mkdir -p "$1/inbox" && chown --reference="$(dirname "$1")" "$1" "$1/inbox" && ' +
      'chmod 0700 "$1" "$1/inbox"',
      "sh",
      this.dir,
    ]);
  }

  /** An envelope arrives from Signal (delivered when the mesh is connected). */
  async deliver(envelope: Record<string, unknown>): Promise<void> {
    await this.#ensureDir();
    const name = `${Date.now()}-${String(++this.#seq).padStart(6, "0")}`;
    // written aside, then renamed: the daemon never reads half a file
    await this.vm.exec([
      "sh",
      "-c",
      'umask 022 && cat > "$1/inbox/.$2.tmp" && mv "$1/inbox/.$2.tmp" "$1/inbox/$2.json"',
      "sh",
      this.dir,
      name,
    ], { input: JSON.stringify(envelope) });
  }

  /** Sets what `listGroups` answers. */
  async setGroups(groups: unknown[]): Promise<void> {
    await this.#ensureDir();
    await this.vm.writeFile(`${this.dir}/groups.json`, JSON.stringify(groups), { mode: 0o644 });
  }

  /** Every request the daemon received, across its restarts. */
  async requests(): Promise<(RecordedRequest & { at: number })[]> {
    const r = await this.vm.exec(["cat", `${this.dir}/requests.jsonl`], { check: false });
    return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  }

  /** The `send` requests. */
  async sends(): Promise<(RecordedRequest & { at: number })[]> {
    return (await this.requests()).filter((r) => r.method === "send");
  }

  /** Envelopes not yet taken by a client. */
  async waiting(): Promise<number> {
    const r = await this.vm.exec(
      ["sh", "-c", 'ls "$1/inbox" | grep -c "\\.json$"', "sh", this.dir],
      {
        check: false,
      },
    );
    return Number(r.stdout.trim()) || 0;
  }
}

/** A stand-in process in a VM's network namespace, talking JSON lines. */
function inNetns(vm: Vm, name: string, args: string[]): Child {
  return new Child(name, "nsenter", [`--net=/run/netns/${vm.netns}`, "--", "deno", ...args], {
    stdin: true,
    lines: true,
  });
}

/** The Ollama stand-in on `vm`'s 127.0.0.1:`port`, echoing what matches `echo`. */
export async function startLlm(
  vm: Vm,
  o: { port: number; reply: string; echo: string },
): Promise<Child> {
  const c = inNetns(vm, "Ollama stand-in", [
    "run",
    "--no-prompt",
    `--allow-net=127.0.0.1:${o.port}`,
    `${PEERS}llm_server_main.ts`,
    `--port=${o.port}`,
    `--reply=${o.reply}`,
    `--echo=${o.echo}`,
  ]);
  await c.waitLine("the Ollama stand-in to listen", (l) => l.ready === true);
  return c;
}

/** The openHAB event stream stand-in on `vm`'s 127.0.0.1:`port`, accepting `token`. */
export class OpenhabStandin {
  readonly child: Child;
  #id = 0;

  private constructor(child: Child) {
    this.child = child;
  }

  /** Starts it and waits until it listens. */
  static async start(vm: Vm, o: { port: number; token: string }): Promise<OpenhabStandin> {
    const c = inNetns(vm, "openHAB stand-in", [
      "run",
      "--no-prompt",
      `--allow-net=127.0.0.1:${o.port}`,
      `${PEERS}openhab_sse_main.ts`,
      `--port=${o.port}`,
    ]);
    await c.send({ token: o.token });
    await c.waitLine("the openHAB stand-in to listen", (l) => l.ready === true);
    return new OpenhabStandin(c);
  }

  /** Sends a command; resolves with its status line (`connections`, `open`). */
  async command(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    await this.child.send({ id, ...cmd });
    return await this.child.waitLine(`openHAB stand-in command ${id}`, (l) => l.id === id);
  }

  /** Streams open now. */
  async open(): Promise<number> {
    return Number((await this.command({ status: true })).open);
  }
}
