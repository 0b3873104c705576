/**
 * Runs the README's deployment guide ({@link ./readme.ts}) on a build host
 * shell and booted VMs, verbatim: each command goes to its host's shell
 * session as written (placeholders filled), a non-zero exit stops the run with
 * the README line, the command and its output. `$EDITOR` lines call the
 * test's `edit` hook; `e2e:copy` steps copy a build-host directory into a VM.
 *
 * @module
 */
import type { Vm } from "../vm/vm.ts";
import type { ShellSession } from "../vm/shell.ts";
import { type Command, type Day2, fillPlaceholders, type Step, type StepHost } from "./readme.ts";

/** What the guide runs on. */
export interface GuideTargets {
  /** The build host's shell (the test's own machine, in a scratch directory). */
  build: ShellSession;
  /** The VMs (copy sources are relative to where the build shell is at that point). */
  vms: Partial<Record<Exclude<StepHost, "build">, Vm>>;
}

/** What the test supplies. */
export interface GuideHooks {
  /** Values of the README's placeholders (`this repository` for `<this repository>`). */
  placeholders: Record<string, string>;
  /** The operator's edit of `files` on `host` (a `$EDITOR` line). */
  edit(host: StepHost, files: string[], command: Command): Promise<void>;
  /** Called before each command (progress, timing). */
  onCommand?(host: StepHost, command: Command): void;
  /**
   * Called before each command is run, after {@link onCommand}: what the
   * operator does between two commands that the guide describes in prose
   * (e.g. editing `policies/` on the build host before bundling).
   */
  before?(host: StepHost, command: Command, shell: ShellSession): Promise<void>;
}

/** A failed step of the guide. */
export class GuideError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GuideError";
  }
}

/** What running the guide did. */
export interface GuideRun {
  /** Each VM's shell session (open; close them with {@link closeSessions}). */
  sessions: Partial<Record<StepHost, ShellSession>>;
  /** Seconds spent per host. */
  seconds: Partial<Record<StepHost, number>>;
}

/**
 * Runs `steps` in order, recording sessions and times in `run` (so a caller
 * can close the sessions also when a step fails); throws {@link GuideError} at
 * the first failure.
 */
export async function runGuide(
  steps: Step[],
  targets: GuideTargets,
  hooks: GuideHooks,
  run: GuideRun = { sessions: {}, seconds: {} },
): Promise<GuideRun> {
  const sessions = run.sessions;
  sessions.build = targets.build;
  const cwd: Partial<Record<StepHost, string>> = {};
  const seconds = run.seconds;
  const session = (host: StepHost): ShellSession => {
    const open = sessions[host];
    if (open) return open;
    const s = vmOf(targets.vms, host).shell(cwd[host] ?? "/root");
    sessions[host] = s;
    return s;
  };
  for (const step of steps) {
    const started = Date.now();
    if (step.kind === "copy") {
      const where = await targets.build.run("pwd");
      const from = step.from.startsWith("/") ? step.from : `${where.output.trim()}/${step.from}`;
      try {
        await vmOf(targets.vms, step.host).copyIn(from, step.to);
      } catch (e) {
        throw new GuideError(
          `README.md:${step.line}: copy ${step.from} to ${step.host}:${step.to}: ${
            (e as Error).message
          }`,
        );
      }
      cwd[step.host] ??= step.to;
    } else {
      await runCommands(session(step.host), step.host, step.commands, hooks);
    }
    seconds[step.host] = (seconds[step.host] ?? 0) + (Date.now() - started) / 1000;
  }
  return run;
}

/** The VM a step runs on (a step for a VM the caller did not boot is an error). */
function vmOf(vms: GuideTargets["vms"], host: StepHost): Vm {
  const vm = host === "build" ? undefined : vms[host];
  if (!vm) throw new GuideError(`the guide has a step on ${host}, and no such VM runs here`);
  return vm;
}

/** Runs `commands` in `shell`; throws {@link GuideError} at the first that fails. */
async function runCommands(
  shell: ShellSession,
  host: StepHost,
  commands: Command[],
  hooks: GuideHooks,
): Promise<void> {
  for (const command of commands) {
    hooks.onCommand?.(host, command);
    await hooks.before?.(host, command, shell);
    if (command.edit) {
      await hooks.edit(host, command.edit, command);
      continue;
    }
    const text = fillPlaceholders(command.text, command.line, hooks.placeholders);
    const r = await shell.run(text);
    if (r.code !== 0) {
      throw new GuideError(
        `README.md:${command.line}: on ${host}: \`${command.text.trim()}\` exited ${r.code}:\n` +
          r.output.split("\n").slice(-40).join("\n"),
      );
    }
  }
}

/** Runs a day-2 operation in a fresh root shell on its VM (from `/root`). */
export async function runDay2(
  op: Day2,
  vms: GuideTargets["vms"],
  hooks: GuideHooks,
): Promise<void> {
  if (op.host === "build") throw new GuideError(`README.md:${op.line}: day-2 ${op.name} on build`);
  const shell = vmOf(vms, op.host).shell("/root");
  try {
    await runCommands(shell, op.host, op.commands, hooks);
  } finally {
    await shell.close();
  }
}

/** Closes the VMs' sessions of a run (the build shell belongs to the caller). */
export async function closeSessions(run: GuideRun): Promise<void> {
  for (const [host, s] of Object.entries(run.sessions)) {
    if (host !== "build") await s?.close();
  }
}
