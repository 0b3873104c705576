/**
 * Log retention as deployed: the rendered logrotate file run by the real
 * logrotate over a folder of aged logs (application logs past 90 days go,
 * security logs never), while a service's file sink keeps writing across the
 * rotation without losing a line; the journald drop-in.
 */
import assert from "node:assert/strict";
import { createLogger, fileSink } from "../../../services/common/log.ts";
import {
  KEEP_DAYS,
  LOG_FILES,
  renderJournald,
  renderLogrotate,
} from "../../../services/common/log_retention.ts";
import { hasExecutable, ignoreUnless, isRoot } from "../../_helpers/requires.ts";

const LOGROTATE = "/usr/sbin/logrotate";
const DAY = 86_400_000;

Deno.test("file sink: a file moved away by logrotate is followed by a new one; no line lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-log-" });
  try {
    const log = createLogger("joi", { quiet: true, sinks: [fileSink(`${dir}/joi.log`, false, 0)] });
    log.info("before", {});
    await Deno.rename(`${dir}/joi.log`, `${dir}/joi.log-1`);
    log.info("after", {});
    log.info("after2", {});
    const old = await Deno.readTextFile(`${dir}/joi.log-1`);
    const now = await Deno.readTextFile(`${dir}/joi.log`);
    assert.deepEqual(old.trim().split("\n").map((l) => JSON.parse(l).event), ["before"]);
    assert.deepEqual(now.trim().split("\n").map((l) => JSON.parse(l).event), ["after", "after2"]);
    assert.equal((await Deno.stat(`${dir}/joi.log`)).mode! & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "logrotate (real): application logs kept 90 days, security logs never deleted, writers follow",
  ignore: ignoreUnless([isRoot(), "root"], [
    hasExecutable(LOGROTATE),
    "logrotate (Debian package)",
  ]),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "joi-logrotate-" });
    await Deno.chmod(dir, 0o750);
    try {
      const conf = renderLogrotate("joi", { dir, owner: "root" })!;
      await Deno.writeTextFile(`${dir}/joi.conf`, conf);
      const now = Date.now();
      const aged = async (name: string, days: number) => {
        await Deno.writeTextFile(`${dir}/${name}`, `old ${name}\n`);
        const t = new Date(now - days * DAY);
        await Deno.utime(`${dir}/${name}`, t, t);
      };
      // what earlier rotations left: 120 days of each
      for (const d of [1, 30, 89, 91, 120]) {
        const stamp = new Date(now - d * DAY).toISOString().slice(0, 10).replaceAll("-", "");
        await aged(`joi.log-${stamp}-${Math.floor((now - d * DAY) / 1000)}.gz`, d);
        await aged(`security.log-${stamp}-${Math.floor((now - d * DAY) / 1000)}.gz`, d);
      }
      const app = createLogger("joi", {
        quiet: true,
        sinks: [fileSink(`${dir}/joi.log`, false, 0), fileSink(`${dir}/security.log`, true, 0)],
      });
      app.info("one", {});
      app.security("s_one", {});
      const out = await new Deno.Command(LOGROTATE, {
        args: ["-f", "-s", `${dir}/state`, `${dir}/joi.conf`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      app.info("two", {});
      app.security("s_two", {});
      const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      const older = (prefix: string, days: number) =>
        names.filter((n) => n.startsWith(prefix + "-") && n.endsWith(".gz")).filter((n) => {
          const t = Deno.statSync(`${dir}/${n}`).mtime!.getTime();
          return now - t > days * DAY;
        });
      assert.deepEqual(older("joi.log", KEEP_DAYS), [], names.join(" "));
      assert.equal(older("joi.log", 1).length, 2); // 30 and 89 days
      assert.equal(older("security.log", KEEP_DAYS).length, 2); // 91 and 120 days: kept
      // the files rotated now (not yet compressed: delaycompress) hold the lines before
      const rotatedNow = (prefix: string) =>
        names.filter((n) => n.startsWith(prefix + "-") && !n.endsWith(".gz"));
      assert.equal(rotatedNow("joi.log").length, 1, names.join(" "));
      assert.match(await Deno.readTextFile(`${dir}/${rotatedNow("joi.log")[0]}`), /"one"/);
      assert.match(await Deno.readTextFile(`${dir}/${rotatedNow("security.log")[0]}`), /"s_one"/);
      // and the writers carried on in new files
      assert.match(await Deno.readTextFile(`${dir}/joi.log`), /"two"/);
      assert.doesNotMatch(await Deno.readTextFile(`${dir}/joi.log`), /"one"/);
      assert.match(await Deno.readTextFile(`${dir}/security.log`), /"s_two"/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "logrotate: the rendered file of every VM passes logrotate's own check",
  ignore: ignoreUnless([hasExecutable(LOGROTATE), "logrotate (Debian package)"]),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "joi-logrotate-d-" });
    try {
      for (const role of ["joi", "mesh"] as const) {
        const path = `${dir}/${role}.conf`;
        await Deno.writeTextFile(path, renderLogrotate(role, { dir, owner: "root" })!);
        const out = await new Deno.Command(LOGROTATE, {
          args: ["-d", "-s", `${dir}/state`, path],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
        assert.ok(out.success, text);
        assert.doesNotMatch(text, /^error:/m, text);
        for (const f of [...LOG_FILES[role].app, ...LOG_FILES[role].security]) {
          assert.match(text, new RegExp(`${dir}/${f.replace(".", "\\.")}`));
        }
      }
      assert.equal(renderLogrotate("openhab"), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("log retention: journald keeps 90 days within 1 GB; security logs are never deleted", () => {
  assert.match(renderJournald(), /^MaxRetentionSec=90day$/m);
  assert.match(renderJournald(), /^SystemMaxUse=1G$/m);
  assert.ok(
    renderLogrotate("joi")!.includes(
      "security.log {\n    weekly\n    maxsize 20M\n    rotate -1\n",
    ),
  );
  assert.doesNotMatch(renderLogrotate("joi")!.split("security.log {")[1]!, /maxage/);
  assert.match(renderLogrotate("mesh")!, /su joi-mesh joi-mesh/);
});
