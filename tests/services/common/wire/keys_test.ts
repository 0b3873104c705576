import assert from "node:assert/strict";
import {
  generateKeyFile,
  hexToBytes,
  importWireKey,
  KeyFileError,
  keyPath,
  loadWireKey,
  readKeyFile,
  sign,
  type SignedFields,
  verify,
  type WireKey,
} from "../../../../services/common/wire/mod.ts";

const HEX_KEY = "0123456789abcdef".repeat(4) + "\n";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "joi-keys-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function write(path: string, content: string | Uint8Array, mode = 0o600) {
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  await Deno.writeFile(path, bytes, { mode });
  await Deno.chmod(path, mode);
}

/** Any key file as a mesh_to_joi key (the file name does not matter here). */
async function loadKey(dir: string, name: string): Promise<WireKey> {
  return await importWireKey(await readKeyFile(keyPath(dir, name)), "mesh_to_joi");
}

function signsLike(a: WireKey, b: WireKey): boolean {
  const fields: SignedFields = {
    direction: "mesh_to_joi",
    method: "POST",
    path: "/x",
    timestamp: 1,
    nonce: crypto.randomUUID(),
    headers: [["x-request-id", "1"]],
    body: new Uint8Array([1, 2, 3]),
  };
  return verify([b.request], fields, sign(a.request, fields)) === 0;
}

Deno.test("loadWireKey reads a 0600 hex key; hex, base64 and raw files of the same bytes give the same key", async () => {
  await withDir(async (dir) => {
    await write(`${dir}/mesh_to_joi.key`, HEX_KEY);
    const bytes = hexToBytes(HEX_KEY.trim());
    await write(`${dir}/b64.key`, btoa(String.fromCharCode(...bytes)) + "\n");
    const raw = bytes.slice();
    raw[0] = 0xff; // make it non-text
    const rawHex = Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
    await write(`${dir}/raw.key`, raw);
    await write(`${dir}/rawhex.key`, rawHex);
    const k = await loadWireKey(dir, "mesh_to_joi");
    assert.equal(k.request.extractable, false);
    assert.equal(k.response.extractable, false);
    assert.ok(signsLike(k, await loadKey(dir, "b64.key")));
    assert.ok(signsLike(await loadKey(dir, "raw.key"), await loadKey(dir, "rawhex.key")));
    assert.ok(!signsLike(k, await loadKey(dir, "raw.key")));
    // 0400 (systemd credentials) is fine too
    await Deno.chmod(`${dir}/mesh_to_joi.key`, 0o400);
    await loadWireKey(dir, "mesh_to_joi");
  });
});

Deno.test("a key file readable by group or others is refused with the chmod fix", async () => {
  await withDir(async (dir) => {
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o601]) {
      await write(`${dir}/k.key`, HEX_KEY, mode);
      await assert.rejects(
        () => loadKey(dir, "k.key"),
        (e: unknown) => {
          assert.ok(e instanceof KeyFileError);
          assert.match(e.message, new RegExp(`${dir}/k.key has mode 0${mode.toString(8)}`));
          assert.ok(e.message.includes(`chmod 600 ${dir}/k.key`));
          return true;
        },
      );
    }
  });
});

Deno.test("a symlinked key file is refused even if its target is fine", async () => {
  await withDir(async (dir) => {
    await write(`${dir}/real.key`, HEX_KEY);
    // Deno.symlink needs unscoped permissions; the suite may run sh.
    const ln = await new Deno.Command("sh", {
      args: ["-c", 'ln -s "$1" "$2"', "sh", `${dir}/real.key`, `${dir}/link.key`],
    }).output();
    assert.ok(ln.success, new TextDecoder().decode(ln.stderr));
    assert.ok((await Deno.lstat(`${dir}/link.key`)).isSymlink);
    await assert.rejects(() => loadKey(dir, "link.key"), /link\.key is a symlink/);
  });
});

Deno.test("empty, short, odd and passphrase keys are refused, naming the file", async () => {
  await withDir(async (dir) => {
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["empty", "", /is empty/],
      ["blank", "\n  \n", /is empty/],
      ["short hex", "ab".repeat(31), /holds 31 bytes of hex key; at least 32/],
      ["odd hex", "a".repeat(65), /odd number of hex digits/],
      ["short base64", btoa("x".repeat(31)), /holds 31 bytes of base64 key/],
      ["short raw", new Uint8Array(31).fill(0xfe), /holds 31 raw bytes/],
      ["passphrase", "correct horse battery staple, my dog's name", /neither hex nor base64/],
    ];
    for (const [name, content, pattern] of cases) {
      const path = `${dir}/${name.replace(" ", "_")}.key`;
      await write(path, content);
      await assert.rejects(() => readKeyFile(path), (e: unknown) => {
        assert.ok(e instanceof KeyFileError, name);
        assert.match(e.message, pattern, name);
        assert.ok(e.message.includes(path), name);
        return true;
      });
    }
    await assert.rejects(() => loadKey(dir, "absent.key"), /does not exist: create it/);
    await assert.rejects(() => loadKey(dir, "../etc/passwd"), /must be a plain file name/);
    await Deno.mkdir(`${dir}/dir.key`);
    await assert.rejects(() => loadKey(dir, "dir.key"), /not a regular file/);
  });
});

const KEYS_MODULE = new URL("../../../../services/common/wire/keys.ts", import.meta.url).href;
const SIGN_MODULE = new URL("../../../../services/common/wire/sign.ts", import.meta.url).href;
const FIELDS = {
  direction: "joi_to_mesh" as const,
  method: "POST",
  path: "/api/v1/message/outbound",
  timestamp: 1_767_225_600_000,
  nonce: "0b0e2f6e-3b1c-4d3a-9c1e-2f4a5b6c7d8e",
  body: new Uint8Array([123, 125]),
};

/** Runs loadWireKey(undefined, name) in a child process sandboxed like a systemd service. */
async function loadInChild(dir: string, credentialsDirectory: string) {
  const script = `${dir}/child.ts`;
  await Deno.writeTextFile(
    script,
    `import { loadWireKey } from ${JSON.stringify(KEYS_MODULE)};
import { sign } from ${JSON.stringify(SIGN_MODULE)};
const key = await loadWireKey(undefined, "joi_to_mesh");
const f = ${JSON.stringify({ ...FIELDS, body: Array.from(FIELDS.body) })};
console.log(sign(key.request, { ...f, headers: [["x-request-id", "1"]], body: new Uint8Array(f.body) }));
`,
  );
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      `--allow-read=${dir},${new URL("../../../../", import.meta.url).pathname}`,
      "--allow-env=CREDENTIALS_DIRECTORY",
      script,
    ],
    env: { CREDENTIALS_DIRECTORY: credentialsDirectory },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    success: out.success,
    stdout: dec.decode(out.stdout).trim(),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("without a secrets dir, loadWireKey uses $CREDENTIALS_DIRECTORY (child process, as under systemd)", async () => {
  await withDir(async (dir) => {
    await write(`${dir}/joi_to_mesh.key`, HEX_KEY);
    const expected = sign((await loadWireKey(dir, "joi_to_mesh")).request, {
      ...FIELDS,
      headers: [["x-request-id", "1"]],
    });
    const viaEnv = await loadInChild(dir, dir);
    assert.ok(viaEnv.success, viaEnv.stderr);
    assert.equal(viaEnv.stdout, expected);
    assert.ok(!viaEnv.stdout.includes(HEX_KEY.trim()));
    const unset = await loadInChild(dir, "");
    assert.equal(unset.success, false);
    assert.match(unset.stderr, /\$CREDENTIALS_DIRECTORY is not set/);
  });
});

Deno.test("generateKeyFile writes 32 random bytes as hex, mode 0600, and never overwrites", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mesh_to_joi.key`;
    await generateKeyFile(path);
    const info = await Deno.lstat(path);
    assert.equal(info.mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(path);
    assert.match(text, /^[0-9a-f]{64}\n$/);
    await loadWireKey(dir, "mesh_to_joi");
    await assert.rejects(() => generateKeyFile(path), /already exists; refusing to overwrite/);
    assert.equal(await Deno.readTextFile(path), text);
    await generateKeyFile(`${dir}/other.key`);
    assert.notEqual(await Deno.readTextFile(`${dir}/other.key`), text);
    // no temporary files left behind
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["mesh_to_joi.key", "other.key"]);
  });
});
