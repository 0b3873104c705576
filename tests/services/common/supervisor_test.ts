import assert from "node:assert/strict";
import { Supervisor } from "../../../services/common/supervisor.ts";

const CHILD = new URL("./fixtures/child.ts", import.meta.url).pathname;
const run = (...args: string[]) => ["run", "--no-prompt", CHILD, ...args];

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("supervisor prefixes output, pipes stdin and stops cleanly", async () => {
  const lines: string[] = [];
  const chat: string[] = [];
  const sup = new Supervisor([
    {
      name: "echo",
      command: "deno",
      args: run("echo"),
      stdin: true,
      onStdoutLine: (l) => chat.push(l),
    },
  ], { print: (l) => lines.push(l) });
  sup.start();
  await until(() => chat.includes("ready"), "ready");
  assert.equal(await sup.writeLine("echo", "hi there"), true);
  await until(() => chat.includes("echo:hi there"), "echo");
  await sup.stop();
  assert.equal(sup.status()[0]!.running, false);
  assert.equal(await sup.writeLine("echo", "late"), false);
});

Deno.test("supervisor restarts a crashing child with growing delays", async () => {
  const lines: string[] = [];
  const sup = new Supervisor([{ name: "crashy", command: "deno", args: run("crash", "3") }], {
    print: (l) => lines.push(l),
    backoff: { initialMs: 10, maxMs: 40, resetAfterMs: 60_000 },
  });
  sup.start();
  await until(() => lines.filter((l) => l.includes("restarting in")).length >= 4, "4 restarts");
  await sup.stop();
  assert.ok(lines.includes("[crashy] hello"), "stderr is prefixed with the program name");
  assert.ok(lines.some((l) => l === "[crashy] exited with code 3"));
  const delays = lines.filter((l) => l.includes("restarting in")).map((l) =>
    Number(l.match(/in (\d+) ms/)![1])
  );
  assert.deepEqual(delays.slice(0, 4), [10, 20, 40, 40]);
  assert.equal(sup.status()[0]!.lastExitCode, 3);
});

Deno.test("supervisor kills a child that ignores SIGTERM after the grace period", async () => {
  const out: string[] = [];
  const sup = new Supervisor([
    { name: "stubborn", command: "deno", args: run("ignore"), onStdoutLine: (l) => out.push(l) },
  ], { print: () => {} });
  sup.start();
  await until(() => out.includes("ready"), "ready");
  await sup.stop("SIGTERM", 200);
  assert.equal(sup.status()[0]!.running, false);
  assert.equal(sup.status()[0]!.restarts, 0, "a stopped supervisor does not restart");
});
