/**
 * The Nebula CA and node certificates, made with the real `nebula-cert`.
 * Node certificates are short-lived (90 days by default) and carry one group
 * each (`gateway`, `ai`, `openhab`), which the firewalls match on. The CA key
 * is written 0600 and should be moved offline after signing.
 *
 * @module
 */
import { type NodeName, NODES } from "./config.ts";
import { exists } from "../../services/common/fs.ts";

/** Options of {@link createCa} and {@link signNodes}. */
export interface CertOptions {
  /** `nebula-cert` as the manifest allows it (absolute path). */
  nebulaCert: string;
  /** Output directory (created 0700). */
  outDir: string;
}

async function run(bin: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(bin, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${bin} ${args[0]} failed (exit ${out.code}): ${err}`);
  }
}

/** Creates `ca.crt`/`ca.key` unless they exist; returns whether it created them. */
export async function createCa(
  o: CertOptions & { name: string; duration: string },
): Promise<boolean> {
  await Deno.mkdir(o.outDir, { recursive: true, mode: 0o700 });
  if (await exists(`${o.outDir}/ca.crt`)) return false;
  await run(o.nebulaCert, [
    "ca",
    "-name",
    o.name,
    "-duration",
    o.duration,
    "-out-crt",
    `${o.outDir}/ca.crt`,
    "-out-key",
    `${o.outDir}/ca.key`,
  ]);
  await Deno.chmod(`${o.outDir}/ca.key`, 0o600);
  return true;
}

/** Signs (or re-signs, when `force`) the three node certificates. */
export async function signNodes(
  o: CertOptions & {
    overlay: Record<NodeName, string>;
    prefix: number;
    duration: string;
    force?: boolean;
  },
): Promise<NodeName[]> {
  const signed: NodeName[] = [];
  for (const node of Object.keys(NODES) as NodeName[]) {
    const crt = `${o.outDir}/${node}.crt`;
    if (!o.force && await exists(crt)) continue;
    for (const f of [crt, `${o.outDir}/${node}.key`]) {
      if (await exists(f)) await Deno.remove(f);
    }
    await run(o.nebulaCert, [
      "sign",
      "-ca-crt",
      `${o.outDir}/ca.crt`,
      "-ca-key",
      `${o.outDir}/ca.key`,
      "-name",
      node,
      "-ip",
      `${o.overlay[node]}/${o.prefix}`,
      "-groups",
      NODES[node].group,
      "-duration",
      o.duration,
      "-out-crt",
      crt,
      "-out-key",
      `${o.outDir}/${node}.key`,
    ]);
    await Deno.chmod(`${o.outDir}/${node}.key`, 0o600);
    signed.push(node);
  }
  return signed;
}

/** What `nebula-cert print -json` says of a certificate. */
export interface CertInfo {
  name: string;
  ips: string[];
  groups: string[];
  notAfter: string;
  isCa: boolean;
}

/** Reads a certificate with `nebula-cert print -json`. */
export async function printCert(nebulaCert: string, path: string): Promise<CertInfo> {
  const out = await new Deno.Command(nebulaCert, {
    args: ["print", "-json", "-path", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`nebula-cert print ${path}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const json = JSON.parse(new TextDecoder().decode(out.stdout));
  const d = (Array.isArray(json) ? json[0] : json).details;
  return {
    name: d.name,
    ips: d.ips ?? [],
    groups: d.groups ?? [],
    notAfter: d.notAfter,
    isCa: d.isCa,
  };
}
