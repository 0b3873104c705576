/**
 * Where a process's resident memory is, from `/proc/<pid>/smaps` (read with
 * `pmap -XX -p`, since Deno refuses `/proc` paths to anything short of
 * `--allow-all`): anonymous versus file-backed, shared versus private, and
 * by origin (the Deno executable's code, the malloc heap, V8's heap pages,
 * SQLite's shared-memory files...).
 *
 * What RSS counts: every resident page mapped by the process, including the
 * clean pages of the Deno executable it has touched. Those file-backed pages
 * are shared with any other Deno process on the machine and the kernel can
 * drop them under memory pressure (they are read back from the file when
 * touched again), so they are a softer cost than anonymous memory, which
 * only swap can relieve. The benchmarks report both, and hold the targets on
 * RSS as the issue states them.
 *
 * @module
 */

/** The resident memory of one process, in KiB, split by kind and origin. */
export interface MemoryBreakdown {
  /** Resident set size: everything below added up. */
  rss: number;
  /** Proportional set size: shared pages divided among the processes sharing them. */
  pss: number;
  /** Anonymous pages (heap, stacks, V8 spaces, the executable's written data). */
  anon: number;
  /** File-backed pages (the executable's code and read-only data, libraries, mmapped files). */
  file: number;
  /** File-backed pages also mapped by another process. */
  fileShared: number;
  /** Code and read-only data of the Deno executable (file-backed). */
  denoCode: number;
  /** Shared libraries (libc, libm...; file-backed part). */
  libs: number;
  /** Other mapped files: SQLite `-shm` and Deno's cache databases. */
  otherFiles: number;
  /** The brk heap: glibc malloc's main arena (Rust and SQLite allocations). */
  brkHeap: number;
  /**
   * Anonymous mappings marked `MADV_DONTFORK` (VmFlags `dc`): V8's heap pages
   * and code space (V8 allocates its pages that way).
   */
  v8Pages: number;
  /** Other anonymous mappings: glibc's secondary malloc arenas, thread stacks, buffers. */
  otherAnon: number;
  /** Written pages of the executable's data segment (anonymous copy-on-write). */
  denoData: number;
}

/** One mapping of `pmap -XX -p`. */
interface Mapping {
  rss: number;
  pss: number;
  anon: number;
  sharedFile: number;
  flags: string[];
  path: string;
}

/** Parses `pmap -XX -p` output (columns named by its header line). */
export function parsePmap(text: string): Mapping[] {
  const lines = text.split("\n");
  const headerIndex = lines.findIndex((l) => /^\s*Address\s+Perm/.test(l));
  const headerLine = lines[headerIndex];
  if (headerLine === undefined) throw new Error("pmap: no header line in its output");
  const header = headerLine.trim().split(/\s+/);
  const fixed = header.indexOf("VmFlags");
  if (fixed < 0) throw new Error("pmap: no VmFlags column (needs pmap -XX)");
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`pmap: no ${name} column`);
    return i;
  };
  const [rss, pss, anon, sharedClean, sharedDirty] = [
    col("Rss"),
    col("Pss"),
    col("Anonymous"),
    col("Shared_Clean"),
    col("Shared_Dirty"),
  ];
  const out: Mapping[] = [];
  for (const line of lines.slice(headerIndex + 1)) {
    const parts = line.trim().split(/\s+/);
    if (!/^[0-9a-f]+$/.test(parts[0] ?? "") || parts.length < fixed) continue;
    const rest = parts.slice(fixed);
    const flags: string[] = [];
    while (/^[a-z]{2}$/.test(rest[0] ?? "")) flags.push(rest.shift()!);
    const n = (i: number) => Number(parts[i]);
    const a = n(anon);
    out.push({
      rss: n(rss),
      pss: n(pss),
      anon: a,
      // shared pages of a file mapping (an anonymous page is never counted shared here:
      // the written data segment can be shared with nothing)
      sharedFile: Math.max(0, Math.min(n(sharedClean) + n(sharedDirty), n(rss) - a)),
      flags,
      path: rest.join(" "),
    });
  }
  return out;
}

/** Sums the mappings of one process into a {@link MemoryBreakdown}. */
export function breakdown(mappings: Mapping[]): MemoryBreakdown {
  const b: MemoryBreakdown = {
    rss: 0,
    pss: 0,
    anon: 0,
    file: 0,
    fileShared: 0,
    denoCode: 0,
    libs: 0,
    otherFiles: 0,
    brkHeap: 0,
    v8Pages: 0,
    otherAnon: 0,
    denoData: 0,
  };
  for (const m of mappings) {
    const file = m.rss - m.anon;
    b.rss += m.rss;
    b.pss += m.pss;
    b.anon += m.anon;
    b.file += file;
    b.fileShared += m.sharedFile;
    const isDeno = /\/deno(?: \(deleted\))?$/.test(m.path);
    if (isDeno) {
      b.denoCode += file;
      b.denoData += m.anon;
    } else if (m.path === "[heap]") {
      b.brkHeap += m.anon;
    } else if (m.path.startsWith("/") && /\.so(\.|$)/.test(m.path)) {
      b.libs += file;
      b.otherAnon += m.anon;
    } else if (m.path.startsWith("/")) {
      b.otherFiles += file;
      b.otherAnon += m.anon;
    } else if (m.flags.includes("dc")) {
      b.v8Pages += m.anon;
      b.otherFiles += file;
    } else {
      b.otherAnon += m.anon;
      b.otherFiles += file;
    }
  }
  return b;
}

/** The absolute pmap the bench's sandbox may run. */
export const PMAP_BIN = "/usr/bin/pmap";

/** Reads the memory of process `pid` (needs to run as its owner or root). */
export async function memoryOf(pid: number): Promise<MemoryBreakdown> {
  const out = await new Deno.Command(PMAP_BIN, {
    args: ["-XX", "-p", String(pid)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`pmap -XX -p ${pid} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return breakdown(parsePmap(new TextDecoder().decode(out.stdout)));
}

/** KiB as MB with one decimal. */
export const mb = (kib: number): string => (kib / 1024).toFixed(1);

/** One line: RSS and where it is. */
export function describe(b: MemoryBreakdown): string {
  return `RSS ${mb(b.rss)} MB = anon ${mb(b.anon)} (brk heap ${mb(b.brkHeap)}, ` +
    `V8 pages ${mb(b.v8Pages)}, other ${mb(b.otherAnon)}, data ${mb(b.denoData)}) + ` +
    `file ${mb(b.file)} (Deno code ${mb(b.denoCode)}, libs ${mb(b.libs)}, ` +
    `other ${mb(b.otherFiles)}; shared ${mb(b.fileShared)})`;
}

/** Options of {@link emptyServeFloor}. */
export interface FloorOptions {
  /** The V8 flags of the program compared (its manifest entry's `v8Flags`). */
  v8Flags: readonly string[];
  /** Its environment (as its unit sets it). */
  env: Readonly<Record<string, string>>;
  /** Requests to send it: as many as the program handled messages. */
  requests: number;
  /** Body size of each POST (default 400 bytes, a Signal message's envelope). */
  bodyBytes?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Pause before each measurement, ms (default 1,000). */
  settleMs?: number;
}

/** The floor's memory, idle after start and after the requests. */
export interface Floor {
  idle: MemoryBreakdown;
  loaded: MemoryBreakdown;
  /**
   * The necessities process (`_necessities_serve.ts`: serve, SQLite queue,
   * HMAC, fetch onward), same flags, after as many requests.
   */
  necessities: MemoryBreakdown;
}

const EMPTY_SERVE = new URL("./_empty_serve.ts", import.meta.url).pathname;
const NECESSITIES_SERVE = new URL("./_necessities_serve.ts", import.meta.url).pathname;

/**
 * Starts an empty `Deno.serve` (`_empty_serve.ts`) with the given V8 flags
 * and environment, measures it idle, sends it `requests` POSTs and measures
 * it again: the floor a Deno service cannot go below. Then does the same with
 * the necessities process (`_necessities_serve.ts`), measured loaded only.
 */
export async function emptyServeFloor(o: FloorOptions): Promise<Floor> {
  const empty = await loadedProcess(o, EMPTY_SERVE, []);
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "joi-bench-necessities-" });
  try {
    const necessities = await loadedProcess(o, NECESSITIES_SERVE, [
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
    ], [dir]);
    return { idle: empty.idle, loaded: empty.loaded, necessities: necessities.loaded };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Starts `script` as the floor is started, measures it idle, sends it the requests, measures it. */
async function loadedProcess(
  o: FloorOptions,
  script: string,
  permissions: readonly string[],
  args: readonly string[] = [],
): Promise<{ idle: MemoryBreakdown; loaded: MemoryBreakdown }> {
  const child = new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      ...(o.v8Flags.length ? [`--v8-flags=${o.v8Flags.join(",")}`] : []),
      "--allow-net=127.0.0.1",
      ...permissions,
      script,
      ...args,
    ],
    env: { ...o.env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const settle = () => new Promise((r) => setTimeout(r, o.settleMs ?? 1000));
  try {
    const port = await firstLine(child.stdout);
    await settle();
    const idle = await memoryOf(child.pid);
    const body = "x".repeat(o.bodyBytes ?? 400);
    let next = 0;
    const worker = async () => {
      while (next < o.requests) {
        next++;
        const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body });
        await r.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 4 }, worker));
    await settle();
    return { idle, loaded: await memoryOf(child.pid) };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

/** Reads the first line of a child's stdout (then lets the rest drain). */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`the empty Deno.serve exited before listening: ${text}`);
    text += r.value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return text.slice(0, text.indexOf("\n")).trim();
}

/** How long the benchmarks leave a program idle before measuring it settled (ms). */
export const SETTLE_IDLE_MS = 10_000;

/**
 * Measures `pid` once it has been idle {@link SETTLE_IDLE_MS} since `idleSince`
 * (`performance.now()` of its last message): V8's memory reducer has run by then.
 */
export async function settledMemoryOf(pid: number, idleSince: number): Promise<MemoryBreakdown> {
  const left = idleSince + SETTLE_IDLE_MS - performance.now();
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  return await memoryOf(pid);
}

/**
 * What the necessities process (serve, SQLite queue, HMAC, fetch onward)
 * holds against the floor, and what the target leaves for the service's own
 * code and data once the runtime has charged for those features.
 */
export function necessitiesLine(floor: Floor, target: number): string {
  const n = floor.necessities;
  const ratio = n.rss / floor.loaded.rss;
  const left = target * floor.loaded.rss - n.rss;
  return `necessities: Deno.serve + SQLite queue + HMAC + fetch onward, nothing else, same flags, ` +
    `as many requests: RSS ${mb(n.rss)} MB = ${ratio.toFixed(2)}x the floor (anon ${mb(n.anon)}, ` +
    `file ${mb(n.file)}); the target leaves ${mb(left)} MB for everything the service itself is` +
    (left < 0 ? " (less than nothing: no Deno service doing these can meet it)" : "");
}

/**
 * One program's memory against the floor, as the benchmarks print it: RSS
 * one second after the last message (the ratio the targets hold), where it
 * is, what part is private (anonymous) and what is file-backed, and, when
 * `settled` is given, the same process measured again after
 * {@link SETTLE_IDLE_MS} idle: the V8 garbage of the burst is released by
 * then, what remains is what the process keeps.
 */
export function floorReport(
  what: string,
  program: MemoryBreakdown,
  floor: Floor,
  requests: number,
  target: number,
  settled?: MemoryBreakdown,
): string[] {
  const ratio = program.rss / floor.loaded.rss;
  const lines = [
    `${what}: ${describe(program)}`,
    `floor: empty Deno.serve, same V8 flags and environment, after ${requests} requests: ` +
    describe(floor.loaded),
    `       (idle: RSS ${mb(floor.idle.rss)} MB)`,
    necessitiesLine(floor, target),
    `ratio: RSS ${ratio.toFixed(2)}x the floor (target <= ${target}x): ` +
    `${ratio <= target ? "MET" : "MISSED"}; anonymous memory alone ` +
    `${(program.anon / floor.loaded.anon).toFixed(2)}x; file-backed ${mb(program.file)} MB ` +
    `(clean code pages, reclaimable under pressure) vs ${mb(floor.loaded.file)} MB`,
    `private vs shared: anonymous (private, only swap relieves it) ${mb(program.anon)} MB ` +
    `vs the floor's ${mb(floor.loaded.anon)} MB; file-backed ${mb(program.file)} MB ` +
    `(${mb(program.fileShared)} MB of it also mapped by another process on this machine) ` +
    `vs the floor's ${mb(floor.loaded.file)} MB; PSS ${mb(program.pss)} MB vs ` +
    `${mb(floor.loaded.pss)} MB`,
  ];
  if (settled) {
    lines.push(
      `settled (${SETTLE_IDLE_MS / 1000} s idle after the last one): ${describe(settled)}; ` +
        `${(settled.rss / floor.loaded.rss).toFixed(2)}x the floor`,
    );
  }
  return lines;
}
