#!/usr/bin/env node
// `npm create runctl-provider <name>` (or `npx create-runctl-provider <name>`): writes a provider
// plugin package, runctl-provider-<name>, that builds, passes runctl's provider contract suite and
// publishes as it is. Standard library only. Usage: create-runctl-provider <name> [--dir DIR]
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

const here = dirname(new URL(import.meta.url).pathname);
const templateDir = join(here, "..", "template");
const own = JSON.parse(readFileSync(join(here, "..", "package.json"), "utf8"));

function fail(message) {
  process.stderr.write(`create-runctl-provider: ${message}\n`);
  process.exit(1);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
} catch (error) {
  fail(error.message);
}
const { values, positionals } = parsed;
if (values.help || positionals.length !== 1) {
  process.stdout.write(
    "usage: npm create runctl-provider <name> [-- --dir DIR]\n" +
      "  <name>  the provider's name: lower-case letters, digits and dashes (gcp, lambda-labs)\n" +
      "  writes runctl-provider-<name>/ (or DIR)\n",
  );
  process.exit(values.help ? 0 : 1);
}
let [name] = positionals;
name = name.replace(/^(runctl-)?provider-/, "");
if (!/^[a-z][a-z0-9-]*$/.test(name))
  fail(`"${name}" is not a provider name: use lower-case letters, digits and dashes`);

const target = resolve(values.dir ?? `runctl-provider-${name}`);
if (existsSync(target) && readdirSync(target).length > 0) fail(`${target} exists and is not empty`);

const className = name
  .split("-")
  .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
  .join("");
const replacements = {
  __NAME__: name,
  __CLASS__: className,
  __RUNCTL_VERSION__: own.version,
};
const fill = (text) => text.replace(/__NAME__|__CLASS__|__RUNCTL_VERSION__/g, (key) => replacements[key]);

// npm leaves `.gitignore` out of published packages, so the template keeps it as `_gitignore`.
const RENAMES = { _gitignore: ".gitignore" };

function copy(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    const source = join(from, entry);
    const dest = join(to, fill(RENAMES[entry] ?? entry));
    if (statSync(source).isDirectory()) copy(source, dest);
    else writeFileSync(dest, fill(readFileSync(source, "utf8")));
  }
}
copy(templateDir, target);

const shown = relative(process.cwd(), target) || ".";
process.stdout.write(
  [
    `Created runctl-provider-${name} in ${shown}`,
    "",
    `  cd ${shown}`,
    "  npm install",
    "  npm run build        # TypeScript to dist/, and oclif.manifest.json",
    "  npm test             # runctl's provider contract suite against your provider",
    "  npm publish",
    `  runctl plugins install provider-${name}`,
    "",
    "Then replace the simulated machines in src/provider.ts with your cloud's API.",
    "",
  ].join("\n"),
);
