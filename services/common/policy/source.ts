/**
 * Where a value came from: maps document paths back to YAML source positions.
 *
 * The loader keeps the parsed `yaml` Document and its LineCounter, so an issue
 * found on plain data (by zod or by a rule) can be reported at the line and
 * column of the node it is about. Validated configs are linked to their source
 * with {@link attachSource}, which lets cross-file checks position their issues
 * without threading documents through every caller.
 *
 * @module
 */
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter } from "yaml";
import type { Node } from "yaml";
import type { Issue } from "./errors.ts";
import { formatPath, type PathSegment } from "./path.ts";

/** A parsed policy file: its name, its document and the line table. */
export interface SourceDoc {
  /** The file name as given to the loader. */
  file: string;
  /** The parsed document (kept for positions). */
  doc: Document.Parsed;
  /** Offsets -> line/column. */
  lineCounter: LineCounter;
}

/**
 * Which part of the node an issue points at: its `value` (default), its `key`
 * (unknown or misnamed keys), or `missing` (a required key that is absent:
 * the deepest existing ancestor's key is used).
 */
export type Anchor = "value" | "key" | "missing";

/** An issue on plain data, before it is positioned in a file. */
export interface RuleIssue {
  /** Path of the node the issue is about. */
  path: PathSegment[];
  /** What is wrong. */
  message: string;
  /** Where to point; `value` when omitted. */
  at?: Anchor;
}

/** A 1-based position. */
export interface Position {
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  col: number;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return undefined;
  return String(key);
}

function deref(node: unknown, doc: Document.Parsed): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function startOf(node: unknown): number | undefined {
  if (node && typeof node === "object" && "range" in node) {
    const range = (node as Node).range;
    if (Array.isArray(range)) return range[0];
  }
  return undefined;
}

/** Returns the source offset of the node at `path` (see {@link Anchor}). */
export function offsetOf(
  src: SourceDoc,
  path: readonly PathSegment[],
  at: Anchor = "value",
): number {
  let node: unknown = deref(src.doc.contents, src.doc);
  let lastKey: unknown = undefined;
  for (const seg of path) {
    let next: unknown = undefined;
    let nextKey: unknown = undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (pair) {
        next = deref(pair.value, src.doc);
        nextKey = pair.key;
        // `key:` with no value: point at the key
        if (next === null || next === undefined) next = pair.key;
      }
    } else if (isSeq(node) && typeof seg === "number") {
      next = deref(node.items[seg], src.doc);
    }
    if (next === undefined) {
      return startOf(lastKey) ?? startOf(node) ?? 0;
    }
    node = next;
    lastKey = nextKey;
  }
  if (at === "key" || at === "missing") {
    const k = startOf(lastKey);
    if (k !== undefined) return k;
  }
  return startOf(node) ?? 0;
}

/** Converts an offset to a 1-based line and column. */
export function positionAt(src: SourceDoc, offset: number): Position {
  const { line, col } = src.lineCounter.linePos(offset);
  return { line, col };
}

/** The document path of the deepest node containing `offset` (for YAML errors). */
export function pathAtOffset(src: SourceDoc, offset: number): PathSegment[] {
  const path: PathSegment[] = [];
  let node: unknown = src.doc.contents;
  const within = (n: unknown): boolean => {
    if (!n || typeof n !== "object" || !("range" in n)) return false;
    const r = (n as Node).range;
    return Array.isArray(r) && offset >= r[0] && offset < Math.max(r[2], r[1] + 1);
  };
  for (let depth = 0; depth < 64; depth++) {
    if (isMap(node)) {
      let found: unknown = undefined;
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = keyText(pair.key);
        if (k === undefined) continue;
        if (within(pair.key)) return [...path, k];
        if (within(pair.value)) {
          path.push(k);
          found = pair.value;
          break;
        }
      }
      if (found === undefined) return path;
      node = found;
    } else if (isSeq(node)) {
      const i = node.items.findIndex((item) => within(item));
      if (i < 0) return path;
      path.push(i);
      node = node.items[i];
    } else {
      return path;
    }
  }
  return path;
}

/** Positions a rule issue in its source file. */
export function locate(src: SourceDoc, issue: RuleIssue): Issue {
  const { line, col } = positionAt(src, offsetOf(src, issue.path, issue.at));
  return { file: src.file, line, col, path: formatPath(issue.path), message: issue.message };
}

const sources = new WeakMap<object, SourceDoc>();

/** Links a validated config object to the document it was parsed from. */
export function attachSource<T extends object>(config: T, src: SourceDoc): T {
  sources.set(config, src);
  return config;
}

/** The document a config was parsed from, if it was loaded by the loader. */
export function sourceOf(config: object): SourceDoc | undefined {
  return sources.get(config);
}

/**
 * Positions a rule issue about `config`: at its source node when the config
 * was loaded from a file, else at line 0, column 0 of `fallbackFile`.
 */
export function locateIn(config: object, fallbackFile: string, issue: RuleIssue): Issue {
  const src = sourceOf(config);
  if (src) return locate(src, issue);
  return {
    file: fallbackFile,
    line: 0,
    col: 0,
    path: formatPath(issue.path),
    message: issue.message,
  };
}
