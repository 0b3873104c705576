/**
 * Memory caps of the mesh VM's units: signal-cli's JVM and the mesh with the
 * voice tools it runs (the budget is in the README's "Memory budget";
 * `deno task bench budget` prints it).
 *
 * @module
 */

/**
 * signal-cli's JVM on the mesh VM (2 GB shared with whisper.cpp, piper, the
 * mesh and Nebula; the budget is in the README's "Memory budget" and
 * `deno task bench budget` prints it). Uncapped, the JVM sizes its heap at a
 * quarter of the VM's RAM; a running daemon has been reported at 219-235 MB
 * RSS (signal-cli#1585, signal-cli-rest-api#545), and a 1 GB Raspberry Pi
 * (default heap about 250 MB) ran out of heap syncing contacts
 * (signal-cli#1696). So: a 384 MB heap, metaspace and JIT code cache capped,
 * the serial collector (no G1 remembered sets on a small heap), and an exit on
 * OutOfMemoryError (systemd restarts it; the socket and Signal's servers keep
 * the messages) rather than a JVM limping on.
 */
export const SIGNAL_CLI_JVM = {
  heapMb: 384,
  metaspaceMb: 128,
  codeCacheMb: 64,
  /** Thread stacks, GC structures, libsignal's native code and buffers (estimate). */
  nativeMb: 64,
} as const;

/** The hard memory limit of signal-cli.service: the JVM's caps added up. */
export const SIGNAL_CLI_MEMORY_MAX_MB = SIGNAL_CLI_JVM.heapMb + SIGNAL_CLI_JVM.metaspaceMb +
  SIGNAL_CLI_JVM.codeCacheMb + SIGNAL_CLI_JVM.nativeMb;

/** `SIGNAL_CLI_OPTS` of signal-cli.service (its launcher passes them to the JVM). */
export function signalCliOpts(): string {
  const j = SIGNAL_CLI_JVM;
  return [
    "-Xms2m",
    `-Xmx${j.heapMb}m`,
    `-XX:MaxMetaspaceSize=${j.metaspaceMb}m`,
    `-XX:ReservedCodeCacheSize=${j.codeCacheMb}m`,
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+DisableExplicitGC",
    "-XX:-HeapDumpOnOutOfMemoryError",
  ].join(" ");
}

/**
 * whisper.cpp's memory per model, MB, as its README states it ("Memory
 * usage"): what one transcription holds while the model is loaded.
 */
export const WHISPER_MODEL_MB = {
  tiny: 273,
  base: 388,
  small: 852,
  medium: 2100,
  large: 3900,
} as const;

/**
 * The hard memory limit of joi-mesh.service, whose cgroup also holds the voice
 * tools it runs, one job at a time: the mesh itself (128 MB allowed; it holds
 * 72-80 MB), whisper.cpp with the `small` model, the largest that fits the 2 GB
 * mesh VM beside signal-cli (README, "Memory budget"), and ffmpeg (55 MB
 * measured by `deno task bench budget`). With a larger model the kernel stops
 * whisper (the voice note fails and joi says so) instead of starving signal-cli.
 */
export const MESH_MEMORY_MAX_MB = 128 + WHISPER_MODEL_MB.small + 64;
