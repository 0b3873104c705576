/**
 * The slow-client attacker of slowloris_test.ts, as its own process (its own
 * descriptors, its own flags): opens `count` connections to each port from
 * source addresses 127.0.0.<first>..., `perAddress` per address (one port
 * per process keeps each under the usual 1024 descriptors), sends the
 * start of a request line and then one header byte every `trickleMs`, and
 * prints one JSON line per port once every connection was closed by the
 * server (or `limitMs` passed): how many were opened, how many the server
 * closed, and the longest time a connection stayed open.
 *
 * `deno run --allow-net=127.0.0.1,127.0.0.<first>,... slowloris_attacker.ts
 *  '{"ports":[...],"count":500,"first":10,"perAddress":15,"trickleMs":500,"limitMs":20000}'`
 *
 * @module
 */
import net from "node:net";

interface Plan {
  ports: number[];
  count: number;
  first: number;
  perAddress: number;
  trickleMs: number;
  limitMs: number;
}

/** One port's outcome. */
export interface PortOutcome {
  port: number;
  opened: number;
  failedToOpen: number;
  closedByServer: number;
  stillOpen: number;
  longestOpenMs: number;
}

function attack(port: number, p: Plan): Promise<PortOutcome> {
  return new Promise((resolve) => {
    const out: PortOutcome = {
      port,
      opened: 0,
      failedToOpen: 0,
      closedByServer: 0,
      stillOpen: 0,
      longestOpenMs: 0,
    };
    let settled = 0;
    let expired = false;
    const sockets: net.Socket[] = [];
    const finish = () => {
      if (++settled < p.count) return;
      clearInterval(trickle);
      clearTimeout(limit);
      resolve(out);
    };
    for (let i = 0; i < p.count; i++) {
      const localAddress = `127.0.0.${p.first + Math.floor(i / p.perAddress)}`;
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      let openedAt = 0;
      let done = false;
      const end = (byServer: boolean) => {
        if (done) return;
        done = true;
        if (openedAt) {
          if (byServer && !expired) out.closedByServer++;
          else out.stillOpen++;
          out.longestOpenMs = Math.max(out.longestOpenMs, performance.now() - openedAt);
        } else out.failedToOpen++;
        finish();
      };
      s.on("connect", () => {
        openedAt = performance.now();
        out.opened++;
        s.write("GET /health HTTP/1.1\r\nHost: x\r\nX-S");
      });
      s.on("data", () => {}); // a slow client never completes a request: nothing comes back
      s.on("close", () => end(true));
      s.on("error", () => end(true));
      sockets.push(s);
    }
    // one more header byte on every open connection, again and again
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed && s.writable) s.write("x");
    }, p.trickleMs);
    const limit = setTimeout(() => {
      expired = true; // whatever is still open now, the server did not close
      for (const s of sockets) if (!s.destroyed) s.destroy();
    }, p.limitMs);
  });
}

if (import.meta.main) {
  const plan = JSON.parse(Deno.args[0]!) as Plan;
  const outcomes = await Promise.all(plan.ports.map((port) => attack(port, plan)));
  for (const o of outcomes) console.log(JSON.stringify(o));
}
