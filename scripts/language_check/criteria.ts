/**
 * The Slovak acceptance criteria of joi-architecture-v2.md, run against a
 * model: the question sets are data (`scripts/data/slovak_acceptance.json`),
 * the pass marks are the document's, and each row is graded by
 * {@link ../../services/common/language.ts}. The "mixed language" row is asked under joi's own
 * Slovak system prompt, exactly as joi would ask it once `household.language`
 * is `sk`; the others under the item set's short instruction.
 *
 * Generation fluency needs a native speaker: the paragraphs are checked
 * automatically to be Slovak prose, and then rated by a person (`ratings`);
 * without ratings the row cannot pass.
 *
 * @module
 */
import { z } from "zod";
import { channelOfRecipient } from "../../services/common/policy/household.ts";
import { systemMessage } from "../../services/joi/agent/prompt.ts";
import type { ChatMessage } from "../../services/joi/llm/tokens.ts";
import {
  answers,
  detectLanguage,
  type LetterTally,
  SLOVAK_LETTERS,
  systematicErrors,
  tallyDiacritics,
  words,
} from "../../services/common/language.ts";

const count = z.object({ at_least: z.int().positive(), of: z.int().positive() }).strict();
const set = <T extends z.ZodType, P extends z.ZodType>(item: T, pass: P) =>
  z.object({
    criteria: z.string().min(1),
    pass,
    instruction: z.string().min(1).optional(),
    items: z.array(item).min(1),
  }).strict();
const question = z.object({ q: z.string().min(1) }).strict();
const answered = z.object({ q: z.string().min(1), expect: z.string().min(1) }).strict();

/** The shipped question sets. */
export const QuestionSetsSchema = z.object({
  source: z.string(),
  comprehension: set(answered, count),
  fluency: set(question, count),
  mixed_language: set(question, count),
  diacritics: set(
    answered,
    z.object({ no_systematic_errors: z.literal(true), letters: z.string() }).strict(),
  ),
  home_vocabulary: set(answered, count),
}).strict();

/** Validated question sets. */
export type QuestionSets = z.infer<typeof QuestionSetsSchema>;

/** Reads and validates the question sets; throws naming the file and field. */
export async function loadQuestionSets(path: string): Promise<QuestionSets> {
  const r = QuestionSetsSchema.safeParse(JSON.parse(await Deno.readTextFile(path)));
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`${path}: ${i?.path.join(".") || "(root)"}: ${i?.message}`);
  }
  return r.data;
}

/** Asks the model one chat; resolves with its text. */
export type Ask = (messages: ChatMessage[]) => Promise<string>;

/** One question asked and how it was graded. */
export interface Exchange {
  q: string;
  reply: string;
  ok: boolean;
  note?: string | undefined;
}

/** One row of the table. */
export interface RowResult {
  /** The document's test name. */
  test: string;
  /** The document's criteria, with the pass mark. */
  criteria: string;
  /** What the model achieved. */
  result: string;
  /** `PASS`, `FAIL`, or `RATE` (waiting for a native speaker's ratings). */
  verdict: "PASS" | "FAIL" | "RATE";
  /** Every question and answer. */
  exchanges: Exchange[];
}

/** Options of {@link runCriteria}. */
export interface RunOptions {
  sets: QuestionSets;
  ask: Ask;
  /**
   * A native speaker's ratings of the fluency paragraphs, in order
   * (`true` = natural). Asked for by {@link RunOptions.rate} when absent.
   */
  ratings?: boolean[];
  /** Asks a person to rate the paragraphs (interactive runs). */
  rate?: (paragraphs: string[]) => Promise<boolean[] | undefined>;
}

const system = (content: string): ChatMessage => ({ role: "system", content });
const user = (content: string): ChatMessage => ({ role: "user", content });

async function askAll(
  ask: Ask,
  items: readonly { q: string }[],
  messages: (q: string) => ChatMessage[],
): Promise<string[]> {
  const out: string[] = [];
  for (const it of items) {
    try {
      out.push((await ask(messages(it.q))).trim());
    } catch (e) {
      out.push(`(no answer: ${(e as Error).message})`);
    }
  }
  return out;
}

function counted(
  test: string,
  criteria: string,
  pass: { at_least: number; of: number },
  exchanges: Exchange[],
  unit: string,
): RowResult {
  const ok = exchanges.filter((e) => e.ok).length;
  return {
    test,
    criteria: `${criteria} (${pass.at_least}/${pass.of})`,
    result: `${ok}/${exchanges.length} ${unit}`,
    verdict: ok >= pass.at_least && exchanges.length >= pass.of ? "PASS" : "FAIL",
    exchanges,
  };
}

/** Runs the five rows, in the document's order. */
export async function runCriteria(o: RunOptions): Promise<RowResult[]> {
  const { sets, ask } = o;
  const rows: RowResult[] = [];

  rows.push(await answeredRow(ask, "Basic comprehension", sets.comprehension));

  rows.push(await fluencyRow(o));

  const m = sets.mixed_language;
  // exactly what joi sends once household.language is sk
  const joiSystem = systemMessage({
    language: "sk",
    conversation: `a private chat with owner (channel ${channelOfRecipient("owner", "private")})`,
    homeContext: [],
    knowledge: [],
    facts: [],
    budget: 2048,
  });
  const mReplies = await askAll(ask, m.items, (q) => [joiSystem, user(q)]);
  rows.push(counted(
    "Mixed language",
    m.criteria,
    m.pass,
    m.items.map((it, i) => {
      const lang = detectLanguage(mReplies[i]!);
      return { q: it.q, reply: mReplies[i]!, ok: lang === "sk", note: `reply language: ${lang}` };
    }),
    "answered in Slovak",
  ));

  const d = sets.diacritics;
  const dReplies = await askAll(ask, d.items, (q) => [system(d.instruction ?? ""), user(q)]);
  const tally = new Map<string, LetterTally>();
  const dEx = d.items.map((it, i) => {
    const before = new Map([...tally].map(([k, v]) => [k, { ...v }]));
    tallyDiacritics(dReplies[i]!, it.expect, tally);
    const missed = [...tally].filter(([k, v]) => v.right === (before.get(k)?.right ?? 0));
    const ok = words(it.expect).every((w) => words(dReplies[i]!).includes(w));
    return {
      q: it.q,
      reply: dReplies[i]!,
      ok,
      note: ok
        ? undefined
        : `expected: ${it.expect}; letters missed: ${missed.map(([k]) => k).join(" ") || "none"}`,
    };
  });
  const systematic = systematicErrors(tally);
  const scored = [...SLOVAK_LETTERS].filter((l) => tally.has(l));
  rows.push({
    test: "Diacritics",
    criteria: `${d.criteria} (no systematic errors)`,
    result: systematic.length === 0
      ? `${scored.length}/${scored.length} letters right`
      : `systematic errors: ${systematic.join(" ")}`,
    verdict: systematic.length === 0 && scored.length === SLOVAK_LETTERS.length ? "PASS" : "FAIL",
    exchanges: dEx,
  });

  rows.push(await answeredRow(ask, "Home context vocab", sets.home_vocabulary));
  return rows;
}

/** A row of questions with expected answers, counted against its pass mark. */
async function answeredRow(
  ask: Ask,
  test: string,
  set: QuestionSets["comprehension"],
): Promise<RowResult> {
  const replies = await askAll(ask, set.items, (q) => [system(set.instruction ?? ""), user(q)]);
  const exchanges = set.items.map((it, i) => ({
    q: it.q,
    reply: replies[i]!,
    ok: answers(replies[i]!, it.expect),
  }));
  return counted(test, set.criteria, set.pass, exchanges, "correct");
}

async function fluencyRow(o: RunOptions): Promise<RowResult> {
  const f = o.sets.fluency;
  const replies = await askAll(o.ask, f.items, (q) => [system(f.instruction ?? ""), user(q)]);
  // automatic pre-check: Slovak prose of at least two sentences and 25 words
  const prose = replies.map((r) =>
    detectLanguage(r) === "sk" && words(r).length >= 25 &&
    (r.match(/[.!?](\s|$)/g) ?? []).length >= 2
  );
  const ratings = o.ratings ?? await o.rate?.(replies);
  const exchanges = f.items.map((it, i) => ({
    q: it.q,
    reply: replies[i]!,
    ok: prose[i]! && (ratings?.[i] ?? false),
    note: !prose[i]
      ? "not Slovak prose (automatic check)"
      : ratings === undefined
      ? "waiting for a native speaker's rating"
      : ratings[i]
      ? "rated natural"
      : "rated not natural",
  }));
  const criteria = `${f.criteria} (${f.pass.at_least}/${f.pass.of})`;
  const slovak = prose.filter(Boolean).length;
  if (ratings === undefined) {
    return {
      test: "Generation fluency",
      criteria,
      result: `${slovak}/${replies.length} Slovak prose; not rated`,
      verdict: slovak < f.pass.at_least ? "FAIL" : "RATE",
      exchanges,
    };
  }
  const row = counted("Generation fluency", f.criteria, f.pass, exchanges, "rated natural");
  if (ratings.length !== replies.length) {
    return {
      ...row,
      result: `${ratings.length} ratings for ${replies.length} paragraphs`,
      verdict: "FAIL",
    };
  }
  return row;
}

/** The table, as Markdown, with an overall line. */
export function renderTable(rows: RowResult[]): string {
  const head = ["Test", "Criteria", "Result", "Pass/Fail"];
  const body = rows.map((
    r,
  ) => [r.test, r.criteria, r.result, r.verdict === "RATE" ? "NOT RATED" : r.verdict]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    line(head),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...body.map(line),
  ].join("\n");
}

/** `pass`, `fail`, or `unrated` (everything else passed, fluency is not rated yet). */
export function overall(rows: RowResult[]): "pass" | "fail" | "unrated" {
  if (rows.some((r) => r.verdict === "FAIL")) return "fail";
  return rows.some((r) => r.verdict === "RATE") ? "unrated" : "pass";
}
