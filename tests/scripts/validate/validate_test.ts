/**
 * joi-validate-config on a freshly provisioned household (staged root, fake
 * accounts): it passes clean, and fails naming the exact problem for each
 * injected fault.
 */
import assert from "node:assert/strict";
import { validate } from "../../../scripts/validate/mod.ts";
import { formatFinding, type Report } from "../../../scripts/validate/mod.ts";
import { gidOf, type Household, stageHousehold, uidOf } from "./household.ts";
import { makeCerts } from "../../_helpers/nebula_certs.ts";

function run(h: Household): Report {
  return validate({
    root: h.root,
    configDir: h.configDir,
    passwdFile: h.passwdFile,
    groupFile: h.groupFile,
  });
}

/** The codes of failing (CRITICAL/ERROR) findings, sorted and unique. */
function failing(r: Report): string[] {
  return [...new Set(r.findings.filter((f) => f.severity !== "WARNING").map((f) => f.code))]
    .sort();
}

/** Runs a shell command (symlinks need unscoped permissions in Deno itself). */
function sh(script: string): void {
  const out = new Deno.Command("sh", { args: ["-c", script], stderr: "piped" }).outputSync();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

function editFile(path: string, edit: (text: string) => string): void {
  const before = Deno.readTextFileSync(path);
  const after = edit(before);
  assert.notEqual(after, before, `test edit changed nothing in ${path}`);
  Deno.writeTextFileSync(path, after);
}

function addMember(h: Household, group: string, user: string): void {
  editFile(
    h.groupFile,
    (t) =>
      t.replace(
        new RegExp(`^(${group}:x:\\d+:)(.*)$`, "m"),
        (_, head, list) => head + (list ? `${list},${user}` : user),
      ),
  );
}

function removeMember(h: Household, group: string, user: string): void {
  editFile(
    h.groupFile,
    (t) =>
      t.replace(
        new RegExp(`^(${group}:x:\\d+:)(.*)$`, "m"),
        (_, head, list: string) => head + list.split(",").filter((m) => m !== user).join(","),
      ),
  );
}

/**
 * Stages a household, injects one fault, validates, and checks the failing
 * codes are exactly `codes` and some failing finding's text holds `names`.
 */
async function fault(
  codes: string[],
  names: string[],
  inject: (h: Household) => void | Promise<void>,
): Promise<void> {
  const h = await stageHousehold();
  try {
    await inject(h);
    const r = run(h);
    assert.equal(r.summary.ok, false, "validation must fail");
    assert.deepEqual(failing(r), [...codes].sort(), r.findings.map(formatFinding).join("\n"));
    const text = r.findings.filter((f) => codes.includes(f.code)).map(formatFinding).join("\n");
    for (const n of names) {
      assert.ok(text.includes(n.replaceAll("<root>", h.root)), `findings must name ${n}:\n${text}`);
    }
  } finally {
    await h.cleanup();
  }
}

const K = "<root>/var/lib/joi/knowledge";

Deno.test("validate: a freshly provisioned household passes (only the chattr warning)", async () => {
  const h = await stageHousehold();
  try {
    const r = run(h);
    assert.equal(r.summary.ok, true, r.findings.map(formatFinding).join("\n"));
    assert.deepEqual(r.findings.map((f) => f.code), ["retrieve_not_immutable"]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("validate: an immutable retrieve entry point leaves no finding at all", async () => {
  const h = await stageHousehold();
  try {
    const bin = `${h.root}/usr/local/bin/joi-retrieve`;
    const out = new Deno.Command("chattr", { args: ["+i", bin] }).outputSync();
    if (!out.success) {
      console.log(`skipped: chattr +i failed here (${new TextDecoder().decode(out.stderr)})`);
      return;
    }
    const r = run(h);
    assert.deepEqual(r.findings, []);
    assert.equal(r.summary.ok, true);
  } finally {
    await h.cleanup();
  }
});

Deno.test("fault 1: critical added to a private group", () =>
  fault(
    ["critical_in_private_group"],
    ["joi-critical is in the private group joi-owner-private"],
    (h) => addMember(h, "joi-owner-private", "joi-critical"),
  ));

Deno.test("fault 2: a private folder 0755", () =>
  fault(
    ["wrong_mode", "setgid_missing"],
    [`${K}/owner/private has mode 0755, expected 02750`],
    (h) => Deno.chmodSync(`${h.root}/var/lib/joi/knowledge/owner/private`, 0o755),
  ));

Deno.test("fault 2b: a private folder 02755 (setgid kept, others can read)", async () => {
  await fault(
    ["wrong_mode"],
    [`${K}/partner/private has mode 02755`, "others can access it"],
    (h) => Deno.chmodSync(`${h.root}/var/lib/joi/knowledge/partner/private`, 0o2755),
  );
});

Deno.test("fault 3: a missing setgid bit", () =>
  fault(
    ["setgid_missing"],
    [`${K}/group/family has mode 0750 without the setgid bit`],
    (h) => Deno.chmodSync(`${h.root}/var/lib/joi/knowledge/group/family`, 0o750),
  ));

Deno.test("fault 4: a file owned by the wrong group", () =>
  fault(["wrong_group"], [`${K}/group/owner_public/note.md has group joi-partner-readers`], (h) => {
    const p = `${h.root}/var/lib/joi/knowledge/group/owner_public/note.md`;
    Deno.writeTextFileSync(p, "# note\n", { mode: 0o640 });
    Deno.chmodSync(p, 0o640);
    Deno.chownSync(p, uidOf(h, "joi"), gidOf(h, "joi-partner-readers"));
  }));

Deno.test("fault 4b: a document in the right group passes; a world-readable one does not", async () => {
  const h = await stageHousehold();
  try {
    const p = `${h.root}/var/lib/joi/knowledge/group/owner_public/note.md`;
    Deno.writeTextFileSync(p, "# note\n");
    Deno.chownSync(p, uidOf(h, "joi"), gidOf(h, "joi-owner-readers"));
    Deno.chmodSync(p, 0o640);
    assert.equal(run(h).summary.ok, true);
    Deno.chmodSync(p, 0o644);
    const r = run(h);
    assert.deepEqual(failing(r), ["wrong_mode"]);
    assert.ok(r.findings.some((f) => f.what.includes(`${p} has mode 0644`)));
  } finally {
    await h.cleanup();
  }
});

Deno.test("fault 5: an extra member in a reader group", () =>
  fault(
    ["extra_group_member"],
    ["joi-family is a member of joi-partner-readers"],
    (h) => addMember(h, "joi-partner-readers", "joi-family"),
  ));

Deno.test("fault 5b: a missing member of a reader group", () =>
  fault(
    ["missing_group_member"],
    ["joi-critical is not a member of joi-family-readers"],
    (h) => removeMember(h, "joi-family-readers", "joi-critical"),
  ));

Deno.test("fault 6: a channel user deleted", () =>
  fault(
    ["channel_user_missing"],
    ["channel user joi-partner-public does not exist"],
    (h) => editFile(h.passwdFile, (t) => t.replace(/^joi-partner-public:.*\n/m, "")),
  ));

Deno.test("fault 7: a sudoers file left by an older install (production retrieval needs no sudo)", () =>
  fault(
    ["stale_retrieval_file"],
    ["<root>/etc/sudoers.d/joi should not exist", "joi needs no sudo"],
    (h) => {
      Deno.mkdirSync(`${h.root}/etc/sudoers.d`, { recursive: true });
      Deno.writeTextFileSync(`${h.root}/etc/sudoers.d/joi`, "joi ALL=(ALL) NOPASSWD: ALL\n");
    },
  ));

Deno.test("fault 8: a retrieve service edited to run as another channel's user", () =>
  fault(
    ["retrieval_unit_modified"],
    [
      "<root>/etc/systemd/system/joi-retrieve-family_group@.service differs",
      '"User=joi-owner-private"',
    ],
    (h) =>
      editFile(
        `${h.root}/etc/systemd/system/joi-retrieve-family_group@.service`,
        (t) => t.replace(/^User=.*$/m, "User=joi-owner-private"),
      ),
  ));

Deno.test("fault 8b: a revoked channel's retrieve units still installed", () =>
  fault(
    ["stale_retrieval_file"],
    ["<root>/etc/systemd/system/joi-retrieve-lodger_private_dm.socket should not exist"],
    (h) =>
      Deno.writeTextFileSync(
        `${h.root}/etc/systemd/system/joi-retrieve-lodger_private_dm.socket`,
        "[Socket]\nListenStream=/run/joi-retrieve/lodger_private_dm.sock\n",
      ),
  ));

Deno.test("fault 8c: a retrieve socket any local user may connect to", () =>
  fault(
    ["retrieval_unit_modified"],
    ["joi-retrieve-owner_private_dm.socket differs", '"SocketMode=0666"'],
    (h) =>
      editFile(
        `${h.root}/etc/systemd/system/joi-retrieve-owner_private_dm.socket`,
        (t) => t.replace(/^SocketMode=.*$/m, "SocketMode=0666"),
      ),
  ));

Deno.test("fault 9: retrieve owned (and so writable) by a non-root user", () =>
  fault(
    ["retrieve_not_root_owned"],
    ["joi-retrieve is owned by joi:root, not root:root"],
    (h) => Deno.chownSync(`${h.root}/usr/local/bin/joi-retrieve`, uidOf(h, "joi"), 0),
  ));

Deno.test("fault 9b: retrieve writable by its group", () =>
  fault(
    ["retrieve_writable"],
    ["joi-retrieve has mode 0775: writable by group root"],
    (h) => Deno.chmodSync(`${h.root}/usr/local/bin/joi-retrieve`, 0o775),
  ));

Deno.test("fault 10: UMask missing from joi.service", () =>
  fault(
    ["umask_missing", "retrieval_unit_modified"],
    ["joi.service has no UMask=0027"],
    (h) =>
      editFile(`${h.root}/etc/systemd/system/joi.service`, (t) => t.replace(/^UMask=.*\n/m, "")),
  ));

Deno.test("fault 11: a secret 0644", () =>
  fault(
    ["secret_mode"],
    ["secret <root>/etc/joi/secrets/memory.key has mode 0644, expected 0600"],
    (h) => Deno.chmodSync(`${h.root}/etc/joi/secrets/memory.key`, 0o644),
  ));

Deno.test("fault 11b: a secret owned by root instead of the service user", () =>
  fault(
    ["secret_owner"],
    ["secret <root>/etc/joi/secrets/mesh_to_joi.key is owned by root"],
    (h) => Deno.chownSync(`${h.root}/etc/joi/secrets/mesh_to_joi.key`, 0, null),
  ));

Deno.test("fault 12: a unit with an extra --allow-net host", () =>
  fault(
    ["unit_flag_extra", "retrieval_unit_modified"],
    ["joi.service ExecStart grants joi --allow-net=203.0.113.9:443"],
    (h) =>
      editFile(
        `${h.root}/etc/systemd/system/joi.service`,
        (t) => t.replace(/^(ExecStart=.*--allow-net=)/m, "$1203.0.113.9:443,"),
      ),
  ));

Deno.test("fault 12c: a retrieve service (it runs as a channel user) gains a permission", () =>
  fault(
    ["unit_flag_extra", "retrieval_unit_modified"],
    [
      "joi-retrieve-critical_group@.service ExecStart grants retrieve --allow-write=/var/lib/joi",
    ],
    (h) =>
      editFile(
        `${h.root}/etc/systemd/system/joi-retrieve-critical_group@.service`,
        (t) => t.replace(/^(ExecStart=.*) (--allow-read=)/m, "$1 --allow-write=/var/lib/joi $2"),
      ),
  ));

Deno.test("fault 12b: a unit started with -A", () =>
  fault(
    ["unit_flag_unscoped", "unit_flag_missing", "retrieval_unit_modified"],
    ["joi.service ExecStart runs joi with -A"],
    (h) =>
      editFile(`${h.root}/etc/systemd/system/joi.service`, (t) =>
        t.replace(/^(ExecStart=\S+ run .*?) --allow-read=\S+/m, "$1 -A")),
  ));

Deno.test("fault 13: a channel in channel_users.yaml that recipients do not imply", () =>
  fault(
    ["channel_users_mismatch"],
    ['channel "stranger_dm" does not follow from recipients.yaml'],
    (h) => editFile(`${h.configDir}/channel_users.yaml`, (t) => t + "  stranger_dm: joi-family\n"),
  ));

Deno.test("fault 14: a banned model", () =>
  fault(
    ["banned_model"],
    ['model "qwen2.5:7b-instruct" belongs to the banned family "qwen"', "llm.yaml:"],
    (h) =>
      editFile(`${h.configDir}/llm.yaml`, (t) =>
        t.replace(/^primary_model: .*$/m, "primary_model: qwen2.5:7b-instruct")),
  ));

Deno.test("fault 15: a malformed YAML file", () =>
  fault(
    ["policy_yaml_malformed"],
    ["<root>/etc/joi/policy.yaml:", "YAML: Flow sequence"],
    (h) =>
      editFile(`${h.configDir}/policy.yaml`, (t) => {
        const lines = t.split("\n");
        lines.splice(2, 0, "security: [unclosed");
        return lines.join("\n");
      }),
  ));

Deno.test("fault 16: a symlink planted in a knowledge folder", () =>
  fault(
    ["unexpected_symlink"],
    [`${K}/group/family/leak.md is a symlink`],
    (h) =>
      sh(
        `ln -s '${h.root}/var/lib/joi/knowledge/owner/private' ` +
          `'${h.root}/var/lib/joi/knowledge/group/family/leak.md'`,
      ),
  ));

Deno.test("fault 17: a knowledge folder owned by a channel user", () =>
  fault(
    ["wrong_owner"],
    [`${K}/critical/safety is owned by joi-critical, expected joi`],
    (h) =>
      Deno.chownSync(
        `${h.root}/var/lib/joi/knowledge/critical/safety`,
        uidOf(h, "joi-critical"),
        null,
      ),
  ));

Deno.test("fault 18: an interrupted revocation left its staging folder", () =>
  fault(
    ["revoke_interrupted"],
    ["<root>/etc/joi/.revoke-staging", "--recover"],
    (h) => Deno.mkdirSync(`${h.configDir}/.revoke-staging`),
  ));

Deno.test("fault 19: the retrieve entry module writable by the service user", () =>
  fault(["code_writable"], [
    "<root>/opt/joi/scripts/retrieve.ts (file, joi:root, 0644) can be changed",
    "reads every channel's knowledge through sudo",
  ], (h) => Deno.chownSync(`${h.root}/opt/joi/scripts/retrieve.ts`, uidOf(h, "joi"), 0)));

Deno.test("fault 20: the code directory group-writable", () =>
  fault(
    ["code_writable"],
    ["<root>/opt/joi/scripts (dir, root:root, 0775)"],
    (h) => Deno.chmodSync(`${h.root}/opt/joi/scripts`, 0o775),
  ));

Deno.test("fault 21: a memory store a channel user could open (owned by it, or group-readable)", async () => {
  await fault(
    ["wrong_owner"],
    ["<root>/var/lib/joi/data/owner/private.db is owned by joi-owner-private, expected joi"],
    (h) => {
      Deno.mkdirSync(`${h.root}/var/lib/joi/data/owner`, { mode: 0o700 });
      Deno.writeFileSync(`${h.root}/var/lib/joi/data/owner/private.db`, new Uint8Array(), {
        mode: 0o600,
      });
      Deno.chownSync(`${h.root}/var/lib/joi/data/owner`, uidOf(h, "joi"), gidOf(h, "joi"));
      Deno.chownSync(
        `${h.root}/var/lib/joi/data/owner/private.db`,
        uidOf(h, "joi-owner-private"),
        gidOf(h, "joi-owner-private"),
      );
    },
  );
  await fault(
    ["wrong_mode"],
    ["<root>/var/lib/joi/joi.db has mode 0640"],
    (h) => {
      Deno.writeFileSync(`${h.root}/var/lib/joi/joi.db`, new Uint8Array(), { mode: 0o640 });
      Deno.chmodSync(`${h.root}/var/lib/joi/joi.db`, 0o640);
      Deno.chownSync(`${h.root}/var/lib/joi/joi.db`, uidOf(h, "joi"), gidOf(h, "joi"));
    },
  );
});

Deno.test("validate: a Nebula certificate ending within 30 days warns; an expired one fails validate", async () => {
  const h = await stageHousehold();
  try {
    const dir = `${h.root}/etc/nebula`;
    await Deno.mkdir(dir, { recursive: true });
    // the CA's key stays outside the VM's folder, as on a real VM
    const sign = (duration: string, keepCa = true) =>
      makeCerts(dir, { node: "joi", duration, caKeyDir: h.root, keepCa });
    await sign("2000h", false);
    assert.deepEqual(run(h).findings.map((f) => f.code), ["retrieve_not_immutable"]);
    await sign("200h"); // 8 days
    let r = run(h);
    assert.equal(r.summary.ok, true);
    const warn = r.findings.find((f) => f.code === "nebula_cert_expiring");
    assert.match(warn!.what, /^Nebula node joi's certificate expires in 8 days/);
    assert.match(warn!.fix, /deno task nebula \.\.\. --rotate/);
    await sign("2s");
    await new Promise((ok) => setTimeout(ok, 2100));
    r = run(h);
    assert.equal(r.summary.ok, false);
    assert.deepEqual(failing(r), ["nebula_cert_expired"]);
    assert.match(
      r.findings.find((f) => f.code === "nebula_cert_expired")!.what,
      /^Nebula node joi's certificate expired at .*: Nebula refuses it, this VM is cut off$/,
    );
  } finally {
    await h.cleanup();
  }
});

Deno.test({
  name:
    "as each user: joi opens what it must; a channel user who could read another's folder is caught",
  ignore: Deno.uid() !== 0,
  async fn() {
    const h = await stageHousehold({ accounts: "real" });
    try {
      const codes = (r: Report) => r.findings.map((f) => f.code);
      const clean = run(h);
      assert.equal(clean.summary.ok, true, clean.findings.map(formatFinding).join("\n"));
      // the kernel, asked as the family's channel user, lets it into the owner's
      // private folder once it is in that folder's group
      const fam = h.name("joi-family");
      const ownerPrivate = h.name("joi-owner-private");
      const gp = new Deno.Command("gpasswd", { args: ["-a", fam, ownerPrivate], stdout: "null" })
        .outputSync();
      assert.ok(gp.success);
      const leak = run(h);
      const f = leak.findings.find((x) => x.code === "matrix_leak");
      assert.ok(f, leak.findings.map(formatFinding).join("\n"));
      assert.equal(f.severity, "CRITICAL");
      assert.match(f.what, new RegExp(`${fam} can read .*/knowledge/owner/private`));
      new Deno.Command("gpasswd", { args: ["-d", fam, ownerPrivate], stdout: "null" }).outputSync();
      // a policy file joi cannot read (root:root 0640, as the old installer left them)
      Deno.chmodSync(`${h.configDir}/policy.yaml`, 0o600);
      const denied = run(h);
      const d = denied.findings.find((x) => x.code === "service_user_denied");
      assert.match(d?.what ?? codes(denied).join(","), /cannot read .*\/etc\/joi\/policy\.yaml/);
    } finally {
      await h.cleanup();
    }
  },
});
