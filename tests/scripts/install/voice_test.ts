/**
 * Voice can be switched on in production: install renders the mesh's unit
 * from the installed mesh.yaml, so its sandbox admits exactly the voice
 * binaries configured there (and nothing when voice is off); signal-cli's
 * attachments are readable to the mesh's group only (UMask 0027 in a folder
 * the mesh may write to delete them).
 */
import assert from "node:assert/strict";
import { loadPolicyFile } from "../../../services/common/policy/mod.ts";
import {
  productionAddressesFrom,
  renderUnits,
  unitHousehold,
} from "../../../services/common/units/mod.ts";
import { meshVoiceOf, parseMeshSettings } from "../../../services/mesh/config.ts";

function units(meshYaml: string) {
  const addresses = productionAddressesFrom(
    loadPolicyFile("network", "policies/network.yaml"),
    loadPolicyFile("llm", "policies/llm.yaml"),
    undefined,
    meshVoiceOf(parseMeshSettings(meshYaml)),
  );
  const all = renderUnits(
    addresses,
    unitHousehold(loadPolicyFile("recipients", "policies/recipients.yaml")),
  );
  const text = (name: string) => all.find((u) => u.name === name)!.text;
  return { mesh: text("joi-mesh.service"), signal: text("signal-cli.service") };
}

Deno.test("install: mesh.yaml's voice section puts exactly its binaries in the mesh's unit", () => {
  const off = units("");
  assert.doesNotMatch(off.mesh, /--allow-run/);
  const on = units(`voice:
  whisper: { bin: /usr/local/bin/whisper-cli, model: /var/lib/whisper/ggml-medium.bin }
  ffmpeg: { bin: /usr/bin/ffmpeg }
  piper: { bin: /usr/local/bin/piper, voices: { sk: /var/lib/piper/sk_SK-lili-medium.onnx } }
`);
  assert.match(
    on.mesh,
    / --allow-run=\/usr\/local\/bin\/whisper-cli,\/usr\/bin\/ffmpeg,\/usr\/local\/bin\/piper /,
  );
  // the attachments: read and deleted by the mesh, created group-readable by signal-cli
  for (const u of [off.mesh, on.mesh]) {
    assert.match(u, /--allow-read=[^ ]*\/var\/lib\/signal-cli\/attachments/);
    assert.match(u, /--attachments-dir=\/var\/lib\/signal-cli\/attachments/);
    assert.match(
      u,
      /^ReadWritePaths=\/run\/signal-cli\/socket -\/var\/lib\/signal-cli\/attachments$/m,
    );
    assert.match(u, /^SupplementaryGroups=signal-cli$/m);
  }
  assert.match(on.signal, /^UMask=0027$/m);
});
