/**
 * Web search and the sandbox: when tools.yaml enables web search, joi's
 * manifest entry (and so its unit and the local run) admits the mesh's proxy
 * and exactly the allowed domains; otherwise neither. Deno checks the proxy
 * when the client is made and each destination when fetching through it.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  localLayout,
  productionLayout,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { loadPolicyFile, parsePolicyText } from "../../../services/common/policy/mod.ts";
import {
  productionAddressesFrom,
  renderUnits,
  webSearchAccess,
} from "../../../services/common/units/mod.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const network = loadPolicyFile("network", `${ROOT}policies/network.yaml`);
const llm = loadPolicyFile("llm", `${ROOT}policies/llm.yaml`);
const shipped = loadPolicyFile("tools", `${ROOT}policies/tools.yaml`);
const enabled = parsePolicyText(
  "tools",
  Deno.readTextFileSync(`${ROOT}policies/tools.yaml`).replace(
    /web_search:\n(\s+)enabled: false/,
    "web_search:\n$1enabled: true",
  ),
  "tools.yaml",
);

Deno.test("web search off (as shipped): joi may dial neither the proxy nor any search host", () => {
  assert.equal(webSearchAccess(shipped), undefined);
  const net = programSpec("joi", productionLayout(productionAddressesFrom(network, llm, shipped)))
    .permissions.net;
  assert.ok(!net.some((n) => n.endsWith(":3128") || n.endsWith(":443")), net.join(","));
});

Deno.test("web search on: joi's unit admits the proxy and exactly the allowed domains", () => {
  assert.deepEqual(webSearchAccess(enabled), {
    proxy: { host: "10.42.0.1", port: 3128 },
    hosts: ["api.duckduckgo.com:443"],
  });
  const units = renderUnits(productionAddressesFrom(network, llm, enabled), {
    serviceUser: "joi",
    channels: {},
  });
  const joi = units.find((u) => u.name === "joi.service")!.text;
  const exec = joi.split("\n").find((l) => l.startsWith("ExecStart="))!;
  const allowNet = exec.match(/--allow-net=(\S+)/)![1]!.split(",");
  assert.ok(allowNet.includes("10.42.0.1:3128"), allowNet.join(","));
  assert.ok(allowNet.includes("api.duckduckgo.com:443"), allowNet.join(","));
  // the mesh (the proxy's host) is already joi's only IP peer besides loopback and openHAB
  assert.match(joi, /^IPAddressAllow=localhost 10\.42\.0\.1 10\.42\.0\.20$/m);
});

Deno.test("web search on, real flags: the allowed host goes to the proxy, any other is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-websearch-" });
  try {
    // a closed loopback port stands in for the proxy: reaching it fails with a
    // network error, while a destination outside the sandbox fails with NotCapable
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    const layout = localLayout({
      varDir: dir,
      basePort: 18543,
      webSearch: { proxy: { host: "127.0.0.1", port }, hosts: ["api.duckduckgo.com:443"] },
    });
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `const client = Deno.createHttpClient({ proxy: { url: "http://127.0.0.1:${port}" } });
const out = {};
for (const url of ["https://api.duckduckgo.com/?q=joi", "https://example.com/"]) {
  try { await fetch(url, { client, signal: AbortSignal.timeout(5000) }); out[url] = "fetched"; }
  catch (e) { out[url] = e instanceof Deno.errors.NotCapable ? "refused" : "network error"; }
}
console.log(JSON.stringify(out));
Deno.exit(0);
`,
    );
    const [run, ...rest] = denoRunArgs(programSpec("joi", layout));
    const r = await new Deno.Command("deno", {
      args: [run, "--frozen", `--preload=${probe}`, ...rest],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const line = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!;
    assert.deepEqual(JSON.parse(line), {
      "https://api.duckduckgo.com/?q=joi": "network error",
      "https://example.com/": "refused",
    }, new TextDecoder().decode(r.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
