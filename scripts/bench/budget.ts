/**
 * The memory budget of each VM, as the README states it: what every process
 * holds, measured here where it can run and cited where it cannot, and which
 * whisper.cpp model fits the mesh VM's 2 GB.
 *
 * Measured in this run (RSS from `/proc/<pid>/smaps`, or the peak from
 * `/usr/bin/time -f %M` for a short-lived tool):
 * - the mesh, joi and the relay after the soak's warm-up (2,000 messages and
 *   8,000 openHAB events, where joi's RSS levels off) and three compressed
 *   hours of its day (messages, events, a smoke alarm), with their manifest
 *   flags and environment;
 * - Nebula as a lighthouse, idle (its tun disabled: the tun's memory is the
 *   kernel's);
 * - ffmpeg converting a 2-minute voice note to whisper's 16 kHz WAV, and
 *   encoding a minute of speech to Opus (the mesh's two conversions);
 * - one knowledge search (`joi-retrieve` over 10,000 documents).
 *
 * Cited, with the source next to each figure: signal-cli's JVM (bounded by
 * the caps its unit sets, `SIGNAL_CLI_JVM` in services/common/units/memory.ts),
 * whisper.cpp per model, piper, and the operating system.
 *
 * Needs ffmpeg, nebula and GNU time (Debian packages). Run alone:
 * `deno task bench budget`.
 *
 * @module
 */
import { mb, memoryOf } from "./_memory.ts";
import { startBenchStack } from "./_bench_stack.ts";
import { freePort } from "../../tests/services/mesh/harness.ts";
import { alarm, hour, newDayCounts, warmUp } from "./soak.ts";
import { buildCorpus } from "./retrieve.ts";
import { localLayout } from "../../services/common/permissions/mod.ts";
import {
  MESH_MEMORY_MAX_MB,
  SIGNAL_CLI_JVM,
  SIGNAL_CLI_MEMORY_MAX_MB,
  WHISPER_MODEL_MB,
} from "../../services/common/units/mod.ts";
import { retrieveFixedArgv, retrieveSpec } from "../../services/common/permissions/mod.ts";
import { requestLine } from "../../services/joi/knowledge/retrieve_protocol.ts";

const TIME = "/usr/bin/time";
const FFMPEG = "/usr/bin/ffmpeg";
const NEBULA = "/usr/bin/nebula";
const NEBULA_CERT = "/usr/bin/nebula-cert";
const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

const WHISPER_MB = WHISPER_MODEL_MB;

/** Figures not measurable here, each with where it comes from. */
const CITED = {
  os: {
    mb: 150,
    source: "estimate: kernel, systemd, journald, sshd, chrony; a fresh minimal Debian 13 KVM VM " +
      "uses 88 MB (tierhive.com, 'Debian 13 minimal guide'), kept with headroom",
  },
  piper: {
    mb: 150,
    source: "estimate: ONNX Runtime loads the whole voice into RAM (IhorShevchuk/piper-app#1), " +
      "a medium voice is ~63 MB, plus espeak-ng data and buffers; not measured",
  },
  signalCliObserved: "uncapped daemons reported at 219-235 MB RSS (AsamK/signal-cli#1585, " +
    "bbernhard/signal-cli-rest-api#545)",
  openhab: "openHAB's own JVM is not part of this budget (size it as openHAB documents)",
  ollama: "Ollama and its model are excluded (sized by the model, on the GPU)",
} as const;

/** Peak RSS (MB) of a command, from GNU time's `%M` (KiB). */
async function peakRssMb(cmd: string, args: string[], input?: string): Promise<number> {
  const child = new Deno.Command(TIME, {
    args: ["-f", "PEAK_RSS_KB=%M", cmd, ...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  const err = new TextDecoder().decode(out.stderr);
  const m = /PEAK_RSS_KB=(\d+)/.exec(err);
  if (!out.success || !m) throw new Error(`${cmd} failed: ${err.slice(-400)}`);
  return Number(m[1]) / 1024;
}

/** Runs a command to completion, throwing with its stderr when it fails. */
async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** ffmpeg's peak for the mesh's two conversions (inbound note -> WAV, speech -> Opus). */
async function ffmpegPeaks(dir: string): Promise<{ inbound: number; outbound: number }> {
  const quiet = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"];
  const note = `${dir}/note.ogg`;
  await run(FFMPEG, [
    ...quiet,
    ...["-f", "lavfi", "-i", "sine=frequency=300:duration=120"],
    ...["-c:a", "libopus", "-b:a", "24k", note],
  ]);
  const inbound = await peakRssMb(FFMPEG, [
    ...quiet,
    ...["-i", note, "-t", "121", "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le"],
    ...["-f", "wav", `${dir}/note.wav`],
  ]);
  await run(FFMPEG, [
    ...quiet,
    ...["-f", "lavfi", "-i", "sine=frequency=200:duration=60", "-ar", "22050"],
    `${dir}/speech.wav`,
  ]);
  const outbound = await peakRssMb(FFMPEG, [
    ...quiet,
    ...["-i", `${dir}/speech.wav`, "-c:a", "libopus", "-b:a", "24k", "-f", "ogg"],
    `${dir}/speech.ogg`,
  ]);
  return { inbound, outbound };
}

/** Nebula's RSS as an idle lighthouse (its own CA and certificate, tun disabled). */
async function nebulaIdle(dir: string): Promise<number> {
  await run(NEBULA_CERT, [
    "ca",
    "-name",
    "bench",
    "-out-crt",
    `${dir}/ca.crt`,
    "-out-key",
    `${dir}/ca.key`,
  ]);
  await run(NEBULA_CERT, [
    "sign",
    ...["-ca-crt", `${dir}/ca.crt`, "-ca-key", `${dir}/ca.key`, "-name", "mesh"],
    ...["-ip", "10.99.0.1/24", "-out-crt", `${dir}/mesh.crt`, "-out-key", `${dir}/mesh.key`],
  ]);
  await Deno.writeTextFile(
    `${dir}/nebula.yml`,
    [
      "pki:",
      `  ca: ${dir}/ca.crt`,
      `  cert: ${dir}/mesh.crt`,
      `  key: ${dir}/mesh.key`,
      "lighthouse:",
      "  am_lighthouse: true",
      "listen:",
      "  host: 127.0.0.1",
      `  port: ${freePort()}`,
      "tun:",
      "  disabled: true",
      "logging:",
      "  level: error",
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(NEBULA, {
    args: ["-config", `${dir}/nebula.yml`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const exited = await Promise.race([
      child.status.then((s) => s.code),
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    if (exited !== null) {
      throw new Error(`nebula exited with ${exited} (its config: ${dir}/nebula.yml)`);
    }
    return (await memoryOf(child.pid)).rss / 1024;
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await child.status;
  }
}

/** Peak RSS of one knowledge search over 10,000 documents, as joi-retrieve runs it. */
async function retrievePeak(dir: string): Promise<number> {
  const state = `${dir}/retrieve`;
  const root = `${state}/knowledge`;
  await Deno.mkdir(root, { recursive: true });
  const needle = buildCorpus(root, 10_000);
  const argv = retrieveFixedArgv(
    retrieveSpec({ ...localLayout(), codeDir: REPO, joiStateDir: state }, REPO),
  );
  // the request line on stdin, as the retrieve units' socket passes it
  const line = requestLine({ type: "search", q: needle, limit: 10 });
  await peakRssMb(Deno.execPath(), argv, line); // warm the page cache
  return await peakRssMb(Deno.execPath(), argv, line);
}

/** A budget line: process, MB, how we know. */
type Line = [string, number, string];

function table(vm: string, ramMb: number | null, lines: Line[]): void {
  const total = lines.reduce((n, [, v]) => n + v, 0);
  console.log(`\n${vm}${ramMb ? ` (${ramMb} MB)` : ""}`);
  for (const [what, v, how] of lines) {
    console.log(`  ${what.padEnd(44)} ${v.toFixed(0).padStart(5)} MB  ${how}`);
  }
  console.log(
    `  ${"total".padEnd(44)} ${total.toFixed(0).padStart(5)} MB` +
      (ramMb ? `  headroom ${(ramMb - total).toFixed(0)} MB` : ""),
  );
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "joi-bench-budget-" });
  try {
    const ff = await ffmpegPeaks(dir);
    const nebula = await nebulaIdle(dir);
    const retrieve = await retrievePeak(dir);
    const stack = await startBenchStack();
    const services: Record<string, number> = {};
    try {
      const counts = newDayCounts();
      await warmUp(stack);
      for (let h = 1; h <= 3; h++) await hour(stack, h, counts);
      await alarm(stack, counts);
      await new Promise((r) => setTimeout(r, 1000));
      for (const name of ["mesh", "joi", "relay"] as const) {
        services[name] = (await memoryOf(stack[name].process.pid)).rss / 1024;
      }
      console.log(
        `services measured after bench soak's warm-up and ${counts.messages} messages, ` +
          `${counts.events} openHAB events and ${counts.alarms} smoke alarm (three compressed ` +
          `hours of its day)`,
      );
    } finally {
      await stack.close();
    }
    const j = SIGNAL_CLI_JVM;
    const measured = "measured";
    const voice = (model: keyof typeof WHISPER_MB): Line => [
      `voice job: whisper ${model} + ffmpeg`,
      WHISPER_MB[model] + ff.inbound,
      `whisper cited (whisper.cpp README), ffmpeg ${ff.inbound.toFixed(0)} MB measured`,
    ];
    const meshBase: Line[] = [
      ["operating system", CITED.os.mb, CITED.os.source],
      ["Nebula (lighthouse)", nebula, measured],
      [
        "signal-cli (JVM, at its caps)",
        SIGNAL_CLI_MEMORY_MAX_MB,
        `-Xmx${j.heapMb}m + metaspace ${j.metaspaceMb} + code cache ${j.codeCacheMb} + ` +
        `native ${j.nativeMb} (estimate) = the unit's MemoryMax; ${CITED.signalCliObserved}`,
      ],
      ["mesh", services.mesh!, measured],
    ];
    table("mesh VM, voice with whisper small", 2048, [...meshBase, voice("small")]);
    console.log("  whisper model that fits beside the rest:");
    const rest = meshBase.reduce((n, [, v]) => n + v, 0);
    for (const model of Object.keys(WHISPER_MB) as (keyof typeof WHISPER_MB)[]) {
      const need = rest + WHISPER_MB[model] + ff.inbound;
      console.log(
        `    ${model.padEnd(7)} ${need.toFixed(0).padStart(5)} MB of 2048: ${
          need <= 2048 ? "fits" : "does NOT fit"
        }`,
      );
    }
    console.log(
      `  joi-mesh.service's MemoryMax (the mesh and its voice tools): ${MESH_MEMORY_MAX_MB} MB`,
    );
    console.log(
      `  piper + ffmpeg (a spoken reply): ${CITED.piper.mb} + ${ff.outbound.toFixed(0)} MB ` +
        `(${CITED.piper.source}); the mesh runs one voice job at a time, so it never adds to whisper`,
    );
    table("joi VM", null, [
      ["operating system", CITED.os.mb, CITED.os.source],
      ["Nebula", nebula, measured],
      ["joi", services.joi!, measured],
      ["knowledge search (one joi-retrieve, transient)", retrieve, `${measured} (peak)`],
    ]);
    console.log(`  ${CITED.ollama}`);
    table("openHAB VM (joi's part)", null, [
      ["Nebula", nebula, measured],
      ["openHAB relay", services.relay!, measured],
    ]);
    console.log(`  ${CITED.openhab}`);
    console.log(
      `\nffmpeg peaks: inbound note ${mb(ff.inbound * 1024)} MB, outbound speech ` +
        `${mb(ff.outbound * 1024)} MB`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await bench();
