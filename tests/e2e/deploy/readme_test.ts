/**
 * The README's deployment guide as the booted test reads it: markers, blocks,
 * continued lines, `$EDITOR` lines, day-2 operations, placeholders, and the
 * errors that keep a block from being skipped silently.
 */
import assert from "node:assert/strict";
import { commandsOf, fillPlaceholders, parseGuide, ReadmeError } from "./readme.ts";

const fence = "```";

function readme(body: string): string {
  return `# x\n\n## Run it\n\n${fence}sh\nnot ours\n${fence}\n\n## Deploying on Proxmox: three VMs\n\n${body}\n## Development\n\n${fence}sh\nnot ours either\n${fence}\n`;
}

Deno.test("readme: marked blocks become steps in order, with their README lines", () => {
  const text = readme([
    "Prose.",
    "",
    "<!-- e2e:run build -->",
    `${fence}sh`,
    "git clone <this repository> joi && cd joi",
    "deno task nebula \\",
    "  --underlay mesh=10.99.0.1   # continued",
    `${fence}`,
    "",
    "<!-- e2e:copy var/bundle/joi joi:/root/joi -->",
    "<!-- e2e:run joi -->",
    "",
    `${fence}sh`,
    "# a comment line is not a command",
    "$EDITOR /etc/joi/*.yaml   # your household",
    "systemctl enable --now joi.service",
    `${fence}`,
    "",
    "<!-- e2e:day2 knowledge joi -->",
    `${fence}sh`,
    "cp <file> /var/lib/joi/knowledge/<folder>/",
    `${fence}`,
    "",
    `${fence}yaml`,
    "an: example",
    `${fence}`,
  ].join("\n"));
  const g = parseGuide(text);
  const first = text.split("\n").indexOf("<!-- e2e:run build -->") + 1;
  assert.deepEqual(g.steps, [
    {
      kind: "run",
      host: "build",
      line: first,
      commands: [
        { text: "git clone <this repository> joi && cd joi", line: first + 2 },
        {
          text: "deno task nebula \\\n  --underlay mesh=10.99.0.1   # continued",
          line: first + 3,
        },
      ],
    },
    { kind: "copy", from: "var/bundle/joi", host: "joi", to: "/root/joi", line: first + 7 },
    {
      kind: "run",
      host: "joi",
      line: first + 8,
      commands: [
        {
          text: "$EDITOR /etc/joi/*.yaml   # your household",
          line: first + 12,
          edit: ["/etc/joi/*.yaml"],
        },
        { text: "systemctl enable --now joi.service", line: first + 13 },
      ],
    },
  ]);
  assert.deepEqual(Object.keys(g.day2), ["knowledge"]);
  assert.equal(g.day2.knowledge!.host, "joi");
  assert.deepEqual(g.day2.knowledge!.commands.map((c) => c.text), [
    "cp <file> /var/lib/joi/knowledge/<folder>/",
  ]);
});

Deno.test("readme: a command block without a marker is an error naming its line", () => {
  const text = readme(
    ["<!-- e2e:run joi -->", `${fence}sh`, "true", fence, "", `${fence}sh`, "forgotten", fence]
      .join("\n"),
  );
  const line = text.split("\n").indexOf("forgotten");
  assert.throws(() => parseGuide(text), (e: Error) => {
    assert.ok(e instanceof ReadmeError);
    assert.equal(
      e.message,
      `README.md:${line}: a command block without an e2e marker: say where it runs`,
    );
    return true;
  });
});

Deno.test("readme: bad markers are refused", () => {
  const cases: [string, RegExp][] = [
    ["<!-- e2e:run laptop -->\n```sh\ntrue\n```", /names host "laptop"/],
    ["<!-- e2e:copy x build:/root -->", /not a VM/],
    ["<!-- e2e:frobnicate -->", /unknown e2e marker/],
    ["<!-- e2e:run joi -->\nSome prose.\n```sh\ntrue\n```", /not followed by a ```sh block/],
    ["<!-- e2e:run joi -->\n```yaml\na: 1\n```", /before a ```yaml block/],
    ["<!-- e2e:run joi -->", /without a ```sh block/],
    [
      "<!-- e2e:day2 k joi -->\n```sh\ntrue\n```\n<!-- e2e:day2 k joi -->\n```sh\ntrue\n```",
      /a second e2e:day2 k/,
    ],
    ["<!-- e2e:run joi -->\n```sh\ntrue", /unclosed code block/],
  ];
  for (const [body, re] of cases) assert.throws(() => parseGuide(readme(body)), re, body);
  assert.throws(() => parseGuide("# nothing here\n"), /no section matching/);
});

Deno.test("readme: a block ending in a continuation is an error", () => {
  assert.throws(() => commandsOf(["echo a \\"], 7), /README.md:7: a command ends with/);
});

Deno.test("readme: placeholders are filled from the test's values, unknown ones refused", () => {
  assert.equal(
    fillPlaceholders("git clone <this repository> joi 2>/dev/null", 3, {
      "this repository": "/tmp/src.git",
    }),
    "git clone /tmp/src.git joi 2>/dev/null",
  );
  assert.equal(fillPlaceholders("a < b > c; cat <<EOF", 3, {}), "a < b > c; cat <<EOF");
  assert.throws(
    () => fillPlaceholders("systemctl reload nebula@<node>", 9, { file: "x" }),
    /README.md:9: placeholder <node> has no value in the test \(known: <file>\)/,
  );
});
