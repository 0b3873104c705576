/**
 * `deno task language-check` against the Ollama stand-in, run as its own
 * process with the manifest's flags: a model that answers the question sets
 * correctly passes every row (once a native speaker's ratings are given), one
 * that replies in English to a Slovak message fails the mixed-language row,
 * and the graders catch wrong answers and systematic diacritics errors.
 */
import assert from "node:assert/strict";
import { denoRunArgs, localLayout, programSpec } from "../../../services/common/permissions/mod.ts";
import {
  detectLanguage,
  systematicErrors,
  tallyDiacritics,
} from "../../../services/common/language.ts";
import { loadQuestionSets } from "../../../scripts/language_check/criteria.ts";
import { LlmTestServer, type RecordedRequest } from "../../peers/llm_server.ts";

const sets = await loadQuestionSets("scripts/data/slovak_acceptance.json");

const COMPREHENSION: Record<string, string> = {
  "Koľko je dva plus tri?": "Dva plus tri je päť.",
  "Aké je hlavné mesto Slovenska?": "Hlavné mesto Slovenska je Bratislava.",
  "Koľko dní má jeden týždeň?": "Týždeň má sedem dní.",
  "Akú farbu má v lete tráva?": "V lete je tráva zelená.",
  "Ktorý deň nasleduje po pondelku?": "Po pondelku nasleduje utorok.",
  "Koľko hodín má jeden deň?": "Jeden deň má 24 hodín.",
  "V ktorom ročnom období zvyčajne padá sneh?": "Sneh padá zvyčajne v zime.",
  "Aký je opak slova „teplý“?": "Opak slova teplý je studený.",
  "Koľko nôh má pes?": "Pes má štyri nohy.",
  "Čím sa v dome svieti, keď je tma? Uveď jednu vec.": "Svieti sa lampou alebo svetlom.",
};
const VOCAB: Record<string, string> = {
  teplota: "temperature",
  vlhkosť: "humidity",
  dym: "smoke",
  alarm: "alarm",
  dvere: "door",
  svetlo: "light",
};
const PARAGRAPH = "Ráno v našej rodine je vždy trochu rušné, ale veselé. Mama pripraví raňajky " +
  "a otec zatiaľ zobudí deti, ktoré sa nechcú vstávať. Všetci sa stretneme pri stole, kde sa " +
  "rozprávame o tom, čo nás dnes čaká. Potom si deti zbalia tašky a spolu odchádzame z domu.";

/** A model that knows Slovak; with `englishToSlovak` it answers joi's Slovak chats in English. */
function model(englishToSlovak: boolean) {
  return (r: RecordedRequest): string => {
    const q = r.messages.at(-1)!.content;
    const sys = r.messages[0]!.content;
    if (sys.startsWith("Si Joi")) {
      return englishToSlovak
        ? "Hi! The living room is at 21 degrees right now, and everything looks fine."
        : "Ahoj, v obývačke je teraz 21 stupňov a všetko je v poriadku.";
    }
    if (q in COMPREHENSION) return COMPREHENSION[q]!;
    const d = sets.diacritics.items.find((i) => i.q === q);
    if (d) return d.expect;
    const v = /„(.+)“/.exec(q);
    if (v && sys.startsWith("Answer with one English word")) return VOCAB[v[1]!] ?? "?";
    return PARAGRAPH;
  };
}

async function runTask(server: LlmTestServer, extra: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "joi-langcheck-" });
  const layout = {
    ...localLayout({ varDir: dir }),
    llm: { host: "127.0.0.1", port: Number(new URL(server.origin).port) },
  };
  const out = await new Deno.Command("deno", {
    args: [...denoRunArgs(programSpec("language_check", layout)), ...extra],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  let record: Record<string, unknown> | null = null;
  try {
    record = JSON.parse(await Deno.readTextFile(`${dir}/joi/language_check.json`));
  } catch { /* not written */ }
  await Deno.remove(dir, { recursive: true });
  return { code: out.code, text, stderr: new TextDecoder().decode(out.stderr), record };
}

function row(table: string, test: string): string {
  return table.split("\n").find((l) => l.startsWith(`| ${test}`)) ?? "";
}

Deno.test("language-check: a model that answers correctly passes every row, with the table printed", async () => {
  const server = await LlmTestServer.start({ reply: model(false) });
  try {
    const r = await runTask(server, ["--ratings=yyyyy"]);
    assert.equal(r.code, 0, r.text + r.stderr);
    for (const t of ["Basic comprehension", "Generation fluency", "Mixed language", "Diacritics"]) {
      assert.match(row(r.text, t), /\| PASS\s*\|$/, `${t} passes:\n${r.text}`);
    }
    assert.match(row(r.text, "Home context vocab"), /6\/6 correct .*\| PASS/);
    assert.match(row(r.text, "Basic comprehension"), /10\/10 correct/);
    assert.match(row(r.text, "Diacritics"), /14\/14 letters right/);
    assert.match(r.text, /Overall: PASS/);
    assert.equal(r.record?.result, "pass");
    assert.equal(r.record?.model, "llama3.1:8b-instruct-q4_K_M");
    // 10 + 5 + 5 + 11 + 6 questions, every one asked
    assert.equal(server.requests.length, 37);
  } finally {
    await server.close();
  }
});

Deno.test("language-check: replying in English to Slovak fails the mixed-language row", async () => {
  const server = await LlmTestServer.start({ reply: model(true) });
  try {
    const r = await runTask(server, ["--ratings=yyyyy"]);
    assert.equal(r.code, 1);
    assert.match(row(r.text, "Mixed language"), /0\/5 answered in Slovak .*\| FAIL/);
    assert.match(row(r.text, "Basic comprehension"), /\| PASS/);
    assert.match(r.text, /Overall: FAIL/);
    assert.match(r.text, /reply language: en/);
    assert.equal(r.record?.result, "fail");
    // the mixed-language row is asked under joi's own Slovak system prompt
    const asked = server.requests.filter((q) => q.messages[0]!.content.startsWith("Si Joi"));
    assert.equal(asked.length, 5);
    assert.match(asked[0]!.messages[0]!.content, /Vždy odpovedaj po slovensky/);
  } finally {
    await server.close();
  }
});

Deno.test("language-check: without a native speaker's ratings the result is not yet a pass", async () => {
  const server = await LlmTestServer.start({ reply: model(false) });
  try {
    const r = await runTask(server, []);
    assert.equal(r.code, 1);
    assert.match(row(r.text, "Generation fluency"), /5\/5 Slovak prose; not rated .*NOT RATED/);
    assert.match(r.text, /Overall: NOT YET/);
    assert.ok(r.text.includes(PARAGRAPH), "the paragraphs are shown for rating");
    const bad = await runTask(server, ["--ratings=yynnn"]);
    assert.match(row(bad.text, "Generation fluency"), /2\/5 rated natural .*\| FAIL/);
  } finally {
    await server.close();
  }
});

Deno.test("language-check graders: language of a reply, systematic diacritics errors", () => {
  assert.equal(detectLanguage("Ahoj, v obývačke je teraz 21 stupňov."), "sk");
  assert.equal(detectLanguage("The living room is at 21 degrees right now."), "en");
  assert.equal(detectLanguage("OK 21"), "unknown");
  const tally = new Map();
  for (const it of sets.diacritics.items) {
    // a model that never writes ľ (writes l) but gets everything else right
    tallyDiacritics(it.expect.replaceAll("ľ", "l").replaceAll("Ľ", "L"), it.expect, tally);
  }
  assert.deepEqual(systematicErrors(tally), ["ľ"]);
  const clean = new Map();
  for (const it of sets.diacritics.items) tallyDiacritics(it.expect, it.expect, clean);
  assert.deepEqual(systematicErrors(clean), []);
});
