/**
 * `joi-validate-config` as a library: runs every check family and returns
 * the findings. Fast enough for `ExecStartPre`: it reads `/etc/passwd` and
 * `/etc/group` itself and spawns nothing but one `lsattr`.
 *
 * ```ts
 * import { validate } from "./scripts/validate/mod.ts";
 * const report = validate({ root: "/tmp/staged" });
 * if (!report.summary.ok) console.log(report.findings);
 * ```
 *
 * @module
 */
import { deriveChannels } from "../../services/common/policy/mod.ts";
import { productionLayout } from "../../services/common/permissions/mod.ts";
import { renderUnits, unitHousehold } from "../../services/common/units/mod.ts";
import { checkAccess, setprivProber } from "./access_check.ts";
import { householdUnitsOf } from "../provision/provision.ts";
import { type Accounts, readAccounts } from "../provision/system.ts";
import { checkAccounts } from "./accounts_check.ts";
import { productionAddressesFrom } from "./addresses.ts";
import { expectedState } from "./expected.ts";
import { checkCode } from "./code_check.ts";
import { checkAbsent, checkContentFiles } from "./files_check.ts";
import { type Finding, Findings, sortFindings, summarize, type Summary } from "./finding.ts";
import { INSTALLED, resolvePaths, type ValidateOptions } from "./options.ts";
import { checkPolicies } from "./policies_check.ts";
import { STAGING_DIR } from "../revoke/journal.ts";
import { checkRetrieve } from "./retrieve_check.ts";
import { checkSecrets, credentialsOf } from "./secrets_check.ts";
import { checkTree } from "./tree_check.ts";
import { checkUnits } from "./units_check.ts";
import { checkNebulaCerts, NEBULA_DIR } from "./nebula_check.ts";

export { productionAddressesFrom } from "./addresses.ts";
export { expectedState } from "./expected.ts";
export {
  type Finding,
  formatFinding,
  formatSummary,
  type Severity,
  type Summary,
} from "./finding.ts";
export { INSTALLED, type ValidateOptions } from "./options.ts";

/** The result of one run. */
export interface Report {
  /** Every finding, most severe first. */
  findings: Finding[];
  /** Counts; `ok` is false on any CRITICAL or ERROR. */
  summary: Summary;
}

function tryReadAccounts(passwd: string, group: string, f: Findings): Accounts | undefined {
  try {
    return readAccounts(passwd, group);
  } catch (e) {
    f.error(
      "accounts_unreadable",
      `cannot read ${passwd} / ${group}: ${e instanceof Error ? e.message : e}`,
      `${passwd}, ${group}`,
      "run joi-validate-config as root with read access to /etc",
    );
    return undefined;
  }
}

/** A leftover revocation staging folder means the policy files may be half updated. */
function checkInterruptedRevoke(configDir: string): Findings {
  const f = new Findings();
  const staging = `${configDir}/${STAGING_DIR}`;
  try {
    Deno.lstatSync(staging);
  } catch {
    return f;
  }
  f.error(
    "revoke_interrupted",
    `an interrupted joi-revoke-recipient left ${staging}: the policy files may be half updated`,
    staging,
    "run joi-revoke-recipient --recover (finishes or rolls back the update)",
  );
  return f;
}

/** Runs every check. Never throws on a bad system: each problem is a finding. */
export function validate(options: ValidateOptions = {}): Report {
  const paths = resolvePaths(options);
  const all: Finding[] = [];
  const family = (run: () => Findings | undefined, name: string) => {
    try {
      const f = run();
      if (f) all.push(...f.list);
    } catch (e) {
      all.push({
        severity: "ERROR",
        code: "check_failed",
        what: `the ${name} check could not run: ${e instanceof Error ? e.message : e}`,
        where: name,
        fix: "fix the cause above and re-run",
      });
    }
  };

  family(() => checkInterruptedRevoke(paths.configDir), "revoke-journal");
  const policy = checkPolicies(paths.configDir);
  all.push(...policy.findings.list);
  const p = policy.policies;
  const base = new Findings();
  const accounts = tryReadAccounts(paths.passwdFile, paths.groupFile, base);
  all.push(...base.list);
  const empty: Accounts = { users: new Map(), groups: new Map() };

  family(() => checkCode(paths.at(INSTALLED.codeDir), accounts ?? empty), "code");
  family(
    () => checkRetrieve(paths.at(INSTALLED.retrieveBin), accounts ?? empty, paths.lsattrBin),
    "retrieve",
  );

  if (p.recipients) {
    const recipients = p.recipients;
    let want: ReturnType<typeof expectedState> | undefined;
    let unitsKnown = false;
    family(() => {
      // without network/llm/tools the household's units cannot be rendered:
      // the accounts and trees are still checked, the unit files are not
      // (the "checks_skipped" warning below says so)
      want = p.network && p.llm && p.tools
        ? expectedState(
          recipients,
          householdUnitsOf({ network: p.network, llm: p.llm, tools: p.tools, recipients }),
        )
        : undefined;
      unitsKnown = want !== undefined;
      want ??= expectedState(recipients, []);
      return undefined;
    }, "expected-state");
    if (want && accounts) {
      const w = want;
      family(
        () =>
          checkAccounts(recipients, w, accounts, {
            passwdFile: paths.passwdFile,
            groupFile: paths.groupFile,
          }),
        "accounts",
      );
      family(() => checkTree(w.paths, accounts, paths.root), "tree");
      // the generated files (units, audit rules) depend on the units' policies
      if (unitsKnown) {
        family(() => checkContentFiles(w.paths, accounts, paths.root), "files");
        family(() => checkAbsent(w, paths.root), "stale-files");
      }
      // as each user: only against the system's own accounts (a staged
      // household's users do not exist here)
      if (paths.setprivBin !== "" && paths.passwdFile === "/etc/passwd") {
        family(
          () =>
            checkAccess(
              recipients,
              deriveChannels(recipients),
              {
                configDir: paths.configDir,
                stateDir: paths.at(INSTALLED.stateDir),
                socketDir: paths.at(INSTALLED.retrieveSocketDir),
              },
              accounts,
              setprivProber(paths.setprivBin),
            ),
          "access",
        );
      }
    }
  }

  family(
    () =>
      checkNebulaCerts(
        paths.at(NEBULA_DIR),
        options.clockMs ?? Date.now(),
        Math.max(...(p.policy?.watch.cert_warn_days ?? [30])),
      ),
    "nebula",
  );

  if (p.network && p.llm) {
    const addresses = productionAddressesFrom({
      network: p.network,
      llm: p.llm,
      ...(p.tools ? { tools: p.tools } : {}),
    });
    const household = p.recipients
      ? unitHousehold(p.recipients)
      : { serviceUser: "joi", channels: {} };
    const layout = productionLayout(addresses, { channels: household.channels });
    family(() => checkUnits(paths.at(INSTALLED.unitsDir), layout), "units");
    if (p.recipients && accounts) {
      const svc = p.recipients.service_user;
      family(() => {
        const joiUnit = renderUnits(addresses, household).find((u) => u.name === "joi.service");
        if (!joiUnit) throw new Error("renderUnits returned no joi.service");
        return checkSecrets(
          credentialsOf(joiUnit.text),
          INSTALLED.secretsDir,
          svc,
          accounts,
          paths.root,
        );
      }, "secrets");
    }
  } else {
    all.push({
      severity: "WARNING",
      code: "checks_skipped",
      what: "network.yaml or llm.yaml did not load: the units and secrets were not checked",
      where: paths.configDir,
      fix: "fix the policy errors above, then re-run joi-validate-config",
    });
  }
  const findings = sortFindings(all);
  return { findings, summary: summarize(findings) };
}
