/**
 * YAML parsing without environment access.
 *
 * The `yaml` package reads `process.env.LOG_TOKENS` and `LOG_STREAM` on every
 * token to switch on debug printing. Under Deno that is an env permission
 * check: a program without `--allow-env` would fail to load its policies, and
 * a program with it would print policy contents (phone numbers) to stdout if
 * someone set those variables. Parsing therefore runs with an empty
 * `process.env`, restored right after; parsing is synchronous, so no other
 * code observes the swap.
 *
 * @module
 */
import process from "node:process";
import { type Document, LineCounter, parseDocument } from "yaml";

/** A parsed document and its line table. */
export interface ParsedYaml {
  /** The document, with errors and warnings in `doc.errors` / `doc.warnings`. */
  doc: Document.Parsed;
  /** Offsets -> 1-based line and column. */
  lineCounter: LineCounter;
}

/**
 * Parses one YAML 1.2 document strictly: duplicate keys are errors, no merge
 * keys (`<<` is an ordinary, hence unknown, key), positions kept.
 */
export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const saved = process.env;
  process.env = {};
  try {
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      strict: true,
      version: "1.2",
      merge: false,
    });
    return { doc, lineCounter };
  } finally {
    process.env = saved;
  }
}
