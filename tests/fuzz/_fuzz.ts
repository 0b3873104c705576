/**
 * The fuzz set's shared pieces: run counts (scaled by `JOI_FUZZ_SCALE`, 10
 * under `deno task fuzz`), the per-parser report line `deno task fuzz` sums
 * up, and mutators that turn real inputs into hostile ones.
 *
 * Every property of the set is: a clear error or a valid result, never a
 * crash, a hang or a 5xx. Not a test file.
 *
 * @module
 */
import fc from "fast-check";

/** How much longer than in CI the properties run (`deno task fuzz` sets 10). */
export const SCALE = (() => {
  const raw = Deno.env.get("JOI_FUZZ_SCALE");
  const n = raw === undefined ? 1 : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : 1;
})();

/** The number of runs for a property whose CI count is `base`. */
export function runs(base: number): number {
  return Math.max(1, Math.round(base * SCALE));
}

/** Prints the line `deno task fuzz` collects: `fuzz: <parser>: <n> runs`. */
export function report(parser: string, n: number): void {
  console.log(`fuzz: ${parser}: ${n} runs`);
}

/**
 * Checks `property` over `arb` for `runs(base)` runs and reports the count.
 * Counterexamples are shrunk and printed with their seed by fast-check.
 */
export function check<T>(
  parser: string,
  arb: fc.Arbitrary<T>,
  property: (value: T) => void,
  base: number,
): void {
  const numRuns = runs(base);
  fc.assert(fc.property(arb, (v) => property(v)), { numRuns });
  report(parser, numRuns);
}

/** {@link check} for async properties (`timeout` ms per run: a hang fails the run). */
export async function checkAsync<T>(
  parser: string,
  arb: fc.Arbitrary<T>,
  property: (value: T) => Promise<void>,
  base: number,
  timeout = 10_000,
): Promise<void> {
  const numRuns = runs(base);
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          property(v),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`hang: no answer in ${timeout} ms`)),
              timeout,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    }),
    { numRuns },
  );
  report(parser, numRuns);
}

/** Tokens that break parsers: YAML/JSON syntax, escapes, format characters, huge numbers. */
export const NASTY = [
  "\u0000",
  "\u001b",
  "\u200b",
  "\u202e",
  "\ufeff",
  "\ud800",
  "\uffff",
  "\n",
  "\r\n",
  "\t",
  "{",
  "}",
  "[",
  "]",
  ":",
  ",",
  '"',
  "'",
  "\\",
  "&a ",
  "*a",
  "<<: ",
  "!!binary ",
  "!x ",
  "---\n",
  "...\n",
  "? ",
  "- ",
  "#",
  "%YAML 1.1\n",
  "|",
  ">",
  "@",
  "`",
  "__proto__",
  "constructor",
  "1e309",
  "-0",
  "NaN",
  "0x1F",
  "9".repeat(40),
  "é",
  "𝔘",
  "<|system|>",
  "https://evil.example/x",
  "evil.example/x",
  "../../etc/passwd",
  "%00",
  "%2e%2e/",
];

/** A string of NASTY tokens and arbitrary characters. */
export const nastyString: fc.Arbitrary<string> = fc.array(
  fc.oneof(
    fc.constantFrom(...NASTY),
    fc.string({ maxLength: 8 }),
    fc.string({ unit: "grapheme", maxLength: 4 }),
  ),
  { maxLength: 12 },
).map((parts) => parts.join(""));

/** One edit of a text: insert, delete, replace or duplicate a slice. */
export const textEdit: fc.Arbitrary<(s: string) => string> = fc.oneof(
  fc.tuple(fc.nat(), nastyString).map(([at, ins]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i);
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 40 })).map(([at, n]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    return s.slice(0, i) + s.slice(i + n);
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 20 }), nastyString).map(([at, n, ins]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    return s.slice(0, i) + ins + s.slice(i + n);
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 60 })).map(([at, n]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    return s.slice(0, i + n) + s.slice(i);
  }),
);

/** `base` with 1 to `max` random edits. */
export function mutated(base: string, max = 4): fc.Arbitrary<string> {
  return fc.array(textEdit, { minLength: 1, maxLength: max })
    .map((edits) => edits.reduce((s, e) => e(s), base));
}

/** Random bytes, half of them invalid UTF-8 sequences. */
export const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 256 }),
  fc.array(fc.constantFrom(0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80, 0xf8, 0xc0, 0xaf), {
    maxLength: 32,
  }).map((a) => new Uint8Array(a)),
);

/** Whether a thrown value is a programming error (a crash) rather than a refusal. */
export function isCrash(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError ||
    e instanceof SyntaxError && !/JSON|Unexpected|position|token/i.test(e.message) ||
    !(e instanceof Error);
}

/** A JSON value with one leaf or key replaced at random. */
export function mutateJson(value: unknown): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 1e308, "", [], {}),
    nastyString,
    fc.integer(),
    fc.double(),
  );
  return fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), leaf, fc.boolean()).map(
    ([walk, replacement, dropKey]) => {
      const copy = structuredClone(value);
      let node: unknown = copy;
      for (let i = 0; i < walk.length; i++) {
        if (node === null || typeof node !== "object") break;
        const keys = Object.keys(node);
        if (keys.length === 0) break;
        const key = keys[walk[i]! % keys.length]!;
        const rec = node as Record<string, unknown>;
        const last = i === walk.length - 1 || rec[key] === null || typeof rec[key] !== "object";
        if (last) {
          if (dropKey) delete rec[key];
          else rec[key] = replacement;
          break;
        }
        node = rec[key];
      }
      return copy;
    },
  );
}

/** `conn.write` may write part of a large buffer: loop until all of it is out. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}
