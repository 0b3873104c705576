/**
 * The long-text helpers on their own: a body prefix and a cut never end
 * inside a character or a grapheme (whatever the text), a cut fits joi's
 * limit as joi's schema counts it (code points), and a file over the
 * reading cap is read up to it on a whole character.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bodyIsPartial,
  capText,
  MAX_LONG_TEXT_BYTES,
  prefixByBytes,
  readLongText,
} from "../../../services/mesh/long_text.ts";
import { inboundMessageSchema } from "../../../services/joi/inbound/schema.ts";

const encoder = new TextEncoder();
const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** True when `prefix` ends between two of `whole`'s graphemes. */
function onGraphemeBoundary(whole: string, prefix: string): boolean {
  if (prefix.length === whole.length || prefix.length === 0) return true;
  return [...segmenter.segment(whole)].some((g) => g.index === prefix.length);
}

/** Text made of what people type: letters with accents (both forms), emoji, flags, ZWJ families. */
const pieces = fc.constantFrom(
  "a",
  " ",
  "ľ",
  "š",
  "c\u030C",
  "ô",
  "🙂",
  "👍🏽",
  "🇸🇰",
  "👨‍👩‍👧‍👦",
  "❤️",
  "\n",
);
const texts = fc.array(pieces, { maxLength: 600 }).map((a) => a.join(""));

Deno.test("prefixByBytes: within the byte limit, a prefix, ending between graphemes", () => {
  fc.assert(
    fc.property(texts, fc.integer({ min: 1, max: 400 }), (text, max) => {
      const p = prefixByBytes(text, max);
      const first = [...segmenter.segment(text)][0]?.segment ?? "";
      // only a first grapheme larger than the whole limit is cut inside
      const inside = encoder.encode(first).length > max && first.startsWith(p);
      if (encoder.encode(p).length > max || !text.startsWith(p)) return false;
      if (inside) return true;
      // between graphemes, and the next grapheme would not have fitted
      return onGraphemeBoundary(text, p) && (p.length === text.length ||
        encoder.encode(text.slice(0, p.length + nextGrapheme(text, p.length))).length > max);
    }),
    { numRuns: 500 },
  );
  // one grapheme larger than the whole limit is cut between code points, not dropped
  const zalgo = "e" + "\u0301".repeat(50);
  assert.equal(prefixByBytes(zalgo, 11), "e" + "\u0301".repeat(5));
});

Deno.test("capText: at most max code points (joi's count), a prefix, ending between graphemes", () => {
  const cps = (t: string) => [...t].length;
  fc.assert(
    fc.property(texts, fc.integer({ min: 1, max: 400 }), (text, max) => {
      const c = capText(text, max);
      return cps(c.text) <= max && text.startsWith(c.text) &&
        onGraphemeBoundary(text, c.text) && c.cut === (cps(text) > max);
    }),
    { numRuns: 500 },
  );
});

Deno.test("joi's inbound schema counts max_inbound_chars in code points, as capText does", () => {
  // the mesh's cut and joi's check must agree: an emoji is one character to both
  const schema = inboundMessageSchema(4);
  const body = (text: string) => ({
    transport: "signal",
    message_id: "sig-1",
    sender: { id: "owner", transport_id: "+15550000001" },
    conversation: { type: "direct", id: "owner_private_dm" },
    priority: "normal",
    content: { type: "text", text, voice_transcription_failed: false },
    metadata: { mesh_received_at: "2026-01-01T00:00:00Z", original_format: "text" },
    timestamp: "2026-01-01T00:00:00Z",
  });
  assert.ok(schema.safeParse(body("🙂🙂🙂🙂")).success, "4 code points, 8 UTF-16 units");
  assert.ok(!schema.safeParse(body("🙂🙂🙂🙂🙂")).success);
  assert.equal(capText("🙂🙂🙂🙂🙂", 4).text, "🙂🙂🙂🙂");
});

Deno.test("readLongText: a file over the reading cap is read up to it, on a whole character", async () => {
  const dir = await Deno.makeTempDir({ prefix: "long-text-" });
  try {
    // 1, 2, 3 and 4-byte characters, shifted so the cap falls inside one of each
    for (const [i, ch] of ["a", "ľ", "€", "🙂"].entries()) {
      for (let shift = 0; shift < 4; shift++) {
        const text = "x".repeat(shift) + ch.repeat(MAX_LONG_TEXT_BYTES) + "end";
        await Deno.writeTextFile(`${dir}/f${i}${shift}`, text);
        const r = readLongText(dir, `f${i}${shift}`);
        assert.ok(r.ok, `${ch} shift ${shift}`);
        assert.equal(r.complete, false);
        assert.ok(text.startsWith(r.text), `${ch} shift ${shift}: a prefix`);
        const bytes = encoder.encode(r.text).length;
        assert.ok(bytes <= MAX_LONG_TEXT_BYTES && bytes > MAX_LONG_TEXT_BYTES - 4);
      }
    }
    await Deno.writeTextFile(`${dir}/small`, "Ahoj 🙂");
    assert.deepEqual(readLongText(dir, "small"), { ok: true, text: "Ahoj 🙂", complete: true });
    await Deno.writeFile(`${dir}/bad`, new Uint8Array([0x41, 0xc3]));
    assert.deepEqual(readLongText(dir, "bad"), { ok: false, reason: "not_utf8" });
    assert.deepEqual(readLongText(dir, "absent"), { ok: false, reason: "missing" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bodyIsPartial: a body shorter than the announced attachment is only its beginning", () => {
  assert.equal(bodyIsPartial("a".repeat(2000), 3000), true);
  assert.equal(bodyIsPartial("a".repeat(3000), 3000), false, "signal-cli 0.14 read it itself");
  assert.equal(bodyIsPartial("a".repeat(1990), null), true, "no size: a cut body's length");
  assert.equal(bodyIsPartial(null, 10), true);
});

function nextGrapheme(text: string, at: number): number {
  for (const g of segmenter.segment(text)) if (g.index === at) return g.segment.length;
  return 0;
}
