import assert from "node:assert/strict";
import fc from "fast-check";
import { type LineItem, LineSplitter } from "../../../services/common/line_reader.ts";

const enc = new TextEncoder();

/** What the splitter must produce for `lines` (each `\n`-terminated) under `max`. */
function expected(lines: string[], max: number): LineItem[] {
  return lines.map((l) => {
    const bytes = enc.encode(l).length;
    return bytes <= max ? { line: l } : { skipped: bytes, head: "", tail: "" };
  });
}

function shape(items: LineItem[]) {
  return items.map((i) => ("line" in i ? i : { skipped: i.skipped, head: "", tail: "" }));
}

Deno.test("line splitter: any chunking gives the same lines; long ones are skipped with their size", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, "")),
          fc.integer({ min: 50, max: 3000 }).map((n) => "é".repeat(n)),
        ),
        { maxLength: 20 },
      ),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 10 }),
      (lines, cuts) => {
        const max = 100;
        const bytes = enc.encode(lines.map((l) => l + "\n").join(""));
        const s = new LineSplitter({ maxLineBytes: max, terminators: "lf" });
        const out: LineItem[] = [];
        let off = 0;
        let k = 0;
        while (off < bytes.length) {
          const n = cuts[k++ % cuts.length]!;
          out.push(...s.push(bytes.subarray(off, off + n)));
          off += n;
          assert.ok(s.buffered <= max, "never holds more than the limit");
        }
        assert.deepEqual(shape(out), expected(lines, max));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("line splitter: a skipped line keeps its head and tail; CR, CRLF and LF for SSE", () => {
  const s = new LineSplitter({ maxLineBytes: 16, terminators: "any", headBytes: 8, tailBytes: 4 });
  const out = [
    ...s.push(enc.encode('{"topic":"abcdefghijklmnopqrstuvwxyz","id":7}\r')),
    ...s.push(enc.encode("\nshort\rnext\n\n")),
  ];
  assert.deepEqual(out, [
    { skipped: 45, head: '{"topic"', tail: '":7}' },
    { line: "short" },
    { line: "next" },
    { line: "" },
  ]);
});
