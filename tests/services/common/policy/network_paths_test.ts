/**
 * signal-cli's paths in network.yaml go into the mesh's sandbox flags and the
 * systemd units as they are: a comma (which would split a `--allow-read`
 * list) or a space is refused at load with its position. The case is the
 * unit renderer fuzz's counterexample.
 */
import assert from "node:assert/strict";
import { checkPolicyText } from "../../../../services/common/policy/mod.ts";

Deno.test("network.yaml: signal-cli paths with a comma or a space are refused with their position", () => {
  const text = Deno.readTextFileSync("policies/network.yaml");
  for (const bad of ["/run/signal-cli/1)S,]>socket", "/run/signal cli/socket"]) {
    const r = checkPolicyText(
      "network",
      text.replace("/run/signal-cli/socket", bad),
      "network.yaml",
    );
    assert.equal(r.config, undefined, bad);
    assert.match(
      r.issues.map((i) => `${i.line}:${i.col} ${i.message}`).join("\n"),
      /^\d+:\d+ .*may only hold letters, digits and \. _ @ \+ - \//,
    );
  }
  assert.ok(checkPolicyText("network", text, "network.yaml").config, "the shipped file loads");
});
