/**
 * A protocol-faithful stand-in for openHAB's REST event stream
 * (`GET /rest/events?topics=...`, design/openhab.md): Server-Sent Events with
 * `event: message` + `data: {topic, payload, type}` (payload a JSON string),
 * and an `event: alive` keep-alive. The API token is required as a Bearer
 * token. Tests push events, send keep-alives, drop connections or go silent.
 *
 * Like openHAB, it keeps each item's state: an event pushed while no client is
 * connected is lost from the stream (openHAB does not replay) but shows in
 * `GET /rest/items` (`[{name, state, type, groupNames}]`; with `fields=` not
 * naming `state`, without it) and `GET /rest/items/<name>/state` (plain text).
 *
 * @module
 */

/** An openHAB bus event. */
export interface OpenhabEvent {
  topic: string;
  payload: string;
  type: string;
}

/** A running stand-in. */
export interface OpenhabSse {
  url: string;
  /** Connections accepted (with a valid token). */
  connections: number;
  /** Requests refused for a bad or missing token. */
  unauthorized: number;
  /** The `topics` query of the last connection. */
  lastTopics: string | null;
  /** Sends one event to every open stream (and keeps an item event's state for `/rest/items`). */
  push(ev: OpenhabEvent): void;
  /** `GET /rest/items` requests answered. */
  readonly itemReads: number;
  /** Sends the keep-alive to every open stream. */
  alive(): void;
  /** Closes every open stream (a dropped connection). */
  dropAll(): void;
  /** Open streams now. */
  readonly open: number;
  /** Resolves when `n` streams have been accepted. */
  waitConnections(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Item events as openHAB emits them for one change: state, stateupdated, statechanged. */
export function itemChange(
  item: string,
  type: string,
  value: string,
  oldValue: string,
): OpenhabEvent[] {
  return [
    {
      topic: `openhab/items/${item}/state`,
      payload: JSON.stringify({ type, value }),
      type: "ItemStateEvent",
    },
    {
      topic: `openhab/items/${item}/stateupdated`,
      payload: JSON.stringify({ type, value }),
      type: "ItemStateUpdatedEvent",
    },
    {
      topic: `openhab/items/${item}/statechanged`,
      payload: JSON.stringify({ type, value, oldType: type, oldValue }),
      type: "ItemStateChangedEvent",
    },
  ];
}

/**
 * One `statechanged` event of `item` (through `group`, when given: the
 * five-segment GroupItemStateChangedEvent openHAB sends for a group item).
 */
export function stateChanged(
  item: string,
  type: string,
  value: string,
  o: { oldValue?: string; group?: string } = {},
): OpenhabEvent {
  return {
    topic: o.group
      ? `openhab/items/${o.group}/${item}/statechanged`
      : `openhab/items/${item}/statechanged`,
    payload: JSON.stringify({ type, value, oldType: type, oldValue: o.oldValue ?? "NULL" }),
    type: o.group ? "GroupItemStateChangedEvent" : "ItemStateChangedEvent",
  };
}

/** A channel trigger with any event string (`1002.0`, `x y`, `on-press`, ...). */
export function triggered(channel: string, event: string): OpenhabEvent {
  return {
    topic: `openhab/channels/${channel}/triggered`,
    payload: JSON.stringify({ event, channel }),
    type: "ChannelTriggeredEvent",
  };
}

const encoder = new TextEncoder();

/** Value types -> the item type openHAB lists (`/rest/items`). */
const ITEM_TYPES: Record<string, string> = {
  OnOff: "Switch",
  OpenClosed: "Contact",
  Decimal: "Number",
  Quantity: "Number:Dimensionless",
  Percent: "Dimmer",
  DateTime: "DateTime",
  HSB: "Color",
  Point: "Location",
  Raw: "Image",
};

/** Options of {@link startOpenhabSse}. */
export interface OpenhabSseOptions {
  /** TCP port on 127.0.0.1 (default 0: a free port). */
  port?: number;
}

/** Starts the stand-in on 127.0.0.1 with `token` (on `options.port`, default a free port). */
export function startOpenhabSse(token: string, options: OpenhabSseOptions = {}): OpenhabSse {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  let connections = 0;
  let unauthorized = 0;
  let lastTopics: string | null = null;
  let itemReads = 0;
  const waiters = new Set<() => void>();
  /** Item states as openHAB would list them. */
  const items = new Map<
    string,
    { name: string; state: string; type: string; groupNames: string[] }
  >();
  const remember = (ev: OpenhabEvent) => {
    const s = ev.topic.split("/");
    if (s[1] !== "items" || (s.length !== 4 && s.length !== 5)) return;
    const name = s.length === 5 ? s[3]! : s[2]!;
    let p: { type?: unknown; value?: unknown };
    try {
      p = JSON.parse(ev.payload);
    } catch {
      return;
    }
    if (typeof p.value !== "string" || typeof p.type !== "string") return;
    const prev = items.get(name);
    const groupNames = [...(prev?.groupNames ?? [])];
    if (s.length === 5 && !groupNames.includes(s[2]!)) groupNames.push(s[2]!);
    items.set(name, { name, state: p.value, type: ITEM_TYPES[p.type] ?? "String", groupNames });
  };
  const send = (text: string) => {
    for (const c of streams) {
      try {
        c.enqueue(encoder.encode(text));
      } catch {
        streams.delete(c);
      }
    }
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      const one = /^\/rest\/items\/([^/]+)\/state$/.exec(url.pathname);
      if (url.pathname !== "/rest/events" && url.pathname !== "/rest/items" && !one) {
        return new Response("not found", { status: 404 });
      }
      if (req.headers.get("authorization") !== `Bearer ${token}`) {
        unauthorized++;
        return new Response(JSON.stringify({ error: { message: "Authentication required" } }), {
          status: 401,
          headers: { "content-type": "application/json" },
        });
      }
      if (url.pathname === "/rest/items") {
        itemReads++;
        // `fields=` without state: openHAB leaves the state out (an image's is megabytes)
        const fields = url.searchParams.get("fields")?.split(",");
        const list = [...items.values()].map((i) =>
          fields && !fields.includes("state")
            ? { name: i.name, type: i.type, groupNames: i.groupNames }
            : i
        );
        return new Response(JSON.stringify(list), {
          headers: { "content-type": "application/json" },
        });
      }
      if (one) {
        const item = items.get(decodeURIComponent(one[1]!));
        return item
          ? new Response(item.state, { headers: { "content-type": "text/plain" } })
          : new Response(`Item ${one[1]} does not exist!`, { status: 404 });
      }
      lastTopics = url.searchParams.get("topics");
      let ctrl!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          ctrl = c;
          streams.add(c);
        },
        cancel() {
          streams.delete(ctrl);
        },
      });
      connections++;
      for (const w of waiters) w();
      return new Response(body, {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    },
  );
  const sse: OpenhabSse = {
    url: `http://127.0.0.1:${server.addr.port}`,
    get connections() {
      return connections;
    },
    get unauthorized() {
      return unauthorized;
    },
    get lastTopics() {
      return lastTopics;
    },
    get itemReads() {
      return itemReads;
    },
    get open() {
      return streams.size;
    },
    push(ev) {
      remember(ev);
      send(`event: message\ndata: ${JSON.stringify(ev)}\n\n`);
    },
    alive() {
      send(`event: alive\ndata: {"type":"ALIVE","interval":10}\n\n`);
    },
    dropAll() {
      for (const c of streams) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      streams.clear();
    },
    waitConnections(n, timeoutMs = 10_000) {
      if (connections >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`openHAB stand-in: ${connections} of ${n} connections in ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const check = () => {
          if (connections >= n) {
            clearTimeout(t);
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
      });
    },
    async close() {
      sse.dropAll();
      await server.shutdown();
    },
  };
  return sse;
}
