/**
 * The Debian image every VM of the booted end-to-end test starts from, built
 * once by {@link ./image.sh} (debootstrap, about a minute and 400 MB) and
 * cached under `./var/e2e/images/`, keyed by what goes in it: changing a
 * package list builds a new one. Runs copy it (`cp -a`, about a second).
 *
 * @module
 */
import { sh } from "../process.ts";

/** The Debian release of the VMs (Proxmox's Debian 12 guests run bookworm). */
export const SUITE = "bookworm";

/**
 * Installed in the image: what a fresh Debian 12 with systemd as init has.
 * minbase holds the `required` packages; a netinst adds the `important` ones,
 * of which these matter here (procps for `ps`, iproute2, nftables for the
 * guard, kmod, less, logrotate with its timer), plus dbus, which systemd's
 * tools expect.
 */
export const BASE_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "procps",
  "iproute2",
  "nftables",
  "kmod",
  "less",
  "logrotate",
];

/**
 * Downloaded into the image's apt cache but not installed: the packages the
 * README's deployment section installs with `apt-get install` on a VM. The VMs
 * have no network, so a package the README needs and this list lacks fails
 * the test with apt's own message (add it here), and a package the README
 * forgets to install is missing in the VM, as it would be on a real one.
 */
export const OFFERED_PACKAGES = ["nebula", "sudo"];

/** Where images are cached (CI starts from a clean clone: the first run builds). */
export const IMAGE_DIR = "./var/e2e/images";

/** The image's directory name for the current package lists. */
export async function imageName(): Promise<string> {
  const script = await Deno.readFile(new URL("./image.sh", import.meta.url));
  const spec = new TextEncoder().encode(
    JSON.stringify([SUITE, BASE_PACKAGES, OFFERED_PACKAGES]),
  );
  const bytes = new Uint8Array([...spec, ...script]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `debian-${SUITE}-${hex}`;
}

/**
 * The cached image's absolute path, built first when missing; `print` hears
 * about a build and how long it took.
 */
export async function ensureImage(print: (line: string) => void = () => {}): Promise<string> {
  await Deno.mkdir(IMAGE_DIR, { recursive: true, mode: 0o700 });
  const path = `${await Deno.realPath(IMAGE_DIR)}/${await imageName()}`;
  try {
    if ((await Deno.stat(`${path}/etc/os-release`)).isFile) return path;
  } catch { /* not built yet */ }
  const started = Date.now();
  print(`e2e: building the Debian ${SUITE} image (debootstrap; cached in ${IMAGE_DIR})`);
  await sh("bash", [
    new URL("./image.sh", import.meta.url).pathname,
    path,
    SUITE,
    BASE_PACKAGES.join(" "),
    OFFERED_PACKAGES.join(" "),
  ]);
  print(`e2e: image built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return path;
}
