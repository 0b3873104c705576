/**
 * Issues found in policy files and the error that carries them.
 *
 * Every issue names the file, the 1-based line and column of the offending
 * YAML node, the document path (`recipients.partner.public_readers[1]`) and
 * what is wrong, so an operator can jump straight to it:
 *
 * ```text
 * policies/recipients.yaml:23:9: recipients.partner.public_readers[1]: unknown channel user "joi-famly"
 * ```
 *
 * @module
 */

/** One problem in one policy file, positioned at the offending node. */
export interface Issue {
  /** The file as it was given to the loader (e.g. `policies/recipients.yaml`). */
  file: string;
  /** 1-based line; 0 when the value was not loaded from a file. */
  line: number;
  /** 1-based column; 0 when the value was not loaded from a file. */
  col: number;
  /** Document path, e.g. `recipients.partner.public_readers[1]`; `(root)` for the whole file. */
  path: string;
  /** What is wrong and, where possible, how to fix it. */
  message: string;
}

/** Formats one issue as `file:line:col: path: message`. */
export function formatIssue(issue: Issue): string {
  return `${issue.file}:${issue.line}:${issue.col}: ${issue.path}: ${issue.message}`;
}

/** Orders issues by file, then line, then column (stable for equal positions). */
export function sortIssues(issues: readonly Issue[]): Issue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) =>
      (a.issue.file < b.issue.file ? -1 : a.issue.file > b.issue.file ? 1 : 0) ||
      a.issue.line - b.issue.line || a.issue.col - b.issue.col || a.i - b.i
    )
    .map(({ issue }) => issue);
}

/**
 * Thrown when policy files cannot be loaded. Carries every issue found (the
 * loader does not stop at the first); the message lists them one per line.
 */
export class PolicyError extends Error {
  /** Every issue, sorted by file, line and column. */
  readonly issues: readonly Issue[];

  /** Builds the error from at least one issue. */
  constructor(issues: readonly Issue[]) {
    const sorted = sortIssues(issues);
    const count = sorted.length === 1 ? "1 issue" : `${sorted.length} issues`;
    super(`invalid policy (${count}):\n${sorted.map(formatIssue).join("\n")}`);
    this.name = "PolicyError";
    this.issues = sorted;
  }
}
