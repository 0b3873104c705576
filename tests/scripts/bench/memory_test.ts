/**
 * The memory benchmarks' reading of `pmap -XX -p`: each mapping's resident
 * pages land in the right bucket (the Deno executable's code and data, the
 * brk heap, V8's MADV_DONTFORK pages, libraries, mapped files) and the
 * buckets add up to RSS, anonymous plus file-backed.
 */
import assert from "node:assert/strict";
import {
  breakdown,
  floorReport,
  necessitiesLine,
  parsePmap,
} from "../../../scripts/bench/_memory.ts";

const HEADER =
  "         Address Perm   Offset Device  Inode Size KernelPageSize MMUPageSize  Rss Pss Pss_Dirty Shared_Clean Shared_Dirty Private_Clean Private_Dirty Referenced Anonymous KSM LazyFree AnonHugePages ShmemPmdMapped FilePmdMapped Shared_Hugetlb Private_Hugetlb Swap SwapPss Locked THPeligible              VmFlags Mapping";

/** One pmap row: Rss, Pss, Shared_Clean, Private_Dirty, Anonymous, flags, path. */
function row(
  rss: number,
  sharedClean: number,
  anon: number,
  flags: string,
  path: string,
): string {
  const privDirty = anon;
  const privClean = rss - sharedClean - privDirty;
  return `    7f0000000000 r-xp 00000000  fe:00 1  ${
    rss * 2
  } 4 4 ${rss} ${rss} 0 ${sharedClean} 0 ` +
    `${privClean} ${privDirty} ${rss} ${anon} 0 0 0 0 0 0 0 0 0 0 0 ${flags} ${path}`.trimEnd();
}

const SAMPLE = [
  "1234:   deno run --no-prompt services/mesh/main.ts",
  HEADER,
  row(20_000, 19_000, 0, "rd ex mr mw me", "/usr/local/bin/deno"), // code
  row(3_000, 0, 3_000, "rd wr mr mw me ac", "/usr/local/bin/deno"), // written data
  row(8_000, 0, 8_000, "rd wr mr mw me ac", "[heap]"),
  row(12_000, 0, 12_000, "rd wr mr mw me dc ac", ""), // V8 page
  row(2_000, 0, 2_000, "rd wr mr mw me nr", ""), // a malloc arena
  row(1_500, 1_500, 0, "rd ex mr mw me", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
  row(32, 0, 0, "rd wr sh mr mw me ms", "/var/lib/mesh-proxy/mesh.db-shm"),
  "                                               ======== ===== ===== ",
  "                                               1234 KB ",
].join("\n");

Deno.test("pmap -XX: buckets by origin add up to RSS", () => {
  const b = breakdown(parsePmap(SAMPLE));
  assert.equal(b.rss, 20_000 + 3_000 + 8_000 + 12_000 + 2_000 + 1_500 + 32);
  assert.equal(b.anon, 3_000 + 8_000 + 12_000 + 2_000);
  assert.equal(b.file, b.rss - b.anon);
  assert.equal(b.denoCode, 20_000);
  assert.equal(b.denoData, 3_000);
  assert.equal(b.brkHeap, 8_000);
  assert.equal(b.v8Pages, 12_000);
  assert.equal(b.otherAnon, 2_000);
  assert.equal(b.libs, 1_500);
  assert.equal(b.otherFiles, 32);
  assert.equal(b.fileShared, 19_000 + 1_500);
  assert.ok(b.denoCode + b.libs + b.otherFiles === b.file);
});

Deno.test("pmap: output without its header or without VmFlags is refused, naming it", () => {
  assert.throws(() => parsePmap("1234: x\n"), /no header line/);
  assert.throws(() => parsePmap(HEADER.replace(" VmFlags", "") + "\n"), /no VmFlags column/);
});

Deno.test("floor report: the ratio on RSS, private and shared parts, the settled figure", () => {
  const b = breakdown(parsePmap(SAMPLE));
  const floor = {
    idle: b,
    loaded: { ...b, rss: b.rss * 2, anon: b.anon * 4, pss: 1024 },
    necessities: { ...b, rss: b.rss * 2.2 },
  };
  const settled = { ...b, rss: b.rss / 2 };
  const lines = floorReport("mesh after 3 messages", b, floor, 3, 1.4, settled);
  assert.match(lines.join("\n"), /ratio: RSS 0\.50x the floor \(target <= 1\.4x\): MET/);
  assert.match(lines.join("\n"), /anonymous memory alone 0\.25x/);
  assert.match(lines.join("\n"), /private vs shared: .* PSS [0-9.]+ MB vs 1\.0 MB/);
  assert.match(
    lines.at(-1)!,
    /^settled \(10 s idle after the last one\): RSS .*; 0\.25x the floor$/,
  );
  assert.equal(floorReport("x", b, floor, 3, 1.4).some((l) => l.startsWith("settled")), false);
});

Deno.test("floor report: what the target leaves once the necessities are paid, and when it is nothing", () => {
  const b = breakdown(parsePmap(SAMPLE));
  const floor = {
    idle: b,
    loaded: { ...b, rss: 40 * 1024 },
    necessities: { ...b, rss: 55 * 1024 },
  };
  assert.match(
    necessitiesLine(floor, 2.0),
    /RSS 55\.0 MB = 1\.38x the floor .* leaves 25\.0 MB for/,
  );
  assert.doesNotMatch(necessitiesLine(floor, 2.0), /less than nothing/);
  assert.match(necessitiesLine(floor, 1.3), /leaves -3\.0 MB .*less than nothing/);
  const lines = floorReport("relay after 3 events", b, floor, 3, 1.3);
  assert.ok(lines.some((l) => l.startsWith("necessities: ")), "the report carries the line");
});
