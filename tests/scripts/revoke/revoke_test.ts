/**
 * joi-revoke-recipient on a provisioned household, as a real child process
 * with its manifest flags: a real revocation (real users, groups, processes,
 * a process receiving SIGHUP), refusals that change nothing, the dry run,
 * and a kill at every step that leaves the files loading as before or after.
 */
import assert from "node:assert/strict";
import { loadPolicies } from "../../../services/common/policy/mod.ts";
import { parseGroup } from "../../../scripts/provision/system.ts";
import { type Household, stageHousehold } from "../validate/household.ts";
import { revokeArgv, runRevoke, snapshot } from "./harness.ts";

const isRoot = Deno.uid() === 0;
const POLICY_FILES = [
  "recipients.yaml",
  "channel_users.yaml",
  "identities.yaml",
  "groups.yaml",
  "policy.yaml",
];

function shadowOf(user: string): string[] {
  const line = Deno.readTextFileSync("/etc/shadow").split("\n").find((l) =>
    l.startsWith(`${user}:`)
  );
  assert.ok(line, `no shadow entry for ${user}`);
  return line.split(":");
}

function groupsHolding(user: string): string[] {
  return [...parseGroup(Deno.readTextFileSync("/etc/group")).values()]
    .filter((g) => g.members.includes(user)).map((g) => g.name);
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

Deno.test({
  name:
    "revoke partner: users locked and in no group, processes ended, YAML clean, joi HUPed, valid",
  ignore: !isRoot,
  fn: async () => {
    const h = await stageHousehold({ accounts: "real" });
    const procs: Deno.ChildProcess[] = [];
    try {
      const priv = h.name("joi-partner-private");
      const pub = h.name("joi-partner-public");
      assert.ok(groupsHolding(pub).includes(h.name("joi-all-channels")));
      // a process running as the partner's channel user
      const sleeper = new Deno.Command("sudo", {
        args: ["-u", priv, "sleep", "600"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      procs.push(sleeper);
      // a stand-in for joi that records SIGHUP
      const hupFile = `${h.root}/hup`;
      const joi = new Deno.Command("sh", {
        args: ["-c", `trap 'echo hup > ${hupFile}; exit 0' HUP; while :; do sleep 0.05; done`],
        stdin: "null",
      }).spawn();
      procs.push(joi);
      Deno.mkdirSync(`${h.root}/run/joi`, { recursive: true });
      Deno.writeTextFileSync(`${h.root}/run/joi/joi.pid`, `${joi.pid}\n`);
      await waitFor(() => {
        const ps = new Deno.Command("pkill", { args: ["-0", "-u", priv] }).outputSync();
        return ps.code === 0;
      }, "the partner's process to start");

      const before = loadPolicies(h.configDir);
      assert.ok(Object.hasOwn(before.recipients.recipients, "partner"));
      const r = await runRevoke(h, ["partner"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Configuration validation passed/);
      assert.match(r.stdout, /OPTIONAL purge/);
      assert.match(r.stdout, new RegExp(`rm -rf ${h.root}/var/lib/joi/knowledge/partner\n`));

      // accounts
      for (const u of [priv, pub]) {
        const sh = shadowOf(u);
        assert.ok(sh[1]!.startsWith("!"), `${u} must be locked (shadow: ${sh[1]})`);
        assert.equal(sh[7], "1", `${u} must be expired`);
        assert.deepEqual(groupsHolding(u), [], `${u} must be in no group`);
      }
      assert.ok(groupsHolding(h.name("joi-owner-public")).includes(h.name("joi-all-channels")));
      // processes: the partner's sleep was killed; joi got SIGHUP
      const st = await sleeper.status;
      assert.equal(st.success, false);
      await waitFor(() => {
        try {
          return Deno.readTextFileSync(hupFile).trim() === "hup";
        } catch {
          return false;
        }
      }, "joi's SIGHUP");
      // retrieval: the partner's channels have no retrieve units, joi no socket for them
      const units = [...Deno.readDirSync(`${h.root}/etc/systemd/system`)].map((e) => e.name);
      assert.ok(!units.some((u) => u.includes("partner")), units.join(" "));
      assert.ok(units.includes("joi-retrieve-owner_private_dm@.service"));
      const joiUnit = Deno.readTextFileSync(`${h.root}/etc/systemd/system/joi.service`);
      assert.doesNotMatch(joiUnit, /partner/);
      assert.match(joiUnit, /unix:\/run\/joi-retrieve\/owner_private_dm\.sock/);
      // files
      for (const f of POLICY_FILES) {
        const text = Deno.readTextFileSync(`${h.configDir}/${f}`);
        assert.ok(!/partner/i.test(text), `${f} still mentions partner:\n${text}`);
      }
      const after = loadPolicies(h.configDir);
      assert.deepEqual(Object.keys(after.recipients.recipients), ["owner"]);
      assert.equal(
        Object.values(after.identities.identities).some((i) => i.recipient_id === "partner"),
        false,
      );
      // comments of what stays survive the structural edit
      assert.match(
        Deno.readTextFileSync(`${h.configDir}/recipients.yaml`),
        /# the owner shares their public knowledge with the family/,
      );
      // a timestamped backup holds the originals
      const backups = [...Deno.readDirSync(`${h.configDir}/backup`)];
      assert.equal(backups.length, 1);
      assert.match(backups[0]!.name, /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-revoke-partner$/);
      const saved = Deno.readTextFileSync(
        `${h.configDir}/backup/${backups[0]!.name}/identities.yaml`,
      );
      assert.match(saved, /recipient_id: partner/);
      // a second revoke of the same id is refused and changes nothing
      const snap = snapshot(h.configDir);
      const again = await runRevoke(h, ["partner"]);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /unknown recipient "partner" \(recipients.yaml has: owner\)/);
      assert.deepEqual(snapshot(h.configDir), snap);
    } finally {
      for (const p of procs) {
        try {
          p.kill("SIGKILL");
        } catch { /* already gone */ }
        await p.status;
      }
      await h.cleanup();
    }
  },
});

Deno.test("revoke of an unknown id fails cleanly and changes nothing", async () => {
  const h = await stageHousehold();
  try {
    const snap = snapshot(`${h.root}/etc`);
    const r = await runRevoke(h, ["stranger"]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /unknown recipient "stranger" \(recipients.yaml has: owner, partner\); nothing changed/,
    );
    assert.equal(r.stdout, "");
    assert.deepEqual(snapshot(`${h.root}/etc`), snap);
  } finally {
    await h.cleanup();
  }
});

Deno.test("revoke refuses bad usage and hidden test hooks without --test-hooks", async () => {
  const h = await stageHousehold();
  try {
    const snap = snapshot(`${h.root}/etc`);
    const none = await runRevoke(h, []);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /expected exactly one recipient id, got 0/);
    const hook = await runRevoke(h, ["partner", "--pause-at=staged"]);
    assert.equal(hook.code, 2);
    assert.match(hook.stderr, /accepted only with --test-hooks/);
    assert.deepEqual(snapshot(`${h.root}/etc`), snap);
  } finally {
    await h.cleanup();
  }
});

Deno.test("revoke --dry-run prints the plan and changes nothing", async () => {
  const h = await stageHousehold();
  try {
    const snap = snapshot(`${h.root}/etc`);
    const r = await runRevoke(h, ["partner", "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(
      lines[0],
      "Revoking recipient partner (users joi-partner-private, joi-partner-public; " +
        "channels partner_private_dm, partner_regular_dm)",
    );
    for (
      const l of [
        "  run: /usr/bin/gpasswd -d joi-partner-private joi-all-channels",
        "  run: /usr/bin/gpasswd -d joi-partner-public joi-all-channels",
        "  run: /usr/bin/gpasswd -d joi-partner-public joi-partner-readers",
        "  run: /usr/sbin/usermod --lock --expiredate 1 joi-partner-private",
        "  run: /usr/bin/pkill -KILL -u joi-partner-public",
        "  retrieval: rm /etc/systemd/system/joi-retrieve-partner_private_dm.socket " +
        "(a channel recipients.yaml no longer has)",
        "  retrieval: rm /etc/systemd/system/joi-retrieve-partner_regular_dm@.service " +
        "(a channel recipients.yaml no longer has)",
        "  retrieval: write /etc/systemd/system/joi.service (root:root 0644)",
        "  edit: recipients.yaml (structural, atomic, with a backup)",
        "  edit: policy.yaml (structural, atomic, with a backup)",
        "  then: joi-validate-config",
      ]
    ) assert.ok(lines.includes(l), `plan lacks ${JSON.stringify(l)}:\n${r.stdout}`);
    assert.ok(lines.some((l) => l.startsWith("  reload: not possible:")), r.stdout);
    assert.deepEqual(snapshot(`${h.root}/etc`), snap);
  } finally {
    await h.cleanup();
  }
});

/** Starts revoke paused at `step`, SIGKILLs it there. */
async function killAt(h: Household, step: string): Promise<void> {
  const child = new Deno.Command("deno", {
    args: revokeArgv(h, ["partner", "--test-hooks", `--pause-at=${step}`]),
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let seen = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (!seen.includes(`PAUSED ${step}`)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`revoke ended before ${step}:\n${seen}`);
      seen += value;
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel().catch(() => {});
  }
}

function hasPartner(dir: string): boolean {
  return Object.hasOwn(loadPolicies(dir).recipients.recipients, "partner");
}

Deno.test({
  name: "revoke killed at every step: the files load as before or as after, never half",
  ignore: !isRoot,
  fn: async () => {
    const h = await stageHousehold({ accounts: "real" });
    try {
      const pristine = Object.fromEntries(
        POLICY_FILES.map((f) => [f, Deno.readTextFileSync(`${h.configDir}/${f}`)]),
      );
      const steps = [
        "accounts",
        "retrieval",
        "staged",
        "backed-up",
        "intent",
        ...POLICY_FILES.map((f) => `renamed:${f}`),
        "committed",
        "reloaded",
      ];
      const outcomes: string[] = [];
      for (const step of steps) {
        for (const [f, t] of Object.entries(pristine)) {
          Deno.writeTextFileSync(`${h.configDir}/${f}`, t);
        }
        await killAt(h, step);
        const staging = `${h.configDir}/.revoke-staging`;
        const intent = (() => {
          try {
            Deno.statSync(`${staging}/INTENT.json`);
            return true;
          } catch {
            return false;
          }
        })();
        let direct: string;
        try {
          direct = hasPartner(h.configDir) ? "before" : "after";
        } catch {
          direct = "half";
        }
        // a half state only ever exists behind a committed intent, which recovery completes
        if (direct === "half") assert.ok(intent, `half state without an intent at ${step}`);
        const rec = await runRevoke(h, ["--recover"]);
        assert.equal(rec.code, 0, rec.stderr);
        let final: string;
        try {
          final = hasPartner(h.configDir) ? "before" : "after";
        } catch (e) {
          throw new Error(`after recovery at ${step} (${rec.stdout.trim()}): ${e}`);
        }
        if (intent) assert.equal(final, "after", `committed intent at ${step} must roll forward`);
        else if (direct !== "half") {
          assert.equal(final, direct, `recovery changed a whole state at ${step}`);
        }
        assert.throws(() => Deno.statSync(staging), Deno.errors.NotFound);
        outcomes.push(`${step}:${direct}->${final}`);
      }
      assert.deepEqual(outcomes, [
        "accounts:before->before",
        "retrieval:before->before",
        "staged:before->before",
        "backed-up:before->before",
        "intent:before->after",
        "renamed:recipients.yaml:half->after",
        "renamed:channel_users.yaml:half->after",
        "renamed:identities.yaml:half->after",
        "renamed:groups.yaml:half->after",
        "renamed:policy.yaml:after->after",
        "committed:after->after",
        "reloaded:after->after",
      ]);
    } finally {
      await h.cleanup();
    }
  },
});
