/**
 * The terminal in place of signal-cli, for `deno task start`: each line typed
 * on stdin is a DM from the owner; a line starting `@family `, `@critical `
 * or `@owner ` (any `@name` whose `name_group`, `name_regular_dm` or `name`
 * channel is a listed group) is sent in that group. Everything joi sends is
 * printed on stdout as `[channel] text`.
 *
 * It produces signal-cli-shaped `receive` notifications from the owner's
 * registered number and uuid, so every line goes through exactly the same
 * checks as Signal traffic (identities, channel, dedup, limits, queue).
 * Logs never go to stdout.
 *
 * @module
 */
import { channelOfGroup, channelOfRecipient } from "../../common/policy/household.ts";
import type { IdentityView } from "../identity.ts";
import type { RpcNotification, SignalTransport, TransportStatus } from "./transport.ts";
import { RpcError } from "./transport.ts";

/** Options of {@link TerminalTransport}. */
export interface TerminalOptions {
  /** The identities in force (an `IdentityStore`). */
  identities: { readonly current: IdentityView };
  /** The recipient id lines come from (mesh.yaml owner_recipient). */
  owner: string;
  /** Lines in (stdin). */
  input: ReadableStream<Uint8Array>;
  /** Printed output (stdout). */
  output: (line: string) => void;
  /** Clock (ms). */
  now?: () => number;
}

/** The local chat transport. */
export class TerminalTransport implements SignalTransport {
  readonly #o: TerminalOptions;
  #onNotification: (n: RpcNotification) => void = () => {};
  #onConnect: () => void = () => {};
  #state: TransportStatus["state"] = "disconnected";
  #since: number | null = null;
  #lastTs = 0;
  #reader: ReadableStreamDefaultReader<string> | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: TerminalOptions) {
    this.#o = options;
  }

  /** @inheritdoc */
  start(): void {
    if (this.#loop) return;
    this.#state = "connected";
    this.#since = (this.#o.now ?? Date.now)();
    queueMicrotask(() => this.#onConnect());
    this.#loop = this.#read();
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.#state = "closed";
    await this.#reader?.cancel().catch(() => {});
    await this.#loop;
  }

  /** @inheritdoc */
  onNotification(handler: (n: RpcNotification) => void): void {
    this.#onNotification = handler;
  }

  /** @inheritdoc */
  onConnect(handler: () => void): void {
    this.#onConnect = handler;
  }

  /** @inheritdoc */
  status(): TransportStatus {
    return {
      state: this.#state,
      version: "terminal",
      connectedSince: this.#since,
      lastError: null,
      reconnects: 0,
    };
  }

  /** @inheritdoc */
  request<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const view = this.#o.identities.current;
    switch (method) {
      case "version":
        return Promise.resolve({ version: "terminal" } as T);
      case "send": {
        let channel = "unknown";
        const results: unknown[] = [];
        if (typeof params.groupId === "string") {
          channel = view.groupChannel(params.groupId) ?? "unknown";
          results.push({ recipientAddress: { uuid: null, number: null }, type: "SUCCESS" });
        } else if (Array.isArray(params.recipient)) {
          for (const r of params.recipient) {
            const s = view.sender(String(r), null);
            channel = s ? channelOfRecipient(s.recipientId, "private") : "unknown";
            results.push({ recipientAddress: { uuid: null, number: String(r) }, type: "SUCCESS" });
          }
        }
        const text = typeof params.message === "string" ? params.message : "";
        const voice = Array.isArray(params.attachment) && params.attachment.length
          ? " [voice note]"
          : "";
        this.#o.output(`[${channel}] ${text}${voice}`);
        return Promise.resolve({ timestamp: this.#ts(), results } as T);
      }
      case "listGroups": {
        const groups = Object.entries(view.config.groups ?? {}).map(([id, g]) => ({
          id,
          name: g.channel,
          members: (g.expected_members ?? []).map((m) => {
            const s = view.recipient(m);
            return { number: s?.number ?? null, uuid: s?.uuid ?? null };
          }),
        }));
        return Promise.resolve(groups as T);
      }
      case "sendTyping":
      case "sendReceipt":
        return Promise.resolve({} as T);
      default:
        return Promise.reject(new RpcError(-32601, `Method ${method} not implemented`));
    }
  }

  #ts(): number {
    const t = Math.max((this.#o.now ?? Date.now)(), this.#lastTs + 1);
    this.#lastTs = t;
    return t;
  }

  /** The channel a `@name` prefix selects, or null. */
  #group(name: string): string | null {
    const view = this.#o.identities.current;
    for (const c of [channelOfGroup(name), channelOfRecipient(name, "regular"), name]) {
      const id = view.groupIdOf(c);
      if (id) return id;
    }
    return null;
  }

  async #read(): Promise<void> {
    this.#reader = this.#o.input.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    while (true) {
      let r: ReadableStreamReadResult<string>;
      try {
        r = await this.#reader.read();
      } catch {
        break;
      }
      if (r.done) break;
      buf += r.value;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        this.#line(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
      }
      if (buf.length > 64 * 1024) buf = "";
    }
    if (this.#state !== "closed") this.#state = "disconnected";
  }

  #line(line: string): void {
    let text = line.trim();
    if (text === "") return;
    let groupId: string | null = null;
    const [, name, rest] = /^@([A-Za-z0-9_-]+)\s+(.*)$/s.exec(text) ?? [];
    if (name !== undefined && rest !== undefined) {
      groupId = this.#group(name);
      if (!groupId) {
        this.#o.output(`[mesh] no group for @${name}; the line was not sent`);
        return;
      }
      text = rest;
    }
    const owner = this.#o.identities.current.recipient(this.#o.owner);
    if (!owner) {
      this.#o.output(`[mesh] ${this.#o.owner} is not in identities.yaml; the line was not sent`);
      return;
    }
    const ts = this.#ts();
    const dataMessage: Record<string, unknown> = { timestamp: ts, message: text };
    if (groupId) dataMessage.groupInfo = { groupId, type: "DELIVER" };
    this.#onNotification({
      method: "receive",
      params: {
        account: "terminal",
        envelope: {
          source: owner.number,
          sourceNumber: owner.number,
          sourceUuid: owner.uuid,
          sourceName: owner.name,
          sourceDevice: 1,
          timestamp: ts,
          dataMessage,
        },
      },
    });
  }
}
