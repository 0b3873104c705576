/**
 * YAML parsing that survives any input: every policy file and `mesh.yaml` go
 * through {@link parseYaml}, which never throws and never recurses without a
 * bound. Whatever it refuses comes back as {@link YamlProblem}s (an offset and
 * a reason) for the loader to position as `file:line:col`.
 *
 * What a hostile or broken file can try, and what stops it:
 *
 * - a huge file or scalar: at most {@link YAML_LIMITS}`.bytes` per file and
 *   `.scalarChars` per scalar;
 * - deep nesting (`[[[[...` or thousands of indentation levels): the depth is
 *   measured on the concrete syntax tree, which the `yaml` package builds
 *   without recursion, and refused beyond `.depth` before the recursive
 *   composer ever sees it;
 * - alias recursion (`a: &x [*x]`) and alias explosion (billion laughs): the
 *   document is walked once with memoised sizes; an alias inside its own
 *   anchor, or a document that would expand to more than `.nodes` nodes, is
 *   refused at the alias;
 * - many aliases: the `yaml` package resolves each alias by walking the
 *   document (quadratic: 9,000 aliases took 20 s), so at most `.aliases` are
 *   allowed (counted on the lexer's tokens, before composing), and our own
 *   walk resolves them all in one pass;
 * - merge keys (`<<`), non-scalar keys, tags other than YAML's core ones
 *   (`!!binary`, `!foo`), control characters: refused where they stand;
 * - invalid UTF-8: {@link decodeYamlBytes} names the first bad byte's line and
 *   column instead of silently replacing it.
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
import {
  CST,
  type Document,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseDocument,
  Parser,
} from "yaml";

/** The bounds every YAML text is held to (policy files are a few KiB). */
export const YAML_LIMITS: Readonly<{
  aliases: number;
  bytes: number;
  depth: number;
  nodes: number;
  scalarChars: number;
}> = Object.freeze({
  /** Aliases (`*name`) in one text. */
  aliases: 1_000,
  /** Size of one file, in bytes (UTF-8). */
  bytes: 128 * 1024,
  /** Nesting of collections. */
  depth: 32,
  /** Nodes of the document once every alias is expanded. */
  nodes: 20_000,
  /** Characters of one scalar. */
  scalarChars: 16 * 1024,
});

/** One thing refused in a YAML text: where (offset into the text) and why. */
export interface YamlProblem {
  /** Offset of the offending character or node in the text. */
  offset: number;
  /** What is wrong, e.g. `alias *x refers to a node that contains it`. */
  message: string;
  /** Whether the message is shown as it is (no `YAML:` prefix: not a syntax matter). */
  plain?: boolean;
}

/** A parsed document and its line table. */
export interface ParsedYaml {
  /** The document, with errors and warnings in `doc.errors` / `doc.warnings`. */
  doc: Document.Parsed;
  /** Offsets -> 1-based line and column. */
  lineCounter: LineCounter;
  /**
   * What the limits above refused. When not empty, `doc` may be an empty
   * placeholder (the text was never composed) and must not be used.
   */
  problems: YamlProblem[];
}

// YAML 1.2 forbids these (c-printable): C0 controls but TAB LF CR, DEL, C1 but NEL,
// U+FFFE/FFFF; lone surrogates cannot come from UTF-8 but can from a JS string.
const FORBIDDEN_CHAR =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u0084\u0086-\u009F\uFFFE\uFFFF]|\p{Cs}/u;

/** The tags a policy file may spell out: YAML 1.2's core schema, nothing that builds objects. */
const CORE_TAGS = new Set(
  ["str", "int", "float", "bool", "null", "seq", "map"].map((t) => `tag:yaml.org,2002:${t}`),
);

/** At most this many problems are reported for one text (the first ones, in order). */
const MAX_PROBLEMS = 50;

function hexCode(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Checks what can be checked on the raw text: its size and its characters. */
function textProblems(text: string): YamlProblem[] {
  // a JS string has at most 3 UTF-8 bytes per UTF-16 unit: check cheaply first
  if (text.length * 3 > YAML_LIMITS.bytes) {
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > YAML_LIMITS.bytes) {
      return [{
        offset: 0,
        message: `the text is ${bytes} bytes, more than the ${YAML_LIMITS.bytes} a YAML ` +
          `file may have here`,
      }];
    }
  }
  const bad = FORBIDDEN_CHAR.exec(text);
  if (bad) {
    return [{
      offset: bad.index,
      message: `the character ${hexCode(bad[0])} is not allowed in YAML (control or ` +
        `non-character): remove it`,
    }];
  }
  return [];
}

/** The children of a CST token, each one level deeper when the token is a collection. */
function cstChildren(token: CST.Token): CST.Token[] {
  switch (token.type) {
    case "document":
      return token.value ? [token.value] : [];
    case "block-map":
    case "flow-collection":
    case "block-seq": {
      const out: CST.Token[] = [];
      for (const item of token.items) {
        if ("key" in item && item.key) out.push(item.key);
        if (item.value) out.push(item.value);
      }
      return out;
    }
    default:
      return [];
  }
}

function isCstCollection(token: CST.Token): boolean {
  return token.type === "block-map" || token.type === "block-seq" ||
    token.type === "flow-collection";
}

/**
 * A linear first pass on the lexer's tokens, stopping at the first excess:
 * flow brackets opened beyond the depth limit, more block indicators
 * (`- - - x`) on one line than the limit, or more aliases than allowed. The
 * parser's (and the alias resolver's) cost grows faster than linearly on such
 * input, so it must not see it.
 */
function lexProblems(text: string): YamlProblem[] {
  let offset = 0;
  let flow = 0;
  let onLine = 0;
  let aliases = 0;
  for (const token of new Lexer().lex(text)) {
    const type = CST.tokenType(token);
    switch (type) {
      case "alias":
        if (++aliases > YAML_LIMITS.aliases) {
          return [{
            offset,
            message: `more than ${YAML_LIMITS.aliases} aliases: write the values out`,
          }];
        }
        break;
      case "flow-map-start":
      case "flow-seq-start":
        if (++flow > YAML_LIMITS.depth) return [tooDeep(offset)];
        break;
      case "flow-map-end":
      case "flow-seq-end":
        flow = Math.max(0, flow - 1);
        break;
      case "seq-item-ind":
      case "explicit-key-ind":
      case "map-value-ind":
        // inside brackets these separate entries (`{a: 1, b: 2}`): only the flow depth counts
        if (flow === 0 && ++onLine > YAML_LIMITS.depth) return [tooDeep(offset)];
        break;
      case "newline":
        onLine = 0;
        break;
    }
    // the lexer's markers (start of document, next token is a scalar, end of flow)
    // are not in the text (textProblems refused those control characters in it)
    if (type !== "doc-mode" && type !== "scalar" && type !== "flow-error-end") {
      offset += token.length;
    }
  }
  return [];
}

function tooDeep(offset: number): YamlProblem {
  return {
    offset,
    message: `nested more than ${YAML_LIMITS.depth} levels deep: flatten the structure`,
  };
}

/**
 * Measures nesting on the concrete syntax tree (built by a stack machine, no
 * recursion) and returns the first token deeper than the limit.
 */
function depthProblems(text: string): YamlProblem[] {
  const lexed = lexProblems(text);
  if (lexed.length > 0) return lexed;
  const stack: [CST.Token, number][] = [];
  for (const top of new Parser().parse(text)) stack.push([top, 0]);
  let nodes = 0;
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!;
    const here = isCstCollection(token) ? depth + 1 : depth;
    if (here > YAML_LIMITS.depth) return [tooDeep(token.offset)];
    if (++nodes > YAML_LIMITS.nodes) {
      return [{
        offset: token.offset,
        message: `more than ${YAML_LIMITS.nodes} values: this is not a policy file`,
      }];
    }
    for (const child of cstChildren(token)) stack.push([child, here]);
  }
  return [];
}

function startOf(node: Node): number {
  return node.range?.[0] ?? 0;
}

function aliasSource(node: Node): string {
  return isAlias(node) ? node.source : "";
}

/**
 * Each alias's anchored node, found in one walk in document order (an alias
 * names the closest anchor before it), instead of `Alias.resolve`, which
 * walks the whole document for every alias.
 */
function aliasTargets(doc: Document.Parsed): Map<Node, Node> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Node, Node>();
  const walk = (node: unknown): void => {
    if (!node || typeof node !== "object") return;
    const n = node as Node;
    if (isAlias(n)) {
      const target = anchors.get(n.source);
      if (target) targets.set(n, target);
      return;
    }
    if (n.anchor) anchors.set(n.anchor, n);
    if (isCollection(n)) {
      for (const item of n.items) {
        if (isPair(item)) {
          walk(item.key);
          walk(item.value);
        } else walk(item);
      }
    }
  };
  walk(doc.contents);
  return targets;
}

/**
 * The key a mapping key becomes in the loaded object: `1` and `'1'`, `~` and
 * `""` are different YAML keys but one property, so they count as duplicates.
 */
function loadedKey(value: unknown): string {
  return value === null || value === undefined ? "" : String(value);
}

/**
 * Walks the composed document (depth already bounded): tags, keys, scalar
 * sizes, alias recursion and the size of the document with aliases expanded.
 */
function documentProblems(doc: Document.Parsed, lines: LineCounter): YamlProblem[] {
  const problems: YamlProblem[] = [];
  const targets = aliasTargets(doc);
  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  let expanded = 0;
  let exploded = false;

  const sizeOf = (node: unknown): number => {
    if (!node || typeof node !== "object") return 0;
    const n = node as Node;
    if (isAlias(n)) {
      const target = targets.get(n);
      if (!target) {
        problems.push({
          offset: startOf(n),
          message: `alias *${aliasSource(n)} has no anchor &${aliasSource(n)} before it: ` +
            `define the anchor first or write the value out`,
        });
        return 1;
      }
      if (open.has(target)) {
        problems.push({
          offset: startOf(n),
          message: `alias *${aliasSource(n)} refers to a node that contains it ` +
            `(a recursive structure): write the value out`,
        });
        return 1;
      }
      return sizeOf(target);
    }
    const known = sizes.get(n);
    if (known !== undefined) return known;
    let size = 1;
    const tag = n.tag;
    if (tag !== undefined && !CORE_TAGS.has(tag)) {
      problems.push({
        offset: startOf(n),
        message: `the tag ${
          tag.replace(/^tag:yaml\.org,2002:/, "!!")
        } is not allowed: write a plain value`,
      });
    }
    if (isScalar(n)) {
      if (typeof n.value === "string" && n.value.length > YAML_LIMITS.scalarChars) {
        problems.push({
          offset: startOf(n),
          message: `a scalar of ${n.value.length} characters, more than the ` +
            `${YAML_LIMITS.scalarChars} allowed`,
        });
      }
    } else if (isCollection(n)) {
      open.add(n);
      const keys = new Map<string, Node>();
      for (const item of n.items) {
        if (isPair(item)) {
          const key = item.key as Node | null;
          if (key && !isScalar(key)) {
            problems.push({
              offset: startOf(key),
              message: isAlias(key)
                ? "an alias as a mapping key is not allowed: write the key out"
                : "a mapping key must be a plain scalar, not a list or mapping",
            });
          } else if (key && isScalar(key) && key.value === "<<" && key.source === "<<") {
            problems.push({
              offset: startOf(key),
              message: "merge keys (<<) are not supported: write the keys out",
            });
          } else if (key && isScalar(key)) {
            const name = loadedKey(key.value);
            const first = keys.get(name);
            if (first) {
              problems.push({
                offset: startOf(key),
                message: `duplicate key ${JSON.stringify(name)} (first defined at ` +
                  `line ${lines.linePos(startOf(first)).line})`,
                plain: true,
              });
            } else keys.set(name, key);
          }
          size += sizeOf(key) + sizeOf(item.value);
        } else size += sizeOf(item);
        if (exploded || problems.length >= MAX_PROBLEMS) break;
      }
      open.delete(n);
    }
    sizes.set(n, size);
    return size;
  };

  // count every alias's expansion where it stands, so the refusal points at it
  const visitAll = (node: unknown): void => {
    if (exploded || !node || typeof node !== "object") return;
    const n = node as Node;
    if (isAlias(n)) {
      expanded += sizeOf(n);
      if (expanded > YAML_LIMITS.nodes) {
        exploded = true;
        problems.push({
          offset: startOf(n),
          message: `alias *${aliasSource(n)} expands the document beyond ` +
            `${YAML_LIMITS.nodes} nodes (an alias bomb?): write the values out`,
        });
      }
      return;
    }
    expanded++;
    if (isMap(n) || isSeq(n)) {
      open.add(n);
      for (const item of n.items) {
        if (isPair(item)) {
          visitAll(item.key);
          visitAll(item.value);
        } else visitAll(item);
      }
      open.delete(n);
    }
  };
  sizeOf(doc.contents);
  if (problems.length === 0) visitAll(doc.contents);
  return problems;
}

/** Runs `fn` with an empty `process.env` (see the module note). */
function withoutEnv<T>(fn: () => T): T {
  const saved = process.env;
  process.env = {};
  try {
    return fn();
  } finally {
    process.env = saved;
  }
}

function compose(text: string, lineCounter: LineCounter): Document.Parsed {
  return withoutEnv(() =>
    parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: false, // checked in documentProblems: the package's check is quadratic
      strict: true,
      version: "1.2",
      merge: false,
    })
  );
}

/** A refusal before composing: an empty placeholder document and the text's line table. */
function refused(text: string, problems: YamlProblem[]): ParsedYaml {
  const lineCounter = new LineCounter();
  lineCounter.addNewLine(0);
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    lineCounter.addNewLine(i + 1);
  }
  return { doc: compose("", new LineCounter()), lineCounter, problems };
}

/**
 * Parses one YAML 1.2 document strictly: duplicate keys are problems, no merge
 * keys, no tags beyond the core schema, positions kept, and the bounds of
 * {@link YAML_LIMITS} enforced. Never throws on any text.
 */
export function parseYaml(text: string): ParsedYaml {
  const early = textProblems(text);
  if (early.length > 0) return refused(text, early);
  const deep = withoutEnv(() => depthProblems(text));
  if (deep.length > 0) return refused(text, deep);
  const lineCounter = new LineCounter();
  const doc = compose(text, lineCounter);
  const problems = doc.errors.length > 0 ? [] : documentProblems(doc, lineCounter);
  return { doc, lineCounter, problems: problems.slice(0, MAX_PROBLEMS) };
}

/** Offset of the first byte that is not part of a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Result of {@link decodeYamlBytes}. */
export type Decoded =
  | { text: string }
  | { problem: { line: number; col: number; message: string } };

/**
 * Decodes a file's bytes as UTF-8, refusing (rather than replacing) invalid
 * sequences and files over the size limit; a refusal names the line and
 * column of the first bad byte.
 */
export function decodeYamlBytes(bytes: Uint8Array): Decoded {
  if (bytes.length > YAML_LIMITS.bytes) {
    return {
      problem: {
        line: 1,
        col: 1,
        message: `the file is larger than the ${YAML_LIMITS.bytes} bytes a YAML file may ` +
          `have here`,
      },
    };
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad < 0) {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    return { text };
  }
  const before = new TextDecoder().decode(bytes.subarray(0, bad));
  const lines = before.split("\n");
  return {
    problem: {
      line: lines.length,
      col: [...(lines[lines.length - 1] ?? "")].length + 1,
      message: `invalid UTF-8 (byte 0x${
        bytes[bad]!.toString(16).padStart(2, "0")
      } at offset ${bad}): save the file as UTF-8`,
    },
  };
}

/**
 * Reads a YAML file's bytes without reading more than the size limit allows
 * (a 10 GB file costs no more than a small one). Throws what `Deno.open`
 * throws (NotFound, PermissionDenied).
 */
export function readYamlBytes(path: string): Uint8Array {
  const f = Deno.openSync(path, { read: true });
  try {
    const cap = YAML_LIMITS.bytes + 1;
    const buf = new Uint8Array(cap);
    let off = 0;
    while (off < cap) {
      const n = f.readSync(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    f.close();
  }
}
