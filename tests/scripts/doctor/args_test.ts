/**
 * The doctor's command line: an address that is not a URL is a usage error
 * naming the option, never an uncaught TypeError with a stack trace
 * (`--llm-url=::::` crashed the doctor in its Ollama row).
 */
import assert from "node:assert/strict";
import { localLayout, programSpec } from "../../../services/common/permissions/mod.ts";
import { UsageError } from "../../../services/common/cli.ts";
import { parseDoctorArgs } from "../../../scripts/doctor/cli.ts";

const fixed = programSpec("doctor", localLayout()).args;

Deno.test("doctor: the manifest's own arguments parse", () => {
  assert.equal(parseDoctorArgs(fixed).paths.llmUrl, "http://127.0.0.1:11434");
});

for (const option of ["joi-url", "mesh-url", "ingest-url", "llm-url", "openhab-url"]) {
  Deno.test(`doctor: --${option} that is not an http(s) URL is a usage error naming it`, () => {
    for (const bad of ["::::", "-1", "http://[::1", "ftp://127.0.0.1", "127.0.0.1:8443"]) {
      assert.throws(
        () => parseDoctorArgs([...fixed, `--${option}=${bad}`]),
        (e: unknown) => {
          assert.ok(e instanceof UsageError, `${bad}: ${e}`);
          assert.match(e.message, new RegExp(`--${option}`));
          return true;
        },
      );
    }
  });
}
