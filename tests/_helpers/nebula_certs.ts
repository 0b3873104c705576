/**
 * Nebula certificates for tests, made by the real `nebula-cert` (Debian's
 * package): a CA and one node's certificate with a chosen validity, so the
 * certificate watches, validate and the doctor are tested on what Nebula
 * itself writes.
 *
 * @module
 */

/** Debian's nebula-cert. */
export const NEBULA_CERT = "/usr/bin/nebula-cert";

/** The overlay address of each node in the shipped network.yaml. */
const IPS: Record<string, string> = { joi: "10.42.0.10", mesh: "10.42.0.1", openhab: "10.42.0.20" };

/** Runs nebula-cert; resolves to its stdout, throws with its stderr. */
export async function nebulaCert(args: string[]): Promise<string> {
  const out = await new Deno.Command(NEBULA_CERT, { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** Options of {@link makeCerts}. */
export interface CertOptions {
  /** The node (`joi`, `mesh`, `openhab`). */
  node: string;
  /** Its certificate's validity, as nebula-cert takes it (`170h`, `2s`). */
  duration: string;
  /** Where the CA's key goes (default: beside the certificates). */
  caKeyDir?: string;
  /** Keep an existing CA (default: make a new one). */
  keepCa?: boolean;
}

/** Writes `ca.crt` and `<node>.crt`/`<node>.key` into `dir` (replacing them). */
export async function makeCerts(dir: string, o: CertOptions): Promise<void> {
  const caKey = `${o.caKeyDir ?? dir}/ca.key`;
  const files = [`${dir}/${o.node}.crt`, `${dir}/${o.node}.key`];
  if (!o.keepCa) files.push(`${dir}/ca.crt`, caKey);
  for (const f of files) await Deno.remove(f).catch(() => {});
  if (!o.keepCa) {
    await nebulaCert([
      "ca",
      "-name",
      "t",
      "-duration",
      "9000h",
      "-out-crt",
      `${dir}/ca.crt`,
      "-out-key",
      caKey,
    ]);
  }
  await nebulaCert([
    "sign",
    ...["-ca-crt", `${dir}/ca.crt`, "-ca-key", caKey, "-name", o.node],
    ...["-ip", `${IPS[o.node] ?? "10.42.0.99"}/24`, "-groups", o.node, "-duration", o.duration],
    ...["-out-crt", `${dir}/${o.node}.crt`, "-out-key", `${dir}/${o.node}.key`],
  ]);
}
