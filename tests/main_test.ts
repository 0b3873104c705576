/**
 * The local run (`deno task start`): main.ts with exactly its manifest flags
 * creates ./var (0700) and the keys (0600), starts the knowledge broker, joi
 * and the mesh with their own flags, answers /health on every port, turns a
 * typed line into a DM that joi answers in the same channel, and stops
 * cleanly on SIGTERM leaving no process behind.
 */
import assert from "node:assert/strict";
import { startLocalStack } from "./_helpers/local_stack.ts";

/** Whether something listens on Ollama's port on this machine. */
async function ollamaListening(): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: 11434 })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("deno task start: the stack starts, answers a typed DM in its channel, and stops cleanly", async () => {
  const varDir = await Deno.makeTempDir({ prefix: "joi-main-" });
  const { base, child, lines, pump, errs, until } = startLocalStack(varDir);
  const writer = child.stdin.getWriter();
  let stopped = false;
  try {
    await until("the stack to be up", () => lines.some((l) => l.startsWith("[main] joi is up")));
    // ./var and the keys
    assert.equal((await Deno.stat(varDir)).mode! & 0o777, 0o700);
    for (const k of ["mesh_to_joi.key", "joi_to_mesh.key", "memory.key"]) {
      assert.equal((await Deno.stat(`${varDir}/secrets/${k}`)).mode! & 0o777, 0o600, k);
    }
    // /health on every port
    for (const port of [base, base + 1, base + 2]) {
      const r = await fetch(`http://127.0.0.1:${port}/health`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(r.status, 200, `port ${port}`);
      await r.body?.cancel();
    }
    // no Ollama here: one readable line says so and how to get one; no error class names
    const noOllama = lines.filter((l) =>
      l.startsWith("[main] no Ollama at http://127.0.0.1:11434")
    );
    if (!(await ollamaListening())) {
      assert.equal(noOllama.length, 1, lines.join("\n"));
      assert.match(
        noOllama[0]!,
        /^\[main\] no Ollama at http:\/\/127\.0\.0\.1:11434 \(connection refused: nothing listens there\): joi runs, but answers "I can't answer right now" until one does\. Get it at https:\/\/ollama\.com\/download, then run: ollama pull llama3\.1:8b-instruct-q4_K_M$/,
      );
      assert.ok(!lines.some((l) => /TypeError|gpu_health_ps_failed/.test(l)), lines.join("\n"));
    }
    // each program is prefixed with its name
    for (const p of ["[knowledge]", "[joi]", "[mesh]"]) {
      assert.ok(lines.some((l) => l.startsWith(p)), `no ${p} lines`);
    }
    // a typed line is a DM from the owner; the answer comes back in that channel
    await writer.write(new TextEncoder().encode("hello joi\n"));
    await until(
      "joi's answer in the owner's DM",
      () => lines.some((l) => l.startsWith("[owner_private_dm] ")),
    );
    // the family group is mention-gated: a line answered there addresses joi by name
    await writer.write(new TextEncoder().encode("@family joi, anyone home?\n"));
    await until(
      "joi's answer in the family group",
      () => lines.some((l) => l.startsWith("[family_group] ")),
    );

    child.kill("SIGTERM");
    const status = await child.status;
    stopped = true;
    await pump;
    assert.equal(status.code, 0, await errs);
    assert.ok(lines.includes("[main] stopped cleanly"), lines.slice(-10).join("\n"));
    // nothing left running from this stack
    const ps = await new Deno.Command("sh", {
      args: ["-c", `ps -eo args | grep -F -- '${varDir}' | grep -v grep || true`],
    })
      .output();
    assert.equal(new TextDecoder().decode(ps.stdout).trim(), "", "a child outlived main");
  } finally {
    if (!stopped) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    }
    await writer.close().catch(() => {});
    await Deno.remove(varDir, { recursive: true });
  }
});
