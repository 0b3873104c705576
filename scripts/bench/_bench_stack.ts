/**
 * The stack the memory benchmarks run: the real services on loopback
 * (`tests/alarms/stack.ts`) with an Ollama stand-in answering at once, and the
 * shipped policies with the outbound, inbound and LLM limits raised. A
 * benchmark sends hours of traffic in minutes, which the per-minute limits
 * would refuse by design; everything else (every alarm rule) stays as shipped.
 *
 * @module
 */
import { type Document, isMap, isScalar } from "yaml";
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";
import { type Stack, startStack } from "../../tests/alarms/stack.ts";
import { LlmTestServer } from "../../tests/peers/llm_server.ts";

const HIGH = { per_hour: 1_000_000, per_minute: 100_000 };

/** Raises every outbound and inbound rate limit and the LLM budget of a `policy.yaml` document. */
export function relaxLimits(doc: Document.Parsed): void {
  for (const section of ["outbound", "inbound"] as const) {
    const limits = doc.getIn(["rate_limits", section]);
    if (!isMap(limits)) continue;
    for (const item of limits.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      doc.setIn(
        ["rate_limits", section, key],
        section === "outbound" ? { ...HIGH, cooldown_seconds: 0 } : HIGH,
      );
    }
  }
  doc.setIn(["rate_limits", "llm", "calls_per_hour"], HIGH.per_hour);
}

/** Copies `./policies` to `dir`, with {@link relaxLimits} applied to `policy.yaml`. */
export async function relaxedPolicies(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir("./policies")) {
    if (!e.isFile) continue;
    let text = await Deno.readTextFile(`./policies/${e.name}`);
    if (e.name === "policy.yaml") {
      const { doc } = parseYaml(text);
      relaxLimits(doc);
      text = doc.toString();
    }
    await Deno.writeTextFile(`${dir}/${e.name}`, text);
  }
}

/** The services with an answering LLM and raised limits; `close()` stops the LLM too. */
export async function startBenchStack(): Promise<Stack> {
  const llm = await LlmTestServer.start({ reply: () => "Sure, done.", keepRequests: 0 });
  let stack: Stack;
  try {
    stack = await startStack({ llmPort: Number(new URL(llm.origin).port), policy: relaxLimits });
  } catch (e) {
    await llm.close();
    throw e;
  }
  const close = stack.close.bind(stack);
  stack.close = async () => {
    await close();
    await llm.close();
  };
  return stack;
}
