/**
 * Rules that used to live in the modules that use a policy (FloodGuard,
 * LlmClient, LlmCallBudget, GpuHealthMonitor, knowledgeFolders, the owner
 * fallbacks) and now live in the schemas or rules of the loader: each is
 * refused at load with `file:line:col`, so `deno task validate`, the unit's
 * ExecStartPre and joi's start refuse it alike, instead of a RangeError
 * without a position when the module is built. (The tests that pinned the
 * modules' own wording, in llm/client_test.ts and knowledge/folders_test.ts,
 * moved here with their rules.)
 */
import assert from "node:assert/strict";
import { parseMeshSettings } from "../../../../services/mesh/config.ts";
import { issuesOf } from "./helpers.ts";

Deno.test("FloodGuard's rule: alert_minutes start at 0 ([1, 5, 15] used to pass the loader)", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "policy.yaml",
      from: "alert_minutes: [0, 5, 15]",
      to: "alert_minutes: [1, 5, 15]",
    }]),
    [
      "policies/policy.yaml:58:21: iot.confirmation.alert_minutes[0]: the first critical alert goes out at once: must be 0, got 1 (e.g. [0, 5, 15])",
    ],
  );
});

Deno.test("FloodGuard's rule: alert_minutes increase", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "policy.yaml",
      from: "alert_minutes: [0, 5, 15]",
      to: "alert_minutes: [0, 15, 5]",
    }]),
    ["policies/policy.yaml:58:28: iot.confirmation.alert_minutes[2]: alert times must increase, got 5 after 15"],
  );
});

Deno.test("FloodGuard's rule: suppression needs more transitions than flapping", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "policy.yaml",
      from: "suppress_transitions: 12",
      to: "suppress_transitions: 6",
    }]),
    ["policies/policy.yaml:56:27: iot.flapping.suppress_transitions: must be more than flapping_transitions (6), got 6"],
  );
});

Deno.test("FloodGuard's rule: the flapping window is positive", async () => {
  assert.deepEqual(
    await issuesOf([{ file: "policy.yaml", from: "window_minutes: 60", to: "window_minutes: 0" }]),
    ["policies/policy.yaml:54:21: iot.flapping.window_minutes: must be >= 1, got number 0"],
  );
});

Deno.test("LlmClient's rule: no model of a banned family", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "llm.yaml",
      from: "fallback_models:",
      to: "fallback_models:\n  - Qwen2.5:7b",
    }]),
    ['policies/llm.yaml:5:5: fallback_models[0]: model "Qwen2.5:7b" belongs to the banned family "qwen"'],
  );
});

Deno.test("LlmCallBudget's rule: calls_per_hour is positive", async () => {
  const lines = await issuesOf([{
    file: "policy.yaml",
    from: "calls_per_hour: 120",
    to: "calls_per_hour: 0",
  }]);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /^policies\/policy\.yaml:\d+:\d+: rate_limits\.llm\.calls_per_hour: must be >= 1, got number 0$/,
  );
});

Deno.test("GpuHealthMonitor's rule: the check interval is positive", async () => {
  const lines = await issuesOf([{
    file: "policy.yaml",
    from: "check_interval_seconds: 60",
    to: "check_interval_seconds: 0",
  }]);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /^policies\/policy\.yaml:\d+:\d+: gpu_health\.check_interval_seconds: must be >= 1, got number 0$/,
  );
});

Deno.test("knowledgeFolders' rule: readers are channel users", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "recipients.yaml",
      from: "      - joi-family        # the owner shares",
      to: "      - joi-nobody        # the owner shares",
    }]),
    ['policies/recipients.yaml:16:9: recipients.owner.public_readers[1]: unknown channel user "joi-nobody"'],
  );
});

Deno.test("knowledgeFolders' rule: every group but critical has a reader_group", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "recipients.yaml",
      from: "    reader_group: joi-family-readers\n",
      to: "",
    }]),
    [
      'policies/recipients.yaml:27:3: groups.family: reader_group is missing: every group but "critical" needs one (it owns the group\'s knowledge folder)',
    ],
  );
});

Deno.test("the web_search runner's rule: web_search goes through the mesh's proxy", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "tools.yaml",
      from: "    transport: http_proxy       # the mesh's Squid",
      to: "    transport: tool_api       # the mesh's Squid",
    }]),
    [
      'policies/tools.yaml:6:16: tools.web_search.transport: web_search must use transport http_proxy (the mesh\'s proxy), got "tool_api": joi never reaches the internet itself',
    ],
  );
});

Deno.test("the config manager's rule: one number per recipient", async () => {
  const lines = await issuesOf([{
    file: "identities.yaml",
    from: "    recipient_id: partner",
    to: "    recipient_id: owner",
  }]);
  assert.ok(
    lines.some((l) =>
      l.startsWith(
        'policies/identities.yaml:11:19: identities["+15550000002"].recipient_id: recipient "owner" already has the phone +15550000001',
      )
    ),
    lines.join("\n"),
  );
});

Deno.test("the voice queue's rule: max_queue is a positive whole number (mesh.yaml)", () => {
  assert.throws(
    () =>
      parseMeshSettings(
        "voice:\n  attachments_dir: /a\n  max_queue: 0\n  whisper: { bin: /w, model: m }\n" +
          "  ffmpeg: { bin: /f }\n",
        "mesh.yaml",
      ),
    /^mesh\.yaml:3:14: voice\.max_queue: must be >= 1/m,
  );
});
