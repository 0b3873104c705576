/**
 * `deno task language-check [--model NAME] [--ratings yynyy] [--verbose]`:
 * runs the Slovak acceptance criteria of joi-architecture-v2.md against the
 * configured model (llm.yaml's `primary_model`, or `--model` to try a
 * candidate), prints the table with pass/fail per row, and records the result
 * in `<state-dir>/language_check.json` (joi reports it on /health and warns
 * when `household.language: sk` runs on a model without a passing record).
 *
 * It is what a household runs before setting `household.language: sk`. The
 * fluency row needs a native speaker: give the verdicts with
 * `--ratings=yynyy` (one y/n per paragraph, in order), or answer the
 * questions when run in a terminal.
 *
 * Exit status: 0 every row passed, 1 a row failed or is not rated, 2 usage or
 * configuration error.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../services/common/policy/mod.ts";
import { LANGUAGE_CHECK_FILE } from "../services/joi/agent/language_check.ts";
import { LlmClient } from "../services/joi/llm/client.ts";
import {
  loadQuestionSets,
  overall,
  renderTable,
  type RowResult,
  runCriteria,
} from "./language_check/criteria.ts";

const USAGE = "usage: deno task language-check [--model NAME] [--ratings yynyy] [--verbose]";

/** The record joi reads (`<state-dir>/language_check.json`). */
export interface LanguageCheckRecord {
  language: "sk";
  model: string;
  result: "pass" | "fail" | "unrated";
  at: string;
  rows: { test: string; result: string; verdict: string }[];
}

function parseRatings(s: string | undefined): boolean[] | undefined {
  if (s === undefined) return undefined;
  if (!/^[yn]+$/i.test(s)) {
    throw new Error(`--ratings=${s}: give one y (natural) or n (not natural) per paragraph`);
  }
  return [...s.toLowerCase()].map((c) => c === "y");
}

function rateInTerminal(paragraphs: string[]): Promise<boolean[] | undefined> {
  if (!Deno.stdin.isTerminal()) return Promise.resolve(undefined);
  const out: boolean[] = [];
  console.log("\nGeneration fluency: rate each paragraph as a native Slovak speaker would.\n");
  for (const [i, p] of paragraphs.entries()) {
    console.log(`--- paragraph ${i + 1} of ${paragraphs.length} ---\n${p}\n`);
    const a = prompt("Natural Slovak? [y/n]")?.trim().toLowerCase();
    out.push(a === "y" || a === "yes" || a === "a" || a === "áno");
  }
  return Promise.resolve(out);
}

function details(rows: RowResult[], all: boolean): string {
  const lines: string[] = [];
  for (const r of rows) {
    for (const e of r.exchanges) {
      if (!all && e.ok) continue;
      lines.push(
        `[${r.test}] ${e.ok ? "ok" : "WRONG"}: ${e.q}\n  reply: ${e.reply.replace(/\s+/g, " ")}` +
          (e.note ? `\n  ${e.note}` : ""),
      );
    }
  }
  return lines.join("\n");
}

async function main(): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        "config-dir": { type: "string" },
        "state-dir": { type: "string" },
        "llm-url": { type: "string" },
        "questions": { type: "string", default: "scripts/data/slovak_acceptance.json" },
        "model": { type: "string" },
        "ratings": { type: "string" },
        "verbose": { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    console.error(`language-check: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!v["config-dir"] || !v["state-dir"]) {
    console.error(`language-check: --config-dir and --state-dir are required\n${USAGE}`);
    return 2;
  }
  let ratings: boolean[] | undefined;
  let llm;
  let sets;
  try {
    ratings = parseRatings(v.ratings);
    llm = loadPolicyFile("llm", `${v["config-dir"]}/llm.yaml`);
    sets = await loadQuestionSets(v.questions);
  } catch (e) {
    console.error(`language-check: ${(e as Error).message}`);
    return 2;
  }
  const model = v.model ?? llm.primary_model;
  let client: LlmClient;
  try {
    client = new LlmClient({
      config: { ...llm, primary_model: model, fallback_models: [] },
      ...(v["llm-url"] ? { endpoint: v["llm-url"] } : {}),
    });
  } catch (e) {
    console.error(`language-check: ${(e as Error).message}`);
    return 2;
  }
  console.log(`Slovak acceptance criteria (${sets.source})`);
  console.log(`model ${model} at ${client.endpoint}\n`);
  const rows = await runCriteria({
    sets,
    ask: async (messages) => (await client.chat(messages, { maxTokens: 400 })).content,
    ...(ratings ? { ratings } : {}),
    rate: rateInTerminal,
  });
  console.log(renderTable(rows));
  const result = overall(rows);
  console.log(
    result === "pass"
      ? `\nOverall: PASS. ${model} meets the criteria: household.language may be set to sk.`
      : result === "unrated"
      ? `\nOverall: NOT YET. Every automatic row passed; a native speaker must rate the ` +
        `fluency paragraphs (below): run again with --ratings=yynyy (y = natural).`
      : `\nOverall: FAIL. Keep household.language: en with ${model}.`,
  );
  const shown = details(rows, v.verbose || result === "unrated");
  if (shown) console.log(`\n${shown}`);
  const record: LanguageCheckRecord = {
    language: "sk",
    model,
    result,
    at: new Date().toISOString(),
    rows: rows.map((r) => ({ test: r.test, result: r.result, verdict: r.verdict })),
  };
  try {
    await Deno.mkdir(v["state-dir"], { recursive: true });
    await Deno.writeTextFile(
      `${v["state-dir"]}/${LANGUAGE_CHECK_FILE}`,
      JSON.stringify(record, null, 2) + "\n",
      { mode: 0o640 },
    );
  } catch (e) {
    console.error(`language-check: result not recorded: ${(e as Error).message}`);
  }
  return result === "pass" ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
