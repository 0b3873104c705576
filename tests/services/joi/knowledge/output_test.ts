/** joi's validation of what retrieve printed: shape, kernel identity, readable folders only. */
import assert from "node:assert/strict";
import { validateRetrieveOutput } from "../../../../services/joi/knowledge/retrieve_output.ts";

const ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const result = (over: Record<string, unknown> = {}) => ({
  id: ID,
  title: "T",
  snippet: "s",
  source: "group/family/x.md",
  accessed_as: "uid:1001",
  category: "general",
  updated_at: "2026-01-01T00:00:00Z",
  folder: "group/family",
  score: -1,
  ...over,
});
const readable = ["group/family", "shared"];

Deno.test("a valid output is accepted and accessed_as becomes the channel user", () => {
  const out = validateRetrieveOutput(
    enc({ status: "ok", results: [result()], truncated: false }),
    "joi-family",
    1001,
    readable,
  );
  assert.ok(typeof out !== "string");
  assert.equal(out.status, "ok");
  assert.equal(out.status === "ok" && out.results[0]!.accessed_as, "joi-family");
});

Deno.test("outputs that are malformed, from another uid or from an unreadable folder are refused", () => {
  const cases: [unknown, RegExp][] = [
    ["not json", /not JSON/],
    [{ status: "error", results: [], truncated: false }, /missing/],
    [{ status: "ok", results: [result({ id: "x" })], truncated: false }, /UUIDv4/],
    [{ status: "ok", results: [result({ title: 5 })], truncated: false }, /title/],
    [
      { status: "ok", results: [result({ accessed_as: "uid:0" })], truncated: false },
      /another uid/,
    ],
    [{
      status: "ok",
      results: [result({ folder: "owner/private", source: "owner/private/x.md" })],
      truncated: false,
    }, /may not read/],
    [
      { status: "ok", results: [result({ source: "owner/private/x.md" })], truncated: false },
      /may not read/,
    ],
    [{
      status: "ok",
      results: [result({ source: "group/family/../../owner/private/x.md" })],
      truncated: false,
    }, /may not read/],
  ];
  for (const [v, re] of cases) {
    const out = validateRetrieveOutput(enc(v), "joi-family", 1001, readable);
    assert.equal(typeof out, "string", JSON.stringify(v));
    assert.match(out as string, re);
  }
});
