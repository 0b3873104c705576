/**
 * Is there an Ollama, and does it have joi's model? One `GET /api/tags`
 * (Ollama's list of pulled models), with a deadline. `deno task start` says it
 * in one line at start-up, and `deno task doctor` shows it in its table.
 *
 * @module
 */
import { ollamaError } from "./health.ts";

/** What the probe found. */
export type OllamaProbe =
  | { reachable: false; error: string }
  | { reachable: true; models: string[]; pulled: boolean };

/** Whether `model` is among Ollama's `names` (a name without a tag means `:latest`). */
export function hasModel(names: readonly string[], model: string): boolean {
  const want = model.includes(":") ? model : `${model}:latest`;
  return names.some((n) => n === model || n === want);
}

/** Asks Ollama at `origin` (`http://127.0.0.1:11434`) for its models. Never throws. */
export async function probeOllama(
  origin: string,
  model: string,
  o: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<OllamaProbe> {
  try {
    const res = await (o.fetch ?? fetch)(`${origin}/api/tags`, {
      signal: AbortSignal.timeout(o.timeoutMs ?? 2000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return { reachable: false, error: `it answered HTTP ${res.status} to GET /api/tags` };
    }
    const json = await res.json() as { models?: { name?: unknown }[] };
    const models = (json.models ?? []).map((m) => m.name).filter((n): n is string =>
      typeof n === "string"
    );
    return { reachable: true, models, pulled: hasModel(models, model) };
  } catch (e) {
    return { reachable: false, error: ollamaError(e) };
  }
}

/** The start-up line of the local run, or null when all is well. */
export function ollamaStartLine(origin: string, model: string, p: OllamaProbe): string | null {
  if (!p.reachable) {
    return `no Ollama at ${origin} (${p.error}): joi runs, but answers "I can't answer ` +
      `right now" until one does. Get it at https://ollama.com/download, then run: ` +
      `ollama pull ${model}`;
  }
  if (!p.pulled) {
    return `Ollama at ${origin} does not have ${model} (it has: ` +
      `${p.models.join(", ") || "no model"}): run ollama pull ${model}`;
  }
  return null;
}
