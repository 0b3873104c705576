/**
 * joi's knowledge write path: the main process (never a retrieve subprocess)
 * appends a new markdown document to the folder of the CURRENT channel and
 * indexes it, so the channel's readers find it on their next query.
 *
 * The folder comes from the channel alone. A write aimed at any other folder
 * is a cross-channel write and is refused (security event): a channel may only
 * write where its own user can read. Documents are append-only: each save
 * creates a new `<uuid>.md` (exclusive create, 0640, group from the folder's
 * setgid bit); nothing is overwritten.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { isCategory } from "./retrieve_protocol.ts";
import { INDEX_MODE, type IndexWriter, openIndexWriter } from "./index_writer.ts";
import { DEFAULT_CATEGORY, newId, renderDocument } from "./markdown.ts";
import { knowledgeFolders } from "./folders.ts";
import { createHash } from "node:crypto";
import type { Recipients } from "../../common/policy/recipients.ts";

/** Largest document body joi writes, in bytes. */
export const MAX_WRITE_BYTES = 256 * 1024;

/** A refused write (unknown channel, cross-channel, bad document). */
export class KnowledgeWriteError extends Error {
  /** Builds the error. */
  constructor(message: string, readonly code: "denied" | "cross_channel" | "invalid") {
    super(message);
    this.name = "KnowledgeWriteError";
  }
}

/** A document to save. */
export interface NewDocument {
  /** One-line title. */
  title: string;
  /** Markdown body. */
  body: string;
  /** Category (default `general`). */
  category?: string;
}

/** Where a saved document went. */
export interface SavedDocument {
  /** Its new UUIDv4. */
  id: string;
  /** Path relative to the knowledge root. */
  source: string;
  /** Folder relative to the knowledge root. */
  folder: string;
}

/** Options of {@link KnowledgeWriter}. */
export interface KnowledgeWriterOptions {
  /** The knowledge root (`<state dir>/knowledge`). */
  root: string;
  /** recipients.yaml. */
  recipients: Recipients;
  /** channel_users.yaml's `allowed_channel_users` (default deny). */
  allowedChannelUsers: Record<string, string>;
  /** Logger (security events for refused writes). */
  logger: Logger;
  /** Clock (tests). */
  now?: () => Date;
}

/** Appends documents to the current channel's folder and indexes them. */
export class KnowledgeWriter {
  readonly #o: KnowledgeWriterOptions;
  readonly #writers = new Map<string, IndexWriter>();

  /** Builds a writer; nothing is opened until the first save. */
  constructor(options: KnowledgeWriterOptions) {
    this.#o = options;
  }

  /**
   * Saves `doc` for `channel`. `targetFolder`, when given (e.g. an LLM tool
   * argument), must be the channel's own folder or the write is refused.
   */
  save(channel: string, doc: NewDocument, targetFolder?: string): SavedDocument {
    const { logger } = this.#o;
    const user = Object.hasOwn(this.#o.allowedChannelUsers, channel)
      ? this.#o.allowedChannelUsers[channel]
      : undefined;
    if (user === undefined) {
      logger.security("knowledge_write_denied", { channel, reason: "unknown channel" });
      throw new KnowledgeWriteError(`knowledge write: channel ${channel} is not allowed`, "denied");
    }
    const folder = knowledgeFolders(this.#o.recipients).find((f) => f.writer === user);
    if (!folder) {
      logger.security("knowledge_write_denied", { channel, reason: "channel has no folder" });
      throw new KnowledgeWriteError(
        `knowledge write: channel ${channel} (${user}) has no knowledge folder`,
        "denied",
      );
    }
    if (targetFolder !== undefined && targetFolder !== folder.path) {
      logger.security("cross_channel_write_blocked", { channel, folder: folder.path });
      throw new KnowledgeWriteError(
        `knowledge write: channel ${channel} may only write to ${folder.path}`,
        "cross_channel",
      );
    }
    const title = doc.title.replace(/[\r\n\t]+/g, " ").trim();
    const category = doc.category ?? DEFAULT_CATEGORY;
    const bodyBytes = new TextEncoder().encode(doc.body).length;
    if (title === "" || doc.body.trim() === "" || bodyBytes > MAX_WRITE_BYTES) {
      throw new KnowledgeWriteError(
        `knowledge write: title and body must be non-empty, body at most ${MAX_WRITE_BYTES} bytes`,
        "invalid",
      );
    }
    if (!isCategory(category)) {
      throw new KnowledgeWriteError("knowledge write: invalid category", "invalid");
    }
    const dir = `${this.#o.root}/${folder.path}`;
    const st = Deno.lstatSync(dir);
    if (!st.isDirectory || st.isSymlink) {
      throw new Error(`knowledge write: ${dir} is not a directory; run provision`);
    }
    const now = (this.#o.now ?? (() => new Date()))();
    const id = newId();
    const source = `${folder.path}/${id}.md`;
    const text = renderDocument({ id, title, category, body: doc.body }, {
      created_at: now.toISOString(),
      source_channel: channel,
    });
    const bytes = new TextEncoder().encode(text);
    const path = `${this.#o.root}/${source}`;
    Deno.writeFileSync(path, bytes, { createNew: true, mode: INDEX_MODE });
    Deno.chmodSync(path, INDEX_MODE);
    const written = Deno.lstatSync(path);
    this.#writer(folder.path).upsert({ id, title, category, body: doc.body }, {
      source,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      size: bytes.length,
      mtimeMs: written.mtime?.getTime() ?? 0,
      updatedAt: now.toISOString(),
    });
    logger.info("knowledge_saved", { channel, folder: folder.path, id, bytes: bytes.length });
    return { id, source, folder: folder.path };
  }

  /** Closes the open indexes. */
  close(): void {
    for (const w of this.#writers.values()) w.close();
    this.#writers.clear();
  }

  #writer(folder: string): IndexWriter {
    let w = this.#writers.get(folder);
    if (!w) {
      w = openIndexWriter(`${this.#o.root}/${folder}`);
      this.#writers.set(folder, w);
    }
    return w;
  }
}
