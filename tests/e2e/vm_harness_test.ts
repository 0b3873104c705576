/**
 * The booted-VM harness itself (tests/e2e/vm/), as root: three Debian VMs
 * with systemd as PID 1 on one bridge come up `running`, reach each other on
 * vmbr1 and nothing else, cannot change the host's kernel settings, survive a
 * reboot with their address, power off cleanly, and leave nothing behind —
 * also when the run that started them dies without cleaning up (the next run's
 * sweep removes what its record lists).
 *
 * @module
 */
import assert from "node:assert/strict";
import { hasExecutable, ignoreUnless, isRoot } from "../_helpers/requires.ts";
import { RUNS_DIR, sweepDeadRuns } from "./leftovers.ts";
import { sh } from "./process.ts";
import { Cluster } from "./vm/cluster.ts";

const HOSTS = [
  { name: "mesh", address: "10.99.0.1" },
  { name: "joi", address: "10.99.0.2" },
  { name: "openhab", address: "10.99.0.3" },
];

const needs = ignoreUnless(
  [isRoot(), "root"],
  [hasExecutable("/usr/sbin/debootstrap"), "debootstrap (apt install debootstrap)"],
  [hasExecutable("/usr/bin/unshare") && hasExecutable("/usr/bin/nsenter"), "util-linux"],
);

/** Whether `from` opens (or is refused by) a TCP port at `to`: refused means reachable. */
async function reaches(c: Cluster, from: string, to: string): Promise<string> {
  const r = await c.vm(from).exec([
    "timeout",
    "3",
    "bash",
    "-c",
    `exec 3<>/dev/tcp/${to}/9`,
  ], { check: false });
  if (/refused/i.test(r.stderr)) return "reachable";
  if (r.code === 124) return "timeout";
  return `exit ${r.code}: ${r.stderr.trim()}`;
}

Deno.test({
  name: "vm harness: three booted Debian VMs on vmbr1, reboot, poweroff, nothing left behind",
  ignore: needs,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const c = await Cluster.start({ hosts: HOSTS, prefix: 29, print: console.error });
    const problems: string[] = [];
    try {
      await t.step("each VM runs systemd as PID 1, state running, its own host name", async () => {
        for (const h of HOSTS) {
          const vm = c.vm(h.name);
          const r = await vm.exec([
            "sh",
            "-c",
            "cat /proc/1/comm; hostname; systemctl is-system-running",
          ]);
          assert.deepEqual(r.stdout.trim().split("\n"), ["systemd", h.name, "running"]);
          const addr = await vm.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth1"]);
          assert.match(addr.stdout, new RegExp(`inet ${h.address.replaceAll(".", "\\.")}/29`));
        }
      });

      await t.step("the VMs reach each other on vmbr1, and nothing beyond it", async () => {
        assert.equal(await reaches(c, "joi", "10.99.0.1"), "reachable");
        assert.equal(await reaches(c, "mesh", "10.99.0.3"), "reachable");
        assert.match(await reaches(c, "joi", "10.99.0.9"), /timeout|unreachable/i);
      });

      await t.step(
        "the host's kernel settings are read-only inside, the VM's network's are not",
        async () => {
          const vm = c.vm("joi");
          const k = await vm.exec([
            "sh",
            "-c",
            "cat /proc/sys/kernel/pid_max > /proc/sys/kernel/pid_max",
          ], {
            check: false,
          });
          assert.notEqual(k.code, 0, "kernel.* must not be writable from a VM");
          assert.match(k.stderr, /Read-only file system/);
          const hostBefore =
            (await sh("sh", ["-c", "cat /proc/sys/net/ipv4/tcp_syn_retries"])).stdout;
          await vm.exec(["sh", "-c", "echo 2 > /proc/sys/net/ipv4/tcp_syn_retries"]);
          const inside = await vm.exec(["cat", "/proc/sys/net/ipv4/tcp_syn_retries"]);
          assert.equal(inside.stdout.trim(), "2");
          const hostAfter =
            (await sh("sh", ["-c", "cat /proc/sys/net/ipv4/tcp_syn_retries"])).stdout;
          assert.equal(hostAfter, hostBefore, "the VM's network settings are its own");
          const tun = await vm.exec(["stat", "-c", "%a %t:%T", "/dev/net/tun"]);
          assert.equal(
            tun.stdout.trim(),
            "666 a:c8",
            "/dev/net/tun is 0666 inside, as Debian makes it",
          );
        },
      );

      await t.step(
        "a reboot comes back running with its address and its disk; the old boot is gone",
        async () => {
          const vm = c.vm("openhab");
          await vm.writeFile("/var/lib/marker", "kept\n", { mode: 0o640, owner: "root:adm" });
          await vm.exec(["chattr", "+i", "/var/lib/marker"]);
          await vm.writeFile("/run/this-boot", "x");
          await vm.exec(["systemd-run", "--unit=marker", "sleep", "1000"]);
          const oldPid = vm.pid;
          assert.equal(await vm.reboot(), "running");
          assert.notEqual(vm.pid, oldPid);
          assert.equal(vm.boots, 2);
          const marker = await vm.exec(["systemctl", "is-active", "marker"], { check: false });
          assert.equal(
            marker.stdout.trim(),
            "inactive",
            "the transient unit did not survive the reboot",
          );
          const addr = await vm.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth1"]);
          assert.match(addr.stdout, /10\.99\.0\.3\/29/);
          assert.equal(await reaches(c, "openhab", "10.99.0.2"), "reachable");
          const run = await vm.exec(["test", "-e", "/run/this-boot"], { check: false });
          assert.equal(run.code, 1, "a new boot: /run is empty again");
          assert.equal(await vm.readFile("/var/lib/marker"), "kept\n");
          const st = await vm.exec(["stat", "-c", "%a %U:%G", "/var/lib/marker"]);
          assert.equal(st.stdout.trim(), "640 root:adm");
          const attr = await vm.exec(["lsattr", "/var/lib/marker"]);
          assert.match(attr.stdout, /^\S*i\S*\s/, "chattr +i holds on the VM's disk");
          const other = await c.vm("joi").exec(["test", "-e", "/var/lib/marker"], { check: false });
          assert.equal(other.code, 1, "a VM's disk is its own");
        },
      );

      await t.step("a host directory copied in keeps modes and links", async () => {
        const src = await Deno.makeTempDir({ prefix: "joi-e2e-copy-" });
        try {
          await Deno.writeTextFile(`${src}/a.sh`, "#!/bin/sh\necho hi\n", { mode: 0o750 });
          await sh("sh", ["-c", 'ln -s a.sh "$1/link"', "sh", src]);
          await c.vm("joi").copyIn(src, "/root/copied");
          const r = await c.vm("joi").exec([
            "sh",
            "-c",
            "stat -c '%a %U' /root/copied/a.sh; readlink /root/copied/link; /root/copied/link",
          ]);
          assert.equal(r.stdout, "750 root\na.sh\nhi\n");
        } finally {
          await Deno.remove(src, { recursive: true });
        }
      });

      await t.step("poweroff stops a VM cleanly", async () => {
        await c.vm("mesh").poweroff();
        assert.equal(c.vm("mesh").running, false);
      });
    } finally {
      problems.push(...await c.destroy());
    }
    assert.deepEqual(problems, [], "teardown left nothing behind");
    assert.deepEqual(await c.leftovers(), []);
  },
});

Deno.test({
  name: "vm harness: a run killed with its VMs up is swept by the next run",
  ignore: needs,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await Cluster.start({ hosts: HOSTS.slice(0, 2), prefix: 29 });
    try {
      // the run "dies": its record now names a process that is gone
      const dead = new Deno.Command("sh", { args: ["-c", "true"] }).spawn();
      const { success } = await dead.status;
      assert.ok(success);
      const record = `${RUNS_DIR}/${c.tag}.json`;
      const r = JSON.parse(await Deno.readTextFile(record));
      await Deno.writeTextFile(record, JSON.stringify({ ...r, pid: dead.pid }));
      assert.equal(c.vm("joi").running, true);
      const swept = await sweepDeadRuns();
      // other dead runs on a shared machine may be swept too (or not be ours to
      // remove): only this run's record is judged
      const ours = swept.filter((s) => s.startsWith(`${c.tag}.json`));
      assert.equal(ours.length, 1, swept.join(", "));
      assert.ok(!ours[0]!.includes("(left:"), ours[0]);
      assert.deepEqual(await c.leftovers(), [], "the sweep removed everything the run made");
    } finally {
      await c.destroy();
    }
  },
});
