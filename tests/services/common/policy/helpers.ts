/**
 * Test helpers: copies of the shipped policy folder with one edit applied,
 * and the issue lines a load produces.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  formatIssue,
  loadPolicies,
  PolicyError,
  policyFileNames,
} from "../../../../services/common/policy/mod.ts";

/** The shipped policy folder, relative to the repository root. */
export const SHIPPED = "policies";

/** One text edit: `from` must occur exactly once in the file. */
export interface Edit {
  file: string;
  from: string;
  to: string;
}

/** Applies an edit to a text, failing the test when `from` is not there exactly once. */
export function applyEdit(text: string, edit: Edit): string {
  const at = text.indexOf(edit.from);
  assert.ok(at >= 0, `edit of ${edit.file}: ${JSON.stringify(edit.from)} not found`);
  assert.equal(
    text.indexOf(edit.from, at + 1),
    -1,
    `edit of ${edit.file}: ${JSON.stringify(edit.from)} occurs twice`,
  );
  return text.slice(0, at) + edit.to + text.slice(at + edit.from.length);
}

/** Copies the shipped policies to a fresh temp dir, applying `edits`. */
export async function variantDir(edits: readonly Edit[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "joi-policy-" });
  for (const file of Object.values(policyFileNames)) {
    let text = await Deno.readTextFile(`${SHIPPED}/${file}`);
    for (const e of edits.filter((e) => e.file === file)) text = applyEdit(text, e);
    await Deno.writeTextFile(`${dir}/${file}`, text);
  }
  return dir;
}

/**
 * Loads a variant of the shipped policies and returns the issue lines, with
 * the temp dir shown as `policies`. Fails the test when the load succeeds or
 * throws anything but a PolicyError.
 */
export async function issuesOf(edits: readonly Edit[]): Promise<string[]> {
  const dir = await variantDir(edits);
  try {
    loadPolicies(dir);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    const lines = e.issues.map(formatIssue).map((l) => l.replace(`${dir}/`, "policies/"));
    // the message lists exactly the same issues, one per line
    assert.deepEqual(
      e.message.split("\n").slice(1).map((l) => l.replace(`${dir}/`, "policies/")),
      lines,
    );
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.fail("the variant loaded without an error");
}

/** Runs `fn`, which must throw a PolicyError, and returns that error. */
export function policyErrorOf(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PolicyError) return e;
    throw e;
  }
  assert.fail("expected a PolicyError, but nothing was thrown");
}
