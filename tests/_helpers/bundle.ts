/**
 * The build host's work for tests, in a staging folder: Nebula certificates
 * and configs made with the real nebula-cert (CA, three nodes), then one
 * role's bundle made by the real bundle module (a stand-in for the Deno and
 * Nebula binaries keeps it small). Shared by the install test and the staged
 * end-to-end test.
 *
 * @module
 */
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import type { Role } from "../../scripts/install/plan.ts";
import { bundle } from "../../scripts/bundle.ts";
import { createCa, signNodes } from "../../scripts/nebula/certs.ts";
import {
  nebulaPlanOf,
  type NodeName,
  NODES,
  renderGuard,
  renderNodeConfig,
} from "../../scripts/nebula/config.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The build host's work, in `stage`: Nebula certificates and configs, then a role's bundle. */
export async function makeBundle(stage: string, role: Role): Promise<string> {
  const nebula = `${stage}/nebula`;
  await Deno.mkdir(nebula, { recursive: true });
  const o = { nebulaCert: "/usr/bin/nebula-cert", outDir: nebula };
  // production's lifetimes (scripts/nebula.ts): a staged joi reads its own
  // certificate, and one ending within 30 days makes its expiry watch warn the
  // owner in the middle of a conversation under test
  await createCa({ ...o, name: "joi test", duration: "8760h" });
  const network = loadPolicyFile("network", `${ROOT}policies/network.yaml`);
  const overlay = network.hosts as Record<NodeName, string>;
  await signNodes({ ...o, overlay, prefix: 24, duration: "2160h", force: false });
  const plan = nebulaPlanOf(network, {
    underlay: { mesh: "10.99.0.1", joi: "10.99.0.2", openhab: "10.99.0.3" },
    port: 4242,
    pkiDir: "/etc/nebula",
  });
  for (const node of Object.keys(NODES) as NodeName[]) {
    await Deno.writeTextFile(`${nebula}/${node}.yml`, renderNodeConfig(node, plan));
  }
  await Deno.writeTextFile(`${nebula}/guard.nft`, renderGuard(plan));
  const fake = `${stage}/fake-bin`;
  await Deno.writeTextFile(fake, "#!/bin/false\n", { mode: 0o755 });
  return await bundle({
    role,
    repo: ROOT.replace(/\/$/, ""),
    out: `${stage}/bundle`,
    nebulaDir: nebula,
    keysDir: `${stage}/keys`,
    denoBin: fake,
    nebulaBin: fake,
  });
}
