/**
 * `provision`: creates (idempotently) a household's channel users, reader
 * groups and memberships, the knowledge and data trees, the audit rules and
 * the retrieval files (production: joi.service and each channel's retrieve
 * socket and service; local run: the sudoers file), from recipients.yaml and
 * channel_users.yaml.
 *
 *   deno task provision [--dry-run] [--root=<staging prefix>] [--retrieval=units|sudo]
 *
 * Options: --config-dir, --state-dir, --code-dir, --retrieve-bin, --units-dir,
 * --sudoers, --audit-rules, --sudo-log, --install-entry (sudo: the Deno binary
 * to copy as the entry point). `--dry-run` prints the plan; `--root` writes
 * the files under a prefix without touching accounts; a second run changes
 * nothing. After units changed, run `systemctl daemon-reload`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { provision } from "./provision/provision.ts";

/** Runs the CLI; returns the exit code. */
export function main(args: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        "config-dir": { type: "string", default: "/etc/joi" },
        "state-dir": { type: "string", default: "/var/lib/joi" },
        "code-dir": { type: "string", default: "/opt/joi" },
        "retrieve-bin": { type: "string", default: "/usr/local/bin/joi-retrieve" },
        sudoers: { type: "string", default: "/etc/sudoers.d/joi" },
        "audit-rules": { type: "string", default: "/etc/audit/rules.d/joi.rules" },
        "sudo-log": { type: "string", default: "/var/log/joi-sudo.log" },
        "install-entry": { type: "string" },
        retrieval: { type: "string", default: "units" },
        "units-dir": { type: "string", default: "/etc/systemd/system" },
        root: { type: "string", default: "" },
        "dry-run": { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    console.error(`provision: ${(e as Error).message}`);
    return 2;
  }
  const retrieval = values.retrieval;
  if (retrieval !== "units" && retrieval !== "sudo") {
    console.error(`provision: --retrieval must be units (production) or sudo (local run)`);
    return 2;
  }
  try {
    const result = provision({
      configDir: values["config-dir"]!,
      stateDir: values["state-dir"]!,
      codeDir: values["code-dir"]!,
      retrieveBin: values["retrieve-bin"],
      sudoersPath: values.sudoers,
      auditRulesPath: values["audit-rules"],
      sudoLog: values["sudo-log"],
      entrySource: values["install-entry"],
      retrieval,
      unitsDir: values["units-dir"],
      root: values.root,
      dryRun: values["dry-run"],
    });
    const verb = values["dry-run"] ? "would" : "did";
    if (result.actions.length === 0) console.log("provision: nothing to do");
    for (const line of result.actions) console.log(`provision: ${verb}: ${line}`);
    if (
      !values["dry-run"] && retrieval === "units" &&
      result.planned.some((a) => a.kind === "remove" || a.kind === "write")
    ) {
      console.log("provision: units changed: run `systemctl daemon-reload`");
    }
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(main(Deno.args));
