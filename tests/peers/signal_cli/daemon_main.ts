/**
 * The signal-cli stand-in ({@link SignalCliPeer}) as a program with signal-cli's
 * command line, for a booted VM where the real signal-cli (Java, a phone to
 * link) cannot exist. Installed as `/usr/local/bin/signal-cli` (a wrapper that
 * runs this file with Deno), it is what `signal-cli.service` starts:
 *
 * ```sh
 * signal-cli --config /var/lib/signal-cli -a +15559990000 daemon --receive-mode=on-connection
 * ```
 *
 * - `daemon`: JSON-RPC on the listening socket systemd hands over as stdin
 *   (`StandardInput=socket` of `signal-cli.socket`), as signal-cli uses an
 *   inherited channel; `--socket PATH` binds a path instead. `--receive-mode`
 *   must be `on-connection` (what the unit sets): others are refused.
 * - `link [-n NAME]`: prints a `sgnl://linkdevice` URI and the account it was
 *   "associated with", as signal-cli does once the phone has scanned it.
 * - `--version`: `signal-cli 0.14.6`.
 *
 * "The Signal server" is a folder the test reaches from outside,
 * `<config>/standin/` (0700, its files 0600: private to signal-cli's user, as
 * signal-cli keeps its own data):
 * - `inbox/*.json` (read in name order): each an envelope as signal-cli prints
 *   it; delivered to a connected client, then removed (so an envelope waits,
 *   across restarts of this daemon, until a client is there to take it);
 * - `groups.json`: what `listGroups` answers;
 * - `requests.jsonl`: every request received, one JSON object per line with
 *   the time (`at`, ms): what the mesh sent.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type PeerGroup, type RecordedRequest, SignalCliPeer } from "./peer.ts";

/** The version the stand-in reports. */
export const STANDIN_VERSION = "0.14.6";

const USAGE =
  "usage: signal-cli [--config DIR] [-a ACCOUNT] (daemon [--receive-mode=on-connection]" +
  " [--socket PATH] | link [-n NAME] | --version)";

/** Parses signal-cli's command line (the subset the stand-in serves). */
export function parseCommandLine(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: "string", default: "/var/lib/signal-cli" },
      account: { type: "string", short: "a" },
      "receive-mode": { type: "string" },
      socket: { type: "string" },
      name: { type: "string", short: "n" },
      version: { type: "boolean", short: "v" },
    },
  });
  const command = values.version ? "version" : positionals[0];
  if (!["daemon", "link", "version"].includes(command ?? "")) {
    throw new Error(`signal-cli stand-in: unknown command ${command ?? "(none)"}; ${USAGE}`);
  }
  if (positionals.length > 1) {
    throw new Error(`signal-cli stand-in: unexpected arguments ${positionals.slice(1)}; ${USAGE}`);
  }
  if (command === "daemon") {
    if (!values.account) throw new Error("signal-cli stand-in: daemon needs -a ACCOUNT");
    if ((values["receive-mode"] ?? "on-start") !== "on-connection") {
      throw new Error(
        `signal-cli stand-in: --receive-mode=${values["receive-mode"] ?? "on-start"} loses ` +
          "messages that arrive while no client is connected; use on-connection",
      );
    }
  }
  return {
    command: command as "daemon" | "link" | "version",
    config: values.config,
    account: values.account,
    socket: values.socket,
    name: values.name ?? "signal-cli",
  };
}

/** The stand-in's "Signal server" folder under a config dir. */
export function standinDir(config: string): string {
  return `${config}/standin`;
}

async function daemon(config: string, account: string, socket: string | undefined) {
  const dir = standinDir(config);
  await Deno.mkdir(`${dir}/inbox`, { recursive: true, mode: 0o700 });
  const peer = socket ? SignalCliPeer.start({ path: socket, account }) : SignalCliPeer.inherit({
    account,
  });
  const log = await Deno.open(`${dir}/requests.jsonl`, {
    append: true,
    create: true,
    mode: 0o600,
  });
  const enc = new TextEncoder();
  peer.onRequest = (r: RecordedRequest) => {
    log.writeSync(enc.encode(JSON.stringify(r) + "\n")); // r.at: when it arrived
  };
  const loadGroups = async () => {
    try {
      peer.groups = JSON.parse(await Deno.readTextFile(`${dir}/groups.json`)) as PeerGroup[];
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) console.error(`groups.json: ${e}`);
    }
  };
  console.error(`signal-cli stand-in ${STANDIN_VERSION}: daemon for ${account} on ${peer.path}`);
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  const poll = async () => {
    await loadGroups();
    if (!peer.connected) return;
    const names = [];
    for await (const e of Deno.readDir(`${dir}/inbox`)) {
      if (e.isFile && e.name.endsWith(".json")) names.push(e.name);
    }
    for (const name of names.sort()) {
      const path = `${dir}/inbox/${name}`;
      let envelope: Record<string, unknown>;
      try {
        envelope = JSON.parse(await Deno.readTextFile(path));
      } catch (e) {
        console.error(`inbox/${name}: not an envelope (${e}); left in place`);
        continue;
      }
      peer.push(envelope);
      await Deno.remove(path);
    }
  };
  const timer = setInterval(() => {
    poll().catch((e) => console.error(`inbox: ${e}`));
  }, 100);
  await stop.promise;
  clearInterval(timer);
  await peer.stop();
  log.close();
  // signal-cli's JVM exits 143 on SIGTERM (the unit's SuccessExitStatus)
  Deno.exit(143);
}

async function main(): Promise<number> {
  let cmd;
  try {
    cmd = parseCommandLine(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  if (cmd.command === "version") {
    console.log(`signal-cli ${STANDIN_VERSION}`);
    return 0;
  }
  if (cmd.command === "link") {
    const id = crypto.randomUUID();
    console.log(`sgnl://linkdevice?uuid=${id}&pub_key=${btoa(id).slice(0, 32)}`);
    await Deno.mkdir(standinDir(cmd.config), { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(`${standinDir(cmd.config)}/linked`, `${cmd.name}\n`, {
      mode: 0o600,
    });
    console.log(`Associated with: ${cmd.account ?? "+15559990000"}`);
    return 0;
  }
  await daemon(cmd.config, cmd.account!, cmd.socket);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
