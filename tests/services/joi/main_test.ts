/** joi's command line: a value that would change what joi trusts is refused, named. */
import assert from "node:assert/strict";
import { parseJoiArgs } from "../../../services/joi/main.ts";
import { UsageError } from "../../../services/common/cli.ts";

const BASE = [
  "--config-dir=policies",
  "--state-dir=var/x",
  "--listen=127.0.0.1:8443",
  "--ingest-listen=127.0.0.1:8445",
  "--mesh-url=http://127.0.0.1:8444",
];

Deno.test("joi args: --mode is local or production; anything else is refused, not taken as local", () => {
  assert.equal(parseJoiArgs(BASE).mode, "local");
  assert.equal(parseJoiArgs([...BASE, "--mode=production"]).mode, "production");
  for (const bad of ["prod", "Production", "", "production "]) {
    assert.throws(
      () => parseJoiArgs([...BASE, `--mode=${bad}`]),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message === `joi: --mode must be local or production, got ${JSON.stringify(bad)}`,
    );
  }
});

Deno.test("joi args: --llm-url obeys llm.yaml's rule (a loopback or private address)", () => {
  for (const ok of ["http://127.0.0.1:11434", "http://10.0.0.7:11434", "http://localhost:11434"]) {
    assert.equal(parseJoiArgs([...BASE, `--llm-url=${ok}`]).llmUrl, ok);
  }
  for (const bad of ["https://api.example.com", "http://8.8.8.8:11434", "ollama:11434", "::::"]) {
    assert.throws(
      () => parseJoiArgs([...BASE, `--llm-url=${bad}`]),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`joi: --llm-url ${JSON.stringify(bad)}`) &&
        e.message.includes("loopback or private"),
    );
  }
  assert.equal(parseJoiArgs(BASE).llmUrl, undefined);
});
