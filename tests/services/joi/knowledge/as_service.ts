/**
 * Test fixture run AS the household's service user (via sudo): joi's real
 * knowledge code with joi's account, so the kernel decides what it may do.
 * `retrieve` runs joi's retrieve client against the local run's broker
 * (started here, as joi: its sockets in `socketDir`, each connection a real
 * `sudo -n -u <channel user> joi-retrieve`).
 * Imports nothing from npm (the service user has no Deno cache).
 *
 *   as_service.ts '<json>'  with {mode: "index"|"write"|"retrieve"|"memory", ...}
 *
 * Prints one JSON line: the outcome.
 *
 * @module
 */
import { createLogger, type Fields } from "../../../../services/common/log.ts";
import { knowledgeFolders } from "../../../../services/joi/knowledge/folders.ts";
import { scanFolder } from "../../../../services/joi/knowledge/scan.ts";
import { KnowledgeWriteError, KnowledgeWriter } from "../../../../services/joi/knowledge/writer.ts";
import { RetrieveClient } from "../../../../services/joi/knowledge/retrieve_client.ts";
import {
  serveRetrieveSockets,
  sudoRetrieve,
} from "../../../../services/knowledge_broker/server.ts";
import type { Recipients } from "../../../../services/common/policy/recipients.ts";
import { importMemoryKey } from "../../../../services/joi/memory/crypto.ts";
import { MemoryStores } from "../../../../services/joi/memory/stores.ts";

/** The fixture's input. */
export interface AsServiceInput {
  /** What to do. */
  mode: "index" | "write" | "retrieve" | "memory";
  /** Knowledge root. */
  root: string;
  /** memory: joi's state directory (joi.db, data/). */
  stateDir?: string;
  /** recipients.yaml. */
  recipients: Recipients;
  /** allowed_channel_users. */
  allowed: Record<string, string>;
  /** write/retrieve: the channel. */
  channel?: string;
  /** write: the document and optional target folder. */
  doc?: { title: string; body: string; category?: string };
  /** write: a folder other than the channel's own (cross-channel attempt). */
  folder?: string;
  /** retrieve: type and query. */
  type?: string;
  /** retrieve: query object. */
  query?: unknown;
  /** retrieve: entry point and pinned argv. */
  retrieveBin?: string;
  /** retrieve: pinned argv. */
  fixedArgv?: string[];
  /** retrieve: timeout override (the broker's bound of one retrieval). */
  timeoutMs?: number;
  /** retrieve: the folder of the broker's sockets. */
  socketDir?: string;
  /** retrieve: joi's own bound of one retrieval (the client's timeout). */
  clientTimeoutMs?: number;
}

const input = JSON.parse(Deno.args[0]!) as AsServiceInput;
const events: Fields[] = [];
const logger = createLogger("as_service", {
  quiet: true,
  sinks: [(line) => events.push(JSON.parse(line))],
});
let result: unknown;
switch (input.mode) {
  case "index":
    result = knowledgeFolders(input.recipients).map((f) => scanFolder(input.root, f.path));
    break;
  case "write": {
    const w = new KnowledgeWriter({
      root: input.root,
      recipients: input.recipients,
      allowedChannelUsers: input.allowed,
      logger,
    });
    try {
      result = { saved: w.save(input.channel!, input.doc!, input.folder) };
    } catch (e) {
      result = {
        refused: e instanceof KnowledgeWriteError ? e.code : String(e),
        message: (e as Error).message,
      };
    } finally {
      w.close();
    }
    break;
  }
  case "memory": {
    // joi's real memory code: open every channel's store and append a turn
    const key = await importMemoryKey(crypto.getRandomValues(new Uint8Array(32)));
    const stores = new MemoryStores({
      stateDir: input.stateDir!,
      recipients: input.recipients,
      key,
    });
    const opened: Record<string, string> = {};
    for (const channel of stores.channels()) {
      try {
        await stores.store(channel).appendTurn({
          conversationId: "c1",
          role: "user",
          sender: "test",
          text: "hello",
        });
        opened[channel] = "ok";
      } catch (e) {
        opened[channel] = (e as Error).message;
      }
    }
    result = opened;
    break;
  }
  case "retrieve": {
    const broker = await serveRetrieveSockets({
      socketDir: input.socketDir!,
      channels: Object.keys(input.allowed),
      userOf: (c) => input.allowed[c],
      spawn: sudoRetrieve("/usr/bin/sudo", input.retrieveBin!, input.fixedArgv!),
      logger,
      ...(input.timeoutMs ? { timeoutMs: input.timeoutMs } : {}),
    });
    try {
      const c = new RetrieveClient({
        socketDir: input.socketDir!,
        channels: () => ({ allowedChannelUsers: input.allowed, recipients: input.recipients }),
        logger,
        timeoutMs: input.clientTimeoutMs,
      });
      result = await c.retrieve(input.channel!, input.type!, input.query);
    } finally {
      await broker.close();
    }
    break;
  }
}
console.log(JSON.stringify({ uid: Deno.uid(), result, events }));
