/**
 * joi's write path and retrieve client, run AS the service user against a
 * provisioned household: writes land in the channel's folder (0640, folder
 * group) and are found a moment later by exactly the right users; cross-channel
 * writes are refused; the client (through the local broker's sockets and real
 * sudo) denies unknown channels, refuses bad queries, enforces its timeout and
 * never passes retrieve's stderr on.
 *
 * Root only (CI runs as root).
 */
import assert from "node:assert/strict";
import { canonicalQueryJson } from "../../../../services/joi/knowledge/retrieve_protocol.ts";
import {
  asService,
  createHousehold,
  isRoot,
  retrieveAs,
  run,
  uidOf,
} from "../../../scripts/provision/household.ts";

interface Outcome {
  status: string;
  reason?: string;
  results: { id: string; source: string; accessed_as: string; folder: string }[];
}

Deno.test({
  name: "joi writes and retrieves as the service user; the kernel and the caller hold the line",
  ignore: !isRoot(),
  async fn(t) {
    const h = createHousehold();
    try {
      const word = `quokka${crypto.randomUUID().slice(0, 4).replace(/[^a-z]/g, "x")}`;
      let savedId = "";

      await t.step(
        "a write for family_group lands in group/family, 0640, folder group",
        async () => {
          const r = await asService(h, {
            mode: "write",
            channel: "family_group",
            doc: { title: "Zoo trip", body: `We saw a ${word} at the zoo.`, category: "outings" },
          });
          assert.equal(r.uid, uidOf(h.users.svc));
          const saved =
            (r.result as { saved: { id: string; source: string; folder: string } }).saved;
          assert.equal(saved.folder, "group/family");
          savedId = saved.id;
          const st = Deno.lstatSync(`${h.root}/${saved.source}`);
          assert.equal((st.mode ?? 0) & 0o7777, 0o640);
          assert.equal(st.uid, uidOf(h.users.svc));
          const group = Deno.readTextFileSync("/etc/group").split("\n")
            .find((l) => l.startsWith(`${h.groups.familyReaders}:`))!.split(":")[2];
          assert.equal(st.gid, Number(group));
          const index = Deno.lstatSync(`${h.root}/group/family/.joi-index.sqlite`);
          assert.equal(index.gid, Number(group));
          assert.equal((index.mode ?? 0) & 0o777, 0o640);
        },
      );

      await t.step("the right users find it a moment later, the others do not", async () => {
        const q = canonicalQueryJson({ type: "search", q: word, limit: 5 });
        const expect: [string, boolean][] = [
          [h.users.family, true],
          [h.users.critical, true],
          [h.users.ownerPublic, false],
          [h.users.ownerPrivate, false],
          [h.users.partnerPublic, false],
          [h.users.partnerPrivate, false],
        ];
        for (const [user, found] of expect) {
          const r = await retrieveAs(h, user, "search", q);
          assert.equal(r.code, 0, r.stderr);
          const ids = JSON.parse(r.stdout).results.map((x: { id: string }) => x.id);
          assert.deepEqual(ids, found ? [savedId] : [], user);
        }
        const listed = await retrieveAs(
          h,
          h.users.family,
          "list",
          canonicalQueryJson({ type: "list", category: "outings", limit: 5 }),
        );
        assert.equal(JSON.parse(listed.stdout).results[0].id, savedId);
      });

      await t.step(
        "a cross-channel write and an unknown channel are refused and logged",
        async () => {
          const cross = await asService(h, {
            mode: "write",
            channel: "family_group",
            folder: "owner/private",
            doc: { title: "x", body: "y" },
          });
          assert.equal((cross.result as { refused: string }).refused, "cross_channel");
          assert.equal(cross.events[0]!.level, "security");
          assert.equal(cross.events[0]!.event, "cross_channel_write_blocked");
          const unknown = await asService(h, {
            mode: "write",
            channel: "stranger_dm",
            doc: { title: "x", body: "y" },
          });
          assert.equal((unknown.result as { refused: string }).refused, "denied");
          const files = [...Deno.readDirSync(`${h.root}/owner/private`)].map((e) => e.name);
          assert.deepEqual(files, [], "nothing was written to owner/private");
        },
      );

      await t.step(
        "the caller (as joi) finds it for critical_group, named as the channel user",
        async () => {
          const r = await asService(h, {
            mode: "retrieve",
            channel: "critical_group",
            type: "search",
            query: { q: word },
          });
          const out = r.result as Outcome;
          assert.equal(out.status, "ok");
          assert.deepEqual(out.results.map((x) => [x.id, x.accessed_as, x.folder]), [[
            savedId,
            h.users.critical,
            "group/family",
          ]]);
          const denied = await asService(h, {
            mode: "retrieve",
            channel: "owner_regular_dm",
            type: "get",
            query: { id: savedId },
          });
          assert.deepEqual((denied.result as Outcome).results, []);
        },
      );

      await t.step(
        "unknown channel, bad query, timeout and failure: error outcomes, no stderr passed on",
        async () => {
          // a search for the saved word on the family group's socket, varied per case
          const family = (o: Partial<Parameters<typeof asService>[1]>) =>
            asService(h, {
              mode: "retrieve",
              channel: "family_group",
              type: "search",
              query: { q: word },
              ...o,
            });
          const unknown = await asService(h, {
            mode: "retrieve",
            channel: "stranger_dm",
            type: "search",
            query: { q: word },
          });
          assert.deepEqual(unknown.result, { status: "error", results: [], reason: "denied" });
          const denied = unknown.events.find((e) => e.event === "retrieve_denied");
          assert.equal(denied?.level, "security");
          const bad = await family({ query: { q: "../../etc/shadow" } });
          assert.deepEqual(bad.result, { status: "error", results: [], reason: "invalid_query" });
          const slow = await family({ clientTimeoutMs: 1 });
          assert.deepEqual(slow.result, { status: "error", results: [], reason: "timeout" });
          // the retrieval's own bound (the units' RuntimeMaxSec, here the broker's)
          const bounded = await family({ timeoutMs: 1 });
          assert.deepEqual(bounded.result, { status: "error", results: [], reason: "failed" });
          assert.ok(bounded.events.some((e) => e.event === "retrieve_timeout"));
          // sudo relayed the SIGTERM: no process of the channel user is left behind
          const left = await run("sh", ["-c", 'ps -u "$1" -o pid= | wc -l', "sh", h.users.family]);
          assert.equal(left.stdout.trim(), "0");
          const failing = await family({ fixedArgv: [...h.fixedArgv.slice(0, -1), "--root=/"] });
          assert.deepEqual(failing.result, { status: "error", results: [], reason: "failed" });
          const ev = failing.events.find((e) => e.event === "retrieve_failed")!;
          assert.ok(typeof ev.stderr_bytes === "number" && ev.stderr_bytes > 0);
          assert.ok(
            !JSON.stringify(failing.events).includes("password"),
            "sudo's message is not logged",
          );
        },
      );
    } finally {
      await h.cleanup();
    }
  },
});
