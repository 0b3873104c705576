/** The booted test's notion of a service's own paths, from its unit's command line. */
import assert from "node:assert/strict";
import { ownPaths, PUBLIC_FILES, under } from "./reads.ts";

Deno.test("reads: a Deno service's own paths are its --allow-read list and named dirs", () => {
  const argv = [
    "/usr/local/bin/deno",
    "run",
    "--allow-read=/etc/joi,/var/lib/joi,/etc/passwd",
    "--allow-write=/var/lib/joi",
    "/opt/joi/services/joi/main.ts",
    "--config-dir=/etc/joi",
    "--log-dir=/var/log/joi",
  ];
  assert.deepEqual(ownPaths("joi.service", argv), {
    own: [
      "/run/credentials/joi.service",
      "/etc/joi",
      "/var/lib/joi",
      "/etc/passwd",
      "/etc/joi",
      "/var/log/joi",
    ],
    configDir: "/etc/joi",
  });
});

Deno.test("reads: nebula's -config file and signal-cli's --config dir", () => {
  assert.deepEqual(
    ownPaths("nebula.service", ["/usr/bin/nebula", "-config", "/etc/nebula/config.yml"]),
    {
      own: ["/run/credentials/nebula.service", "/etc/nebula"],
      configDir: "/etc/nebula",
    },
  );
  assert.deepEqual(
    ownPaths("signal-cli.service", [
      "/usr/local/bin/signal-cli",
      "--config",
      "/var/lib/signal-cli",
      "daemon",
    ]),
    {
      own: ["/run/credentials/signal-cli.service", "/var/lib/signal-cli"],
      configDir: "/var/lib/signal-cli",
    },
  );
});

Deno.test("reads: under() is by path component", () => {
  assert.ok(under("/etc/joi/policy.yaml", ["/etc/joi"]));
  assert.ok(under("/etc/joi", ["/etc/joi"]));
  assert.ok(!under("/etc/joi-relay/x", ["/etc/joi"]));
  assert.ok(under("/etc/passwd", ["/etc/passwd"]));
});

Deno.test("reads: Nebula's certificates and guard rules are public, its keys and config are not", () => {
  for (const f of ["/etc/nebula/ca.crt", "/etc/nebula/joi.crt", "/etc/nebula/guard.nft"]) {
    assert.ok(PUBLIC_FILES.test(f), f);
  }
  for (
    const f of [
      "/etc/nebula/joi.key",
      "/etc/nebula/ca.key",
      "/etc/nebula/config.yml",
      "/etc/nebula/sub/joi.crt",
      "/etc/joi/ca.crt",
      "/etc/nebula/joi.crt.key",
    ]
  ) {
    assert.ok(!PUBLIC_FILES.test(f), f);
  }
});
