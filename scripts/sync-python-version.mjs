#!/usr/bin/env node
// After `changeset version`: the Python client's version follows its npm package's, so the wheel,
// `runctl.__version__` and pyproject.toml say what package.json says.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = join(import.meta.dirname, "..", "packages", "client-python");
const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
const edits = [
  [join(dir, "runctl", "__init__.py"), /^__version__ = "[^"]*"/m, `__version__ = "${version}"`],
  [join(dir, "pyproject.toml"), /^version = "[^"]*"/m, `version = "${version}"`],
];
for (const [file, pattern, replacement] of edits) {
  const text = readFileSync(file, "utf8");
  if (!pattern.test(text)) throw new Error(`${file}: no version line to update`);
  writeFileSync(file, text.replace(pattern, replacement));
}
process.stdout.write(`client-python: ${version}\n`);
