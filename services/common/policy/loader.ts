/**
 * The one loader of every policy file.
 *
 * Parses YAML with source positions (duplicate keys are errors), validates
 * with the file's strict zod schema, runs the file's own rules, and maps every
 * issue back to `file:line:col: path: message`. {@link loadPolicies} then runs
 * the cross-file checks. All issues are collected before anything is thrown.
 * Loaded configs are deeply frozen: a reload builds a new object.
 *
 * @module
 */
import type { z } from "zod";
import { crossCheck } from "./cross_checks.ts";
import { type Issue, PolicyError } from "./errors.ts";
import {
  isPolicyName,
  type Policies,
  policyFileNames,
  type PolicyName,
  policyNames,
  policyRulesByName,
  policySchemas,
} from "./files.ts";
import { effectiveInfra, type Infra } from "./infra.ts";
import { formatPath, type PathSegment, ROOT_PATH } from "./path.ts";
import { decodeYamlBytes, parseYaml, readYamlBytes, type YamlProblem } from "./parse_yaml.ts";
import {
  attachSource,
  locate,
  pathAtOffset,
  positionAt,
  type RuleIssue,
  type SourceDoc,
} from "./source.ts";
import { fromZodIssues } from "./zod_issues.ts";

/** Result of parsing one file without throwing. */
export interface ParseResult<N extends PolicyName> {
  /** The validated, frozen config; `undefined` when there were issues. */
  config?: Policies[N];
  /** Every issue found, positioned. */
  issues: Issue[];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function yamlIssues(src: SourceDoc, problems: readonly YamlProblem[]): Issue[] {
  const out: Issue[] = [];
  for (const p of problems) {
    const { line, col } = positionAt(src, p.offset);
    const path = src.doc.contents ? pathAtOffset(src, p.offset) : [];
    const message = p.plain ? p.message : `YAML: ${p.message}`;
    out.push({ file: src.file, line, col, path: formatPath(path), message });
  }
  if (out.length > 0) return out;
  for (const e of [...src.doc.errors, ...src.doc.warnings].slice(0, 50)) {
    const offset = e.pos[0];
    const { line, col } = positionAt(src, offset);
    const path = pathAtOffset(src, offset);
    out.push({ file: src.file, line, col, path: formatPath(path), message: `YAML: ${e.message}` });
  }
  return out;
}

/**
 * Finds `__proto__` keys. zod drops them from records without a word, and a
 * consumer indexing a plain object with one would reach its prototype: they
 * are refused outright.
 */
function protoKeys(value: unknown, path: PathSegment[]): RuleIssue[] {
  if (value === null || typeof value !== "object") return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => protoKeys(v, [...path, i]));
  const out: RuleIssue[] = [];
  for (const key of Object.keys(value)) {
    const here = [...path, key];
    if (key === "__proto__") {
      out.push({
        path: here,
        at: "key",
        message: `unknown key "__proto__" (not allowed anywhere)`,
      });
    } else out.push(...protoKeys((value as Record<string, unknown>)[key], here));
  }
  return out;
}

/**
 * Parses and validates one YAML text against `schema`, then `rules` on the
 * validated value, without throwing: returns the (deeply frozen) value or
 * every issue, positioned `file:line:col`. The one path from YAML text to a
 * config: policy files and the mesh's own `mesh.yaml` both go through it.
 * `filename` is used in issues only.
 */
export function checkYamlText<T>(
  schema: z.ZodType<T>,
  rules: (config: T) => RuleIssue[],
  text: string,
  filename: string,
  empty?: unknown,
): { config?: T; issues: Issue[] } {
  const { doc, lineCounter, problems } = parseYaml(text);
  const src: SourceDoc = { file: filename, doc, lineCounter };
  const syntax = yamlIssues(src, problems);
  if (syntax.length > 0) return { issues: syntax };

  let data: unknown;
  try {
    // parseYaml bounded the expansion of every alias already
    data = doc.contents === null && empty !== undefined ? empty : doc.toJS({ maxAliasCount: -1 });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return {
      issues: [{ file: filename, line: 1, col: 1, path: ROOT_PATH, message: `YAML: ${message}` }],
    };
  }
  const proto = protoKeys(data, []);
  if (proto.length > 0) return { issues: proto.map((i) => locate(src, i)) };
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    return { issues: fromZodIssues(parsed.error.issues, data, schema).map((i) => locate(src, i)) };
  }
  const config = parsed.data;
  const found = rules(config);
  if (found.length > 0) return { issues: found.map((i) => locate(src, i)) };
  if (config !== null && typeof config === "object") attachSource(config, src);
  return { config: deepFreeze(config), issues: [] };
}

/**
 * Parses and validates one policy text without throwing: returns the config
 * or every issue. `filename` is used in issues only.
 */
export function checkPolicyText<N extends PolicyName>(
  name: N,
  text: string,
  filename: string,
): ParseResult<N> {
  if (!isPolicyName(name)) {
    throw new TypeError(
      `unknown policy name ${JSON.stringify(name)} (known: ${policyNames.join(", ")})`,
    );
  }
  return checkYamlText(
    policySchemas[name] as z.ZodType<Policies[N]>,
    policyRulesByName[name] as (c: Policies[N]) => RuleIssue[],
    text,
    filename,
  );
}

/**
 * Parses and validates one policy text (schema and the file's own rules).
 * Throws {@link PolicyError} listing every issue.
 */
export function parsePolicyText<N extends PolicyName>(
  name: N,
  text: string,
  filename: string,
): Policies[N] {
  const { config, issues } = checkPolicyText(name, text, filename);
  if (config === undefined) throw new PolicyError(issues);
  return config;
}

function readIssue(file: string, e: unknown): Issue {
  const reason = e instanceof Deno.errors.NotFound
    ? "file not found"
    : e instanceof Deno.errors.PermissionDenied
    ? "permission denied (is the folder in the program's --allow-read?)"
    : e instanceof Error
    ? e.message
    : String(e);
  return { file, line: 1, col: 1, path: ROOT_PATH, message: `cannot read the file: ${reason}` };
}

/** A YAML file's text, or the issue that kept it from being read (`missing`: it does not exist). */
export type ReadResult = { text: string } | { text?: undefined; issue: Issue; missing: boolean };

/**
 * Reads a YAML file for the loader: at most the size limit, valid UTF-8
 * (the first bad byte is named by line and column), or an issue.
 */
export function readYamlText(file: string): ReadResult {
  let bytes: Uint8Array;
  try {
    bytes = readYamlBytes(file);
  } catch (e) {
    return { issue: readIssue(file, e), missing: e instanceof Deno.errors.NotFound };
  }
  const decoded = decodeYamlBytes(bytes);
  if ("text" in decoded) return { text: decoded.text };
  const { line, col, message } = decoded.problem;
  return {
    issue: { file, line, col, path: ROOT_PATH, message: `YAML: ${message}` },
    missing: false,
  };
}

/**
 * Loads one policy file (schema and the file's own rules, no cross-file
 * checks). Throws {@link PolicyError}.
 */
export function loadPolicyFile<N extends PolicyName>(name: N, path: string): Policies[N] {
  const read = readYamlText(path);
  if (read.text === undefined) throw new PolicyError([read.issue]);
  return parsePolicyText(name, read.text, path);
}

function joinPath(dir: string, file: string): string {
  return dir === "" ? file : `${dir.replace(/\/+$/, "")}/${file}`;
}

/**
 * Loads every policy file of `dir` (names in `policyFileNames`), validates
 * each, then runs the cross-file checks. Throws {@link PolicyError} listing
 * every issue of every file.
 */
export function loadPolicies(dir: string): Policies {
  return validateSet(dir, readYamlText);
}

/**
 * Validates a whole policy set given as texts (file name -> text, e.g. files
 * about to be written) as if they lay in `dir`: each file, then the cross-file
 * checks, exactly as {@link loadPolicies}. Throws {@link PolicyError}.
 */
export function parsePolicySet(texts: Readonly<Record<string, string>>, dir: string): Policies {
  return validateSet(dir, (file) => {
    const name = file.slice(file.lastIndexOf("/") + 1);
    const text = Object.hasOwn(texts, name) ? texts[name] : undefined;
    return text !== undefined ? { text } : {
      issue: readIssue(file, new Deno.errors.NotFound(`${name} is not in the set`)),
      missing: true,
    };
  });
}

function validateSet(
  dir: string,
  read: (file: string) => ReadResult,
): Policies {
  const issues: Issue[] = [];
  const loaded: Partial<Record<PolicyName, unknown>> = {};
  for (const name of policyNames) {
    const file = joinPath(dir, policyFileNames[name]);
    const got = read(file);
    if (got.text === undefined) {
      issues.push(got.issue);
      continue;
    }
    const result = checkPolicyText(name, got.text, file);
    issues.push(...result.issues);
    if (result.config !== undefined) loaded[name] = result.config;
  }
  if (issues.length > 0) throw new PolicyError(issues);
  const policies = Object.freeze(loaded as Policies);
  const cross = crossCheck(policies);
  if (cross.length > 0) throw new PolicyError(cross);
  return policies;
}

/**
 * Loads `infra.yml` for the ai-switch: validated with every rule, then made
 * effective (see `effectiveInfra`). Throws {@link PolicyError}.
 */
export function loadInfra(path: string): Infra {
  return deepFreeze(effectiveInfra(loadPolicyFile("infra", path)).infra);
}
