/**
 * Indexes the markdown files of one knowledge folder (hand-written documents
 * and the writer's own), without ever following a link: symlinks are skipped,
 * hard-linked files are skipped (a link planted in a shared folder must not
 * pull a private file into the shared index: the indexer runs as joi, which
 * may read everything), and each file is checked after opening to be the one
 * that was inspected.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { INDEX_FILE } from "./retrieve_protocol.ts";
import { type FileFacts, type IndexWriter, openIndexWriter } from "./index_writer.ts";
import { type KnowledgeDocument, parseDocument } from "./markdown.ts";

/** Largest markdown file indexed, in bytes. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** What one folder scan did. */
export interface ScanReport {
  /** Folder path relative to the knowledge root. */
  folder: string;
  /** Documents added or changed. */
  indexed: number;
  /** Unchanged documents. */
  unchanged: number;
  /** Index entries whose file disappeared. */
  removed: number;
  /** Files refused, with the reason (paths relative to the root). */
  skipped: { source: string; reason: string }[];
}

interface Candidate {
  source: string;
  path: string;
  st: Deno.FileInfo;
}

function walk(root: string, folder: string, skipped: ScanReport["skipped"]): Candidate[] {
  const out: Candidate[] = [];
  const visit = (rel: string, depth: number) => {
    const dir = `${root}/${rel}`;
    for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
      if (e.name.startsWith(".")) continue;
      const childRel = `${rel}/${e.name}`;
      const st = Deno.lstatSync(`${root}/${childRel}`);
      if (st.isSymlink) {
        skipped.push({ source: childRel, reason: "symbolic link (never followed)" });
      } else if (st.isDirectory) {
        if (depth < 8) visit(childRel, depth + 1);
        else skipped.push({ source: childRel, reason: "nested deeper than 8 levels" });
      } else if (st.isFile && e.name.toLowerCase().endsWith(".md")) {
        if ((st.nlink ?? 1) > 1) {
          skipped.push({ source: childRel, reason: "hard-linked file (never indexed)" });
        } else if (st.size > MAX_DOCUMENT_BYTES) {
          skipped.push({ source: childRel, reason: `larger than ${MAX_DOCUMENT_BYTES} bytes` });
        } else {
          out.push({ source: childRel, path: `${root}/${childRel}`, st });
        }
      }
    }
  };
  visit(folder, 0);
  return out;
}

/** Reads a file only if it is still the regular file `expected` described. */
function readChecked(path: string, expected: Deno.FileInfo): Uint8Array {
  const f = Deno.openSync(path, { read: true });
  try {
    const st = f.statSync();
    if (!st.isFile || st.ino !== expected.ino || st.dev !== expected.dev || (st.nlink ?? 1) > 1) {
      throw new Error("file changed while indexing");
    }
    const buf = new Uint8Array(Math.min(st.size, MAX_DOCUMENT_BYTES));
    let off = 0;
    while (off < buf.length) {
      const n = f.readSync(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    f.close();
  }
}

/**
 * Brings the index of `folder` (relative to `root`) up to date with its files.
 * `writer` may be passed to reuse an open index.
 */
export function scanFolder(
  root: string,
  folder: string,
  options: { writer?: IndexWriter; now?: () => Date } = {},
): ScanReport {
  const report: ScanReport = { folder, indexed: 0, unchanged: 0, removed: 0, skipped: [] };
  const dirSt = Deno.lstatSync(`${root}/${folder}`);
  if (!dirSt.isDirectory || dirSt.isSymlink) {
    throw new Error(`index: ${root}/${folder} is not a directory (symlinks are refused)`);
  }
  const writer = options.writer ?? openIndexWriter(`${root}/${folder}`);
  const now = options.now ?? (() => new Date());
  try {
    const known = new Map(writer.files().map((f) => [f.source, f]));
    const seen = new Set<string>();
    const batch: { doc: KnowledgeDocument; facts: FileFacts }[] = [];
    for (const c of walk(root, folder, report.skipped)) {
      if (c.source.endsWith(INDEX_FILE)) continue;
      const prev = known.get(c.source);
      const mtimeMs = c.st.mtime?.getTime() ?? 0;
      if (prev && prev.size === c.st.size && prev.mtimeMs === Math.trunc(mtimeMs)) {
        seen.add(c.source);
        report.unchanged++;
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = readChecked(c.path, c.st);
      } catch (e) {
        report.skipped.push({ source: c.source, reason: (e as Error).message });
        continue;
      }
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      if (prev && prev.sha256 === sha256) {
        seen.add(c.source);
        report.unchanged++;
        continue;
      }
      let doc: KnowledgeDocument;
      try {
        doc = parseDocument(new TextDecoder().decode(bytes), c.source);
      } catch (e) {
        report.skipped.push({ source: c.source, reason: (e as Error).message });
        continue; // not seen: a previously indexed version is removed
      }
      seen.add(c.source);
      batch.push({
        doc,
        facts: {
          source: c.source,
          sha256,
          size: bytes.length,
          mtimeMs,
          updatedAt: now().toISOString(),
        },
      });
    }
    if (batch.length) writer.upsertMany(batch);
    report.indexed = batch.length;
    const gone = [...known.keys()].filter((s) => !seen.has(s));
    if (gone.length) writer.removeSources(gone);
    report.removed = gone.length;
    return report;
  } finally {
    if (!options.writer) writer.close();
  }
}
