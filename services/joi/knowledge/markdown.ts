/**
 * Knowledge documents on disk: markdown with a small front matter.
 *
 * ```
 * ---
 * id: 0b6c2b7e-8a1f-4c53-9d5e-2f6a7c1b9e40
 * title: Boiler reset
 * category: house
 * ---
 * Body text...
 * ```
 *
 * Hand-written files may omit the front matter: the id then comes from a
 * UUIDv4 file name, or is derived from the file's path (stable across runs),
 * the title from the first `# heading` or the file name.
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";
import { isCategory, isUuidV4 } from "./retrieve_protocol.ts";

/** A parsed document. */
export interface KnowledgeDocument {
  /** UUIDv4. */
  id: string;
  /** Title (one line). */
  title: string;
  /** Category name (`general` when none is given). */
  category: string;
  /** Markdown body without the front matter. */
  body: string;
}

/** Category used when a document names none. */
export const DEFAULT_CATEGORY = "general";

/** A UUIDv4-shaped id derived from `seed` (stable; for hand-written files). */
export function derivedId(seed: string): string {
  const hex = createHash("sha256").update(seed).digest("hex"); // 64 hex digits
  const variant = "89ab".charAt(parseInt(hex.charAt(16), 16) & 3);
  const s = `${hex.slice(0, 12)}4${hex.slice(13, 16)}${variant}${hex.slice(17)}`;
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${
    s.slice(20, 32)
  }`;
}

/** A fresh random UUIDv4. */
export function newId(): string {
  return randomUUID();
}

const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, " ").trim();

/**
 * Parses a markdown file. `source` (path relative to the knowledge root) seeds
 * the id when neither the front matter nor the file name gives one.
 */
export function parseDocument(text: string, source: string): KnowledgeDocument {
  let body = text.replace(/^\uFEFF/, "");
  const meta: Record<string, string> = {};
  const fm = body.match(/^---\r?\n([\s\S]*?)\r?\n---\r?\n?/);
  if (fm) {
    for (const line of (fm[1] ?? "").split(/\r?\n/)) {
      const [, key, value] = line.match(/^([a-z_]+):\s*(.*)$/) ?? [];
      if (key !== undefined && value !== undefined) {
        meta[key] = value.replace(/^["']|["']$/g, "").trim();
      }
    }
    body = body.slice(fm[0].length);
  }
  const fileName = source.split("/").pop() ?? source;
  const stem = fileName.replace(/\.md$/i, "");
  let id = meta.id?.toLowerCase();
  if (id !== undefined && !isUuidV4(id)) {
    throw new Error(`${source}: front matter id is not a UUIDv4; fix or remove the id line`);
  }
  id ??= isUuidV4(stem.toLowerCase()) ? stem.toLowerCase() : derivedId(`joi-doc:${source}`);
  const heading = body.match(/^#\s+(.+)$/m)?.[1];
  const title = oneLine(meta.title || heading || stem).slice(0, 200) || stem;
  const category = (meta.category ?? DEFAULT_CATEGORY).toLowerCase();
  if (!isCategory(category)) {
    throw new Error(`${source}: category must match [a-z0-9][a-z0-9_-]{0,63}`);
  }
  return { id, title, category, body };
}

/** Renders a document as markdown with front matter (the writer's format). */
export function renderDocument(doc: KnowledgeDocument, extra: Record<string, string> = {}): string {
  const lines = [
    "---",
    `id: ${doc.id}`,
    `title: ${JSON.stringify(oneLine(doc.title))}`,
    `category: ${doc.category}`,
    ...Object.entries(extra).map(([k, v]) => `${k}: ${JSON.stringify(oneLine(v))}`),
    "---",
    doc.body,
  ];
  return lines.join("\n") + (doc.body.endsWith("\n") ? "" : "\n");
}
