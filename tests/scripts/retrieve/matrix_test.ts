/**
 * The access matrix of the architecture document, cell by cell, with the real
 * thing: a provisioned household (users, groups, setgid folders, sudoers: the
 * local run's mechanism), a document in every folder indexed by the service
 * user, and for each folder x channel user the real `sudo -u <svc> sudo -n -u
 * <user> joi-retrieve ...` with the request on stdin. Plus: sharing both ways,
 * symlinks and hard links planted in a shared folder, and the sudoers rule
 * refusing injected environments, arguments and other commands. (Production's
 * mechanism, systemd's per-channel sockets, is shown by the booted tests.)
 *
 * Root only (CI runs as root): skipped with a reason otherwise.
 */
import assert from "node:assert/strict";
import { canonicalQueryJson } from "../../../services/joi/knowledge/retrieve_protocol.ts";
import { ACCESS_MATRIX, type Channel } from "../../_helpers/access_matrix.ts";
import {
  createHousehold,
  type Household,
  indexAsService,
  isRoot,
  putDocument,
  REPO,
  retrieveAs,
  run,
  symlink,
  testRecipients,
  uidOf,
} from "../provision/household.ts";

type Role =
  | "ownerPrivate"
  | "ownerPublic"
  | "partnerPrivate"
  | "partnerPublic"
  | "family"
  | "critical";
const ROLES: Role[] = [
  "ownerPrivate",
  "ownerPublic",
  "partnerPrivate",
  "partnerPublic",
  "family",
  "critical",
];

/** The channel each role's user serves. */
const CHANNEL_OF: Record<Role, Channel> = {
  ownerPrivate: "owner_private_dm",
  ownerPublic: "owner_regular_dm",
  partnerPrivate: "partner_private_dm",
  partnerPublic: "partner_regular_dm",
  family: "family_group",
  critical: "critical_group",
};

/** The architecture document's access matrix ({@link ACCESS_MATRIX}) by role. */
const MATRIX: Record<string, Role[]> = Object.fromEntries(
  Object.entries(ACCESS_MATRIX).map(([folder, channels]) => [
    folder,
    ROLES.filter((r) => channels.includes(CHANNEL_OF[r])),
  ]),
);

const search = (q: string) => canonicalQueryJson({ type: "search", q, limit: 10 });

function token(folder: string): string {
  return `tok${folder.replace(/[^a-z]/g, "")}${
    crypto.randomUUID().slice(0, 6).replace(/[^a-z]/g, "q")
  }`;
}

interface Placed {
  folder: string;
  token: string;
  id: string;
}

async function placeDocuments(h: Household): Promise<Placed[]> {
  const placed: Placed[] = [];
  for (const folder of Object.keys(MATRIX)) {
    const t = token(folder);
    const id = crypto.randomUUID();
    putDocument(
      h,
      folder,
      "doc.md",
      `---\nid: ${id}\ntitle: Doc of ${folder}\n---\nThe word ${t} lives here.\n`,
    );
    placed.push({ folder, token: t, id });
  }
  const ix = await indexAsService(h);
  const reports = ix.result as { folder: string; indexed: number }[];
  for (const p of placed) {
    assert.equal(reports.find((r) => r.folder === p.folder)?.indexed, 1, `indexed ${p.folder}`);
  }
  return placed;
}

async function assertCell(h: Household, role: Role, p: Placed, allowed: boolean) {
  const user = h.users[role];
  const r = await retrieveAs(h, user, "search", search(p.token));
  assert.equal(r.code, 0, `${role} x ${p.folder}: ${r.stderr}`);
  assert.equal(r.stderr, "");
  const out = JSON.parse(r.stdout);
  assert.equal(out.status, "ok");
  if (allowed) {
    assert.equal(out.results.length, 1, `${role} should find ${p.folder}`);
    assert.equal(out.results[0].id, p.id);
    assert.equal(out.results[0].source, `${p.folder}/doc.md`);
    assert.equal(out.results[0].accessed_as, `uid:${uidOf(user)}`);
  } else {
    assert.deepEqual(out.results, [], `${role} must not find ${p.folder}`);
    assert.ok(!r.stdout.includes(p.folder) && !r.stdout.includes(p.token), "no path, no content");
  }
}

Deno.test({
  name: "access matrix: every folder x every channel user, through sudo and the real retrieve",
  ignore: !isRoot(),
  async fn(t) {
    const h = createHousehold();
    try {
      const placed = await placeDocuments(h);

      await t.step("each cell of the matrix (search)", async () => {
        for (const p of placed) {
          for (const role of ROLES) await assertCell(h, role, p, MATRIX[p.folder]!.includes(role));
        }
      });

      await t.step("get by id finds private documents only for their owner", async () => {
        for (const p of placed.filter((x) => x.folder.endsWith("/private"))) {
          for (const role of ROLES) {
            const r = await retrieveAs(
              h,
              h.users[role],
              "get",
              canonicalQueryJson({ type: "get", id: p.id }),
            );
            assert.equal(r.code, 0, r.stderr);
            const n = JSON.parse(r.stdout).results.length;
            assert.equal(n, MATRIX[p.folder]!.includes(role) ? 1 : 0, `${role} get ${p.folder}`);
          }
        }
      });

      await t.step(
        "family reads owner's public knowledge only while the owner shares it",
        async () => {
          const ownerPublic = placed.find((p) => p.folder === "group/owner_public")!;
          const partnerPublic = placed.find((p) => p.folder === "group/partner_public")!;
          await assertCell(h, "family", ownerPublic, true);
          await assertCell(h, "family", partnerPublic, false); // partner does not share
          const unshared = h.reprovision(testRecipients(h.prefix, false));
          assert.deepEqual(unshared.actions, [
            `gpasswd -d ${h.users.family} ${h.groups.ownerReaders}`,
          ]);
          await assertCell(h, "family", ownerPublic, false);
          await assertCell(h, "critical", ownerPublic, true);
          const shared = h.reprovision(testRecipients(h.prefix, true));
          assert.deepEqual(shared.actions, [
            `gpasswd -a ${h.users.family} ${h.groups.ownerReaders}`,
          ]);
          await assertCell(h, "family", ownerPublic, true);
        },
      );

      await t.step(
        "symlinks planted in shared/ pointing into a private folder do not leak",
        async () => {
          const secret = placed.find((p) => p.folder === "owner/private")!;
          await symlink(`${h.root}/owner/private/doc.md`, `${h.root}/shared/leak.md`);
          await symlink(`${h.root}/owner/private`, `${h.root}/shared/common/privdir`);
          await symlink(`${h.root}/owner/private`, `${h.root}/zz-link`);
          const ix = await indexAsService(h);
          const shared = (ix.result as { folder: string; skipped: { source: string }[] }[])
            .find((r) => r.folder === "shared")!;
          assert.deepEqual(shared.skipped.map((s) => s.source).sort(), [
            "shared/common/privdir",
            "shared/leak.md",
          ]);
          for (const role of ROLES) await assertCell(h, role, secret, role === "ownerPrivate");
          const own = JSON.parse(
            (await retrieveAs(h, h.users.ownerPrivate, "search", search(secret.token))).stdout,
          );
          assert.deepEqual(own.results.map((r: { source: string }) => r.source), [
            "owner/private/doc.md",
          ]);
        },
      );

      await t.step("a hard link planted in shared/ fails closed: indexed nowhere", async () => {
        const secret = placed.find((p) => p.folder === "owner/private")!;
        const target = `${h.root}/owner/private/doc.md`;
        const hard = `${h.root}/shared/hard.md`;
        const ln = await run("sh", ["-c", 'ln "$1" "$2"', "sh", target, hard]);
        assert.equal(ln.code, 0, ln.stderr);
        const ix = await indexAsService(h);
        const skipped = (ix.result as { skipped: { source: string; reason: string }[] }[])
          .flatMap((r) => r.skipped).filter((s) => s.reason.includes("hard-linked"));
        assert.deepEqual(skipped.map((s) => s.source).sort(), [
          "owner/private/doc.md",
          "shared/hard.md",
        ]);
        for (const role of ROLES) await assertCell(h, role, secret, false);
        Deno.removeSync(hard);
        await indexAsService(h);
        for (const role of ROLES) await assertCell(h, role, secret, role === "ownerPrivate");
      });

      await t.step(
        "sudoers: valid, 0440, and only the pinned command line is admitted",
        async () => {
          const st = Deno.statSync(h.sudoersPath);
          assert.equal((st.mode ?? 0) & 0o7777, 0o440);
          assert.equal((await run("visudo", ["-c", "-q", "-f", h.sudoersPath])).code, 0);
          const json = search(placed.find((p) => p.folder === "group/family")!.token);
          const request = `search ${json}\n`;
          const base = [h.retrieveBin, ...h.fixedArgv];
          const asSvc = (args: string[]) =>
            run("sudo", ["-u", h.users.svc, "sudo", "-n", ...args], undefined, request);
          const ok = await asSvc(["-u", h.users.family, "--", ...base]);
          assert.equal(ok.code, 0, ok.stderr);
          assert.equal(JSON.parse(ok.stdout).results.length, 1);
          const refused: [string, string[]][] = [
            ["VAR=value", ["-u", h.users.family, "LD_PRELOAD=/nonexistent-jt.so", ...base]],
            ["-E", ["-E", "-u", h.users.family, ...base]],
            ["eval", ["-u", h.users.family, h.retrieveBin, "eval", "console.log(1)"]],
            ["shell", ["-u", h.users.family, "/bin/sh", "-c", "id"]],
            ["-A", [
              "-u",
              h.users.family,
              ...base.map((a) => a.startsWith("--allow-read=") ? "-A" : a),
            ]],
            ["other script", [
              "-u",
              h.users.family,
              ...base.map((a) => a.endsWith("retrieve.ts") ? `${REPO}/scripts/index.ts` : a),
            ]],
            ["extra arg", ["-u", h.users.family, ...base, "x"]],
            ["query in argv", ["-u", h.users.family, ...base, "search", json]],
            ["runas root", ["-u", "root", ...base]],
            ["runas svc itself", ["-u", h.users.svc, ...base]],
            ["runas nobody", ["-u", "nobody", ...base]],
          ];
          for (const [what, args] of refused) {
            const r = await asSvc(args);
            assert.notEqual(r.code, 0, `${what} must be refused`);
            assert.equal(r.stdout, "", what);
          }
        },
      );

      await t.step("an LD_PRELOAD in joi's environment never reaches retrieve", async () => {
        const marker = "/nonexistent-jt-preload.so";
        // control: the dynamic loader complains visibly when LD_PRELOAD reaches a program
        const control = await run("sudo", [
          "-u",
          h.users.svc,
          "sh",
          "-c",
          `LD_PRELOAD=${marker} exec "$@"`,
          "sh",
          h.retrieveBin,
          "--version",
        ]);
        assert.match(control.stderr, /LD_PRELOAD/);
        const json = search(placed.find((p) => p.folder === "group/family")!.token);
        const r = await run(
          "sudo",
          [
            "-u",
            h.users.svc,
            "sh",
            "-c",
            `LD_PRELOAD=${marker} DENO_DIR=/tmp exec "$@"`,
            "sh",
            "sudo",
            "-n",
            "-u",
            h.users.family,
            h.retrieveBin,
            ...h.fixedArgv,
          ],
          undefined,
          `search ${json}\n`,
        );
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /LD_PRELOAD/);
        assert.equal(JSON.parse(r.stdout).results.length, 1);
      });
    } finally {
      await h.cleanup();
    }
  },
});
