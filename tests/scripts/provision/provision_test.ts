/**
 * Provision on the real system (root only): users, groups, exact memberships,
 * the trees with owners, modes and setgid bits, the entry point and the
 * sudoers file; a second run changes nothing; drift is repaired exactly.
 */
import assert from "node:assert/strict";
import { asService, createHousehold, isRoot, run } from "./household.ts";
import { readAccounts } from "../../../scripts/provision/system.ts";
import { sameFile } from "../../../scripts/provision/plan.ts";

Deno.test({
  name: "provision creates the household, is idempotent and repairs drift",
  ignore: !isRoot(),
  async fn(t) {
    const h = createHousehold();
    try {
      const u = h.users;
      const g = h.groups;
      await t.step("users are nologin system users; groups and memberships are exact", () => {
        const acc = readAccounts();
        const passwd = Deno.readTextFileSync("/etc/passwd").split("\n");
        for (const user of Object.values(u)) {
          const line = passwd.find((l) => l.startsWith(`${user}:`))!;
          assert.ok(line, user);
          assert.ok(line.endsWith(":/nonexistent:/usr/sbin/nologin"), line);
          assert.ok(acc.users.get(user)!.uid < 1000, `${user} is a system user`);
        }
        const members = (name: string) => [...acc.groups.get(name)!.members].sort();
        assert.deepEqual(
          members(g.all),
          [u.critical, u.family, u.ownerPrivate, u.ownerPublic, u.partnerPrivate, u.partnerPublic]
            .sort(),
        );
        assert.deepEqual(members(g.ownerReaders), [u.critical, u.family, u.ownerPublic].sort());
        assert.deepEqual(members(g.partnerReaders), [u.critical, u.partnerPublic].sort());
        assert.deepEqual(members(g.familyReaders), [u.critical, u.family].sort());
        for (const own of [u.ownerPrivate, u.partnerPrivate, u.critical, u.family]) {
          assert.deepEqual(members(own), [], `${own}'s own group has no other member`);
        }
      });

      await t.step("critical is in every reader group and no private group (id -nG)", async () => {
        const groups = (await run("id", ["-nG", u.critical])).stdout.trim().split(/\s+/);
        for (const want of [g.ownerReaders, g.partnerReaders, g.familyReaders, g.all]) {
          assert.ok(groups.includes(want), want);
        }
        for (const never of [u.ownerPrivate, u.partnerPrivate, u.svc]) {
          assert.ok(!groups.includes(never), never);
        }
      });

      await t.step(
        "trees: owners, groups and modes as planned, setgid folders, entry point",
        () => {
          const acc = readAccounts();
          for (const spec of h.provisioned.want.paths) {
            const path = spec.path;
            const st = Deno.lstatSync(path);
            assert.equal(st.isDirectory, spec.type === "dir", path);
            assert.equal((st.mode ?? 0) & 0o7777, spec.mode, path);
            assert.equal(st.uid, spec.owner === "root" ? 0 : acc.users.get(spec.owner)!.uid, path);
            assert.equal(st.gid, spec.group === "root" ? 0 : acc.groups.get(spec.group)!.gid, path);
          }
          assert.equal((Deno.statSync(`${h.root}/owner/private`).mode ?? 0) & 0o7777, 0o2750);
          assert.ok(
            sameFile(h.retrieveBin, Deno.execPath()),
            "entry point is a root:root 0755 copy of deno",
          );
        },
      );

      await t.step(
        "joi, as its own user, opens every channel's memory; no channel user reads one",
        async () => {
          // conversation memory is joi's own (data/ joi:joi 0700, stores 0600)
          const out = await asService(h, { mode: "memory" });
          const opened = out.result as Record<string, string>;
          assert.deepEqual(Object.keys(opened).sort(), Object.keys(h.channels).sort());
          for (const [channel, status] of Object.entries(opened)) {
            assert.equal(status, "ok", `joi could not open ${channel}'s store: ${status}`);
          }
          const stores = [`${h.stateDir}/joi.db`];
          for (const e of Deno.readDirSync(`${h.stateDir}/data`)) {
            const p = `${h.stateDir}/data/${e.name}`;
            if (e.isFile) stores.push(p);
            else for (const f of Deno.readDirSync(p)) stores.push(`${p}/${f.name}`);
          }
          assert.ok(stores.length > Object.keys(h.channels).length, stores.join(" "));
          for (const user of Object.values(h.channels)) {
            for (const store of stores) {
              const r = await run("sudo", ["-u", user, "test", "-r", store]);
              assert.notEqual(r.code, 0, `${user} can read ${store}`);
            }
          }
          // and provision, run again, leaves joi's stores alone
          assert.deepEqual(h.reprovision().actions, []);
        },
      );

      await t.step("a second run changes nothing", () => {
        assert.deepEqual(h.reprovision().actions, []);
      });

      await t.step("drift is repaired exactly, then nothing is left", async () => {
        Deno.chmodSync(`${h.root}/owner/private`, 0o755);
        Deno.chownSync(`${h.root}/shared`, null, 0);
        assert.equal((await run("gpasswd", ["-a", u.critical, u.ownerPrivate])).code, 0);
        Deno.chmodSync(h.sudoersPath, 0o640);
        Deno.writeTextFileSync(h.sudoersPath, `${u.svc} ALL=(ALL) NOPASSWD: ALL\n`);
        Deno.chmodSync(h.sudoersPath, 0o440);
        const fixed = h.reprovision().actions;
        assert.deepEqual(
          fixed.map((a) => a.split(" ").slice(0, 3).join(" ")).sort(),
          [
            `chown/chmod ${h.root}/owner/private ${h.users.svc}:${u.ownerPrivate}`,
            `chown/chmod ${h.root}/shared ${h.users.svc}:${g.all}`,
            `gpasswd -d ${u.critical}`,
            `write ${h.sudoersPath} (root:root`,
          ].sort(),
        );
        assert.deepEqual(h.reprovision().actions, []);
        const groups = (await run("id", ["-nG", u.critical])).stdout;
        assert.ok(!groups.split(/\s+/).includes(u.ownerPrivate));
        assert.ok(!Deno.readTextFileSync(h.sudoersPath).includes("NOPASSWD: ALL"));
      });
    } finally {
      await h.cleanup();
    }
  },
});
