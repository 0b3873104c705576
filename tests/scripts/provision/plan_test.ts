/**
 * Provision's plan, generators and diff, without touching the system: the
 * tree, modes and memberships the architecture tables ask for, the sudoers
 * text, the audit rules, idempotent diffs, and the sudoers checks visudo
 * misses. The staging run (--root, --dry-run) runs the real CLI.
 */
import assert from "node:assert/strict";
import { loadPolicies, loadPolicyFile } from "../../../services/common/policy/mod.ts";
import { householdUnitsOf, isHouseholdUnitName } from "../../../scripts/provision/provision.ts";
import {
  type Accounts,
  type Action,
  checkSudoersFile,
  checkSudoersName,
  desiredState,
  diff,
  type PathState,
  type SystemView,
} from "../../../scripts/provision/mod.ts";
import { main } from "../../../scripts/provision.ts";
import { isRoot, REPO } from "./household.ts";
import type { Recipients } from "../../../services/common/policy/recipients.ts";

const recipients = (): Recipients =>
  structuredClone(loadPolicyFile("recipients", `${REPO}/policies/recipients.yaml`));

/** The local run's mechanism: sudoers. */
const input = (r = recipients()) => ({
  recipients: r,
  stateDir: "/var/lib/joi",
  configDir: "/etc/joi",
  retrieveBin: "/usr/local/bin/joi-retrieve",
  auditRulesPath: "/etc/audit/rules.d/joi.rules",
  retrieval: {
    kind: "sudo" as const,
    argsPattern: "^run --pinned$",
    sudoersPath: "/etc/sudoers.d/joi",
    sudoLog: "/var/log/joi-sudo.log",
  },
});

/** Production's mechanism: joi.service and each channel's retrieve units. */
const unitsInput = (r = recipients()) => {
  const p = loadPolicies(`${REPO}/policies`);
  return {
    ...input(r),
    retrieval: {
      kind: "units" as const,
      unitsDir: "/etc/systemd/system",
      units: householdUnitsOf({ ...p, recipients: r }),
      isManagedUnit: isHouseholdUnitName,
      sudoersPath: "/etc/sudoers.d/joi",
    },
  };
};

Deno.test("the tree follows the architecture tables: owners, groups, modes, setgid", () => {
  const want = desiredState(input());
  const by = Object.fromEntries(want.paths.map((p) => [p.path, p]));
  const k = "/var/lib/joi/knowledge";
  const expect: [string, string, string, number][] = [
    [`${k}/owner/private`, "joi", "joi-owner-private", 0o2750],
    [`${k}/partner/private`, "joi", "joi-partner-private", 0o2750],
    [`${k}/group/owner_public`, "joi", "joi-owner-readers", 0o2750],
    [`${k}/group/partner_public`, "joi", "joi-partner-readers", 0o2750],
    [`${k}/group/family`, "joi", "joi-family-readers", 0o2750],
    [`${k}/critical/safety`, "joi", "joi-critical", 0o2750],
    [`${k}/shared`, "joi", "joi-all-channels", 0o2750],
    [`${k}/shared/common`, "joi", "joi-all-channels", 0o2750],
    [k, "joi", "joi-all-channels", 0o750],
    // conversation memory is joi's own: no channel user owns or reads a store
    ["/var/lib/joi/data", "joi", "joi", 0o700],
    ["/etc/sudoers.d/joi", "root", "root", 0o440],
  ];
  for (const [path, owner, group, mode] of expect) {
    assert.deepEqual(
      [by[path]?.owner, by[path]?.group, by[path]?.mode],
      [owner, group, mode],
      path,
    );
  }
  assert.deepEqual(
    want.paths.filter((p) => p.path.endsWith(".db")),
    [],
    "provision pre-creates no store: joi creates its own 0600",
  );
  assert.equal(by["/var/lib/joi/data"]?.inside, "own");
  const order = want.paths.map((p) => p.path);
  for (const p of order) {
    const parent = p.slice(0, p.lastIndexOf("/"));
    if (order.includes(parent)) {
      assert.ok(order.indexOf(parent) < order.indexOf(p), `${parent} before ${p}`);
    }
  }
});

Deno.test("memberships: critical reads every public folder, never a private group; sharing follows the file", () => {
  const m = desiredState(input()).memberships;
  assert.deepEqual(m["joi-owner-readers"], ["joi-critical", "joi-family", "joi-owner-public"]);
  assert.deepEqual(m["joi-partner-readers"], ["joi-critical", "joi-partner-public"]);
  assert.deepEqual(m["joi-family-readers"], ["joi-critical", "joi-family"]);
  assert.equal(m["joi-all-channels"]!.length, 6);
  for (const g of ["joi-owner-private", "joi-partner-private", "joi-critical", "joi-family"]) {
    assert.deepEqual(m[g], [], `${g} has no supplementary member`);
  }
  const r = recipients();
  r.recipients.owner!.public_readers = ["joi-critical"];
  assert.deepEqual(desiredState(input(r)).memberships["joi-owner-readers"], [
    "joi-critical",
    "joi-owner-public",
  ]);
});

Deno.test("sudoers and audit rules say what the security notes require", () => {
  const want = desiredState(input());
  const sudoers = want.paths.find((p) => p.path === "/etc/sudoers.d/joi")!.content!;
  for (
    const line of [
      "Defaults:joi env_reset",
      "Defaults:joi !env_keep",
      'Defaults:joi secure_path="/usr/local/bin:/usr/bin:/bin"',
      "Defaults:joi logfile=/var/log/joi-sudo.log",
      "Defaults!/usr/local/bin/joi-retrieve !log_output, rlimit_data=805306368, rlimit_cpu=30",
      "Cmnd_Alias JOI_RETRIEVE_JOI = /usr/local/bin/joi-retrieve ^run --pinned$",
      "joi ALL=(joi-owner-private) NOPASSWD:NOEXEC: JOI_RETRIEVE_JOI",
      "joi ALL=(joi-critical) NOPASSWD:NOEXEC: JOI_RETRIEVE_JOI",
    ]
  ) assert.ok(sudoers.split("\n").includes(line), line);
  assert.equal(sudoers.split("\n").filter((l) => l.startsWith("joi ALL=")).length, 6);
  assert.ok(!/ALL\s*$/m.test(sudoers), "no rule ends in ALL (any command)");
  const audit = want.paths.find((p) => p.path.endsWith("joi.rules"))!.content!;
  assert.match(audit, /^-w \/var\/lib\/joi\/knowledge\/ -p rwxa -k joi-knowledge$/m);
  assert.match(audit, /^-w \/usr\/local\/bin\/joi-retrieve -p x -k joi-retrieve$/m);
  assert.match(audit, /^-w \/etc\/joi\/ -p wa -k joi-config$/m);
});

function fakeSystem(
  want: ReturnType<typeof desiredState>,
  tweak: (s: Map<string, PathState>, a: Accounts) => void,
): SystemView {
  const users = new Map<string, { name: string; uid: number; gid: number }>();
  const groups = new Map<string, { name: string; gid: number; members: string[] }>();
  let id = 1000;
  for (const u of ["root", ...want.users]) {
    users.set(u, { name: u, uid: u === "root" ? 0 : ++id, gid: id });
    groups.set(u, { name: u, gid: u === "root" ? 0 : id, members: [] });
  }
  for (const g of want.groups) groups.set(g, { name: g, gid: ++id, members: [] });
  for (const [g, members] of Object.entries(want.memberships)) {
    groups.get(g)!.members = [...members];
  }
  const stats = new Map<string, PathState>();
  for (const p of want.paths) {
    stats.set(p.path, {
      type: p.type,
      uid: users.get(p.owner)!.uid,
      gid: groups.get(p.group)!.gid,
      mode: p.mode,
      size: 0,
    });
  }
  const accounts = { users, groups };
  tweak(stats, accounts);
  const content = new Map(want.paths.filter((p) => p.content).map((p) => [p.path, p.content!]));
  return {
    accounts,
    stat: (p) => stats.get(p),
    read: (p) => content.get(p),
    entryCurrent: () => true,
    list: (dir) =>
      [...stats.keys()].filter((p) =>
        p.startsWith(`${dir}/`) && !p.slice(dir.length + 1).includes("/")
      )
        .map((p) => p.slice(dir.length + 1)),
    root: "",
    filesOnly: false,
  };
}

Deno.test("diff: nothing on a matching system; exactly the drift otherwise", () => {
  const want = desiredState(input());
  assert.deepEqual(diff(want, fakeSystem(want, () => {})), []);
  const drifted = diff(
    want,
    fakeSystem(want, (s, a) => {
      s.get("/var/lib/joi/knowledge/owner/private")!.mode = 0o755;
      s.delete("/var/lib/joi/knowledge/shared/common");
      a.groups.get("joi-owner-private")!.members.push("joi-critical");
      a.groups.get("joi-owner-readers")!.members = ["joi-critical", "joi-owner-public"];
      a.users.delete("joi-family");
    }),
  );
  const kinds = drifted.map((x: Action) =>
    x.kind === "fix" || x.kind === "create" ? `${x.kind} ${x.spec.path}` : JSON.stringify(x)
  );
  assert.deepEqual(kinds, [
    JSON.stringify({ kind: "add_user", user: "joi-family" }),
    JSON.stringify({ kind: "add_member", group: "joi-owner-readers", user: "joi-family" }),
    JSON.stringify({ kind: "remove_member", group: "joi-owner-private", user: "joi-critical" }),
    "fix /var/lib/joi/knowledge/owner/private",
    "create /var/lib/joi/knowledge/shared/common",
  ]);
  assert.throws(
    () =>
      diff(
        want,
        fakeSystem(want, (s) =>
          s.set("/var/lib/joi/knowledge/shared", {
            type: "symlink",
            uid: 0,
            gid: 0,
            mode: 0o777,
            size: 0,
          })),
      ),
    /is a symlink, expected a dir/,
  );
});

Deno.test("diff: a path whose group the plan still has to create is fixed, not assumed right", () => {
  // The first provision on a fresh VM: install made /var/lib/joi joi:joi, and
  // joi-all-channels does not exist yet. The path must be fixed after the
  // group is added (the old diff let an unknown group pass, then failed with
  // "still differs after applying").
  const want = desiredState(input());
  const view = fakeSystem(want, (s, a) => {
    a.groups.delete("joi-all-channels");
    s.get("/var/lib/joi")!.gid = a.groups.get("joi")!.gid;
  });
  const kinds = diff(want, view).map((x: Action) =>
    x.kind === "fix" ? `fix ${x.spec.path}` : x.kind === "add_group" ? `add_group ${x.group}` : ""
  ).filter((k) => k !== "");
  assert.ok(kinds.includes("add_group joi-all-channels"), kinds.join(", "));
  assert.ok(kinds.includes("fix /var/lib/joi"), kinds.join(", "));
  // a staging run (no accounts are created) still lets the unknown group pass
  assert.ok(!diff(want, { ...view, filesOnly: true }).some((x) => x.kind === "fix"));
});

Deno.test("production: joi.service and one socket + service per channel, each as its user; no sudoers", () => {
  const want = desiredState(unitsInput());
  const files = want.paths.filter((p) => p.path.startsWith("/etc/systemd/system/"));
  const names = files.map((p) => p.path.slice("/etc/systemd/system/".length)).sort();
  assert.deepEqual(names, [
    "joi-retrieve-critical_group.socket",
    "joi-retrieve-critical_group@.service",
    "joi-retrieve-family_group.socket",
    "joi-retrieve-family_group@.service",
    "joi-retrieve-owner_private_dm.socket",
    "joi-retrieve-owner_private_dm@.service",
    "joi-retrieve-owner_regular_dm.socket",
    "joi-retrieve-owner_regular_dm@.service",
    "joi-retrieve-partner_private_dm.socket",
    "joi-retrieve-partner_private_dm@.service",
    "joi-retrieve-partner_regular_dm.socket",
    "joi-retrieve-partner_regular_dm@.service",
    "joi.service",
  ]);
  for (const f of files) assert.deepEqual([f.owner, f.group, f.mode], ["root", "root", 0o644]);
  const text = (n: string) => files.find((f) => f.path.endsWith(`/${n}`))!.content!;
  assert.match(text("joi-retrieve-owner_private_dm@.service"), /^User=joi-owner-private$/m);
  assert.match(text("joi-retrieve-family_group@.service"), /^User=joi-family$/m);
  assert.match(text("joi-retrieve-owner_private_dm.socket"), /^SocketGroup=joi$/m);
  assert.match(text("joi-retrieve-owner_private_dm.socket"), /^SocketMode=0660$/m);
  assert.match(text("joi.service"), /unix:\/run\/joi-retrieve\/owner_private_dm\.sock/);
  assert.ok(!want.paths.some((p) => p.path.startsWith("/etc/sudoers.d/")), "no sudoers file");
  const audit = want.paths.find((p) => p.path.endsWith("joi.rules"))!.content!;
  assert.match(audit, /^-w \/etc\/systemd\/system\/joi\.service -p wa -k joi-retrieval$/m);
  assert.doesNotMatch(audit, /sudo/);
});

Deno.test("production: a removed recipient's units and a leftover sudoers file are removed", () => {
  const r = recipients();
  const full = desiredState(unitsInput(r));
  delete r.recipients.partner;
  r.groups.family!.readers = ["joi-critical"];
  const want = desiredState(unitsInput(r));
  // the system still has the full household's files, and an old sudoers file
  const sys = fakeSystem(full, (s) => {
    s.set("/etc/sudoers.d/joi", { type: "file", uid: 0, gid: 0, mode: 0o440, size: 1 });
    s.set("/etc/systemd/system/nebula.service", {
      type: "file",
      uid: 0,
      gid: 0,
      mode: 0o644,
      size: 1,
    });
  });
  const removed = diff(want, { ...sys, read: () => undefined }).filter((a) => a.kind === "remove")
    .map((a) => a.kind === "remove" ? a.path : "");
  assert.deepEqual(removed.sort(), [
    "/etc/sudoers.d/joi",
    "/etc/systemd/system/joi-retrieve-partner_private_dm.socket",
    "/etc/systemd/system/joi-retrieve-partner_private_dm@.service",
    "/etc/systemd/system/joi-retrieve-partner_regular_dm.socket",
    "/etc/systemd/system/joi-retrieve-partner_regular_dm@.service",
  ]);
});

Deno.test("sudoers checks visudo misses: dotted names, mode, missing runas users; and visudo itself", async () => {
  for (const bad of ["/etc/sudoers.d/joi.conf", "/etc/sudoers.d/joi~", "/etc/sudoers.d/"]) {
    assert.throws(() => checkSudoersName(bad), /silently ignored/);
  }
  checkSudoersName("/etc/sudoers.d/joi");
  const dir = await Deno.makeTempDir();
  try {
    const f = `${dir}/joi`;
    Deno.writeTextFileSync(f, "joi ALL=(joi-family) NOPASSWD: /usr/local/bin/joi-retrieve\n", {
      mode: 0o644,
    });
    Deno.chmodSync(f, 0o644);
    assert.throws(() => checkSudoersFile(f, ["joi-family"], () => true), /mode 0440/);
    Deno.chmodSync(f, 0o440);
    assert.throws(
      () => checkSudoersFile(f, ["joi-family"], () => false),
      /joi-family do not exist/,
    );
    checkSudoersFile(f, ["joi-family"], () => true, "visudo");
    Deno.chmodSync(f, 0o640);
    Deno.writeTextFileSync(f, "joi ALL=(joi-family NOPASSWD /x\n");
    Deno.chmodSync(f, 0o440);
    assert.throws(() => checkSudoersFile(f, [], () => true, "visudo"), /visudo -c rejected/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "CLI: --dry-run changes nothing, --root stages the files, a second run has nothing to do",
  ignore: !isRoot(), // the code-ownership check needs a root-owned checkout
  async fn() {
    const dir = await Deno.makeTempDir();
    const out: string[] = [];
    const log = console.log;
    console.log = (s: string) => out.push(s);
    try {
      const args = [`--config-dir=${REPO}/policies`, `--code-dir=${REPO}`, `--root=${dir}`];
      assert.equal(main([...args, "--dry-run"]), 0);
      assert.ok(
        out.some((l) => l.startsWith("provision: would: write /etc/systemd/system/joi.service")),
        out.join("\n"),
      );
      assert.ok(
        out.some((l) =>
          l.startsWith(
            "provision: would: write /etc/systemd/system/joi-retrieve-owner_private_dm@.service",
          )
        ),
        out.join("\n"),
      );
      assert.ok(out.every((l) => !l.includes("sudoers")), "production has no sudoers file");
      assert.ok(out.every((l) => !l.includes("useradd")), "staging never touches accounts");
      assert.deepEqual([...Deno.readDirSync(dir)], []);
      out.length = 0;
      assert.equal(main([...args, "--retrieval=sudo", "--dry-run"]), 0);
      assert.ok(out.some((l) => l.startsWith("provision: would: write /etc/sudoers.d/joi")));
      out.length = 0;
      assert.equal(main(args), 0);
      assert.ok(out.includes("provision: units changed: run `systemctl daemon-reload`"));
      const st = Deno.statSync(`${dir}/var/lib/joi/knowledge/owner/private`);
      assert.equal((st.mode ?? 0) & 0o7777, 0o2750);
      const units = [...Deno.readDirSync(`${dir}/etc/systemd/system`)].map((e) => e.name);
      assert.equal(units.length, 13, units.join(" "));
      for (const u of units) {
        assert.equal((Deno.statSync(`${dir}/etc/systemd/system/${u}`).mode ?? 0) & 0o7777, 0o644);
        assert.ok(!u.startsWith("."), "no staged leftovers");
      }
      assert.match(Deno.readTextFileSync(`${dir}/etc/audit/rules.d/joi.rules`), /joi-knowledge/);
      out.length = 0;
      assert.equal(main(args), 0);
      assert.deepEqual(out, ["provision: nothing to do"]);
      assert.equal(main(["--bogus"]), 2);
    } finally {
      console.log = log;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
