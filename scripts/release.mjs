#!/usr/bin/env node
// Publishes every public workspace of this repository to the registry npm is configured with
// (`npm config get registry`: .npmrc, npm_config_registry; auth from the npmrc), dependencies
// before their dependents, skipping versions the registry already has. Generic over the
// workspace list in package.json: a new public workspace is published without touching this file.
//
// Before publishing it checks what a registry user needs: each public package has a version,
// files, license, repository, engines and publishConfig, and no public package depends at run time
// on a private one.
//
// Usage: node scripts/release.mjs [--dry-run] [--tag TAG] [--no-build]   (npm run release -- …)
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";

const root = join(import.meta.dirname, "..");
const { values: options } = parseArgs({
  options: {
    "dry-run": { type: "boolean", default: false },
    tag: { type: "string" },
    "no-build": { type: "boolean", default: false },
  },
});

function fail(message) {
  process.stderr.write(`release: ${message}\n`);
  process.exit(1);
}

const npmBin = process.platform === "win32" ? "npm.cmd" : "npm";
function npm(args, opts = {}) {
  return spawnSync(npmBin, args, { cwd: root, encoding: "utf8", ...opts });
}

// The workspaces as npm sees them (globs expanded), in package.json order.
const listed = JSON.parse(
  execFileSync(npmBin, ["query", ".workspace", "--json"], { cwd: root, encoding: "utf8" }),
);
const workspaces = listed.map((w) => {
  const dir = w.realpath ?? join(root, w.location);
  return { dir, pkg: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) };
});
const byName = new Map(workspaces.map((w) => [w.pkg.name, w]));
const publicOnes = workspaces.filter((w) => !w.pkg.private);

const REQUIRED = ["version", "files", "license", "repository", "engines", "publishConfig"];
const problems = [];
for (const { dir, pkg } of publicOnes) {
  const where = relative(root, dir);
  for (const field of REQUIRED) {
    if (pkg[field] === undefined) problems.push(`${where} (${pkg.name}): no "${field}"`);
  }
  for (const kind of ["dependencies", "optionalDependencies", "peerDependencies"]) {
    for (const dep of Object.keys(pkg[kind] ?? {})) {
      const internal = byName.get(dep);
      if (internal?.pkg.private) problems.push(`${pkg.name} has private ${dep} in ${kind}`);
      else if (internal && pkg[kind][dep].replace(/^[\^~]/, "") !== internal.pkg.version) {
        problems.push(
          `${pkg.name} wants ${dep}@${pkg[kind][dep]}, the workspace has ${internal.pkg.version}`,
        );
      }
    }
  }
}
if (problems.length > 0) fail(`not publishable:\n  ${problems.join("\n  ")}`);

// Dependencies first, so a registry user never sees a package whose internal dependency is missing.
const order = [];
const visiting = new Set();
function visit(w) {
  if (order.includes(w)) return;
  if (visiting.has(w)) fail(`dependency cycle through ${w.pkg.name}`);
  visiting.add(w);
  const deps = { ...w.pkg.dependencies, ...w.pkg.optionalDependencies, ...w.pkg.peerDependencies };
  for (const name of Object.keys(deps)) {
    const internal = byName.get(name);
    if (internal && !internal.pkg.private) visit(internal);
  }
  visiting.delete(w);
  order.push(w);
}
for (const w of publicOnes) visit(w);

if (!options["no-build"]) {
  process.stderr.write("release: npm run build\n");
  const built = spawnSync(npmBin, ["run", "build"], { cwd: root, stdio: "inherit" });
  if (built.status !== 0) fail("the build failed");
}

const registry = npm(["config", "get", "registry"]).stdout.trim();
process.stderr.write(
  `release: ${order.length} public packages to ${registry}${options["dry-run"] ? " (dry run)" : ""}\n`,
);
const published = [];
const skipped = [];
for (const { dir, pkg } of order) {
  const spec = `${pkg.name}@${pkg.version}`;
  const seen = npm(["view", spec, "version"]);
  if (seen.status === 0 && seen.stdout.trim() === pkg.version) {
    skipped.push(spec);
    process.stderr.write(`release: ${spec} is already on the registry\n`);
    continue;
  }
  if (seen.status !== 0 && !/E404|404/.test(`${seen.stderr}${seen.stdout}`)) {
    fail(`cannot ask the registry about ${spec}:\n${seen.stderr}`);
  }
  const args = [
    "publish",
    ...(options.tag ? ["--tag", options.tag] : []),
    ...(options["dry-run"] ? ["--dry-run"] : []),
  ];
  process.stderr.write(`release: publishing ${spec} (${relative(root, dir)})\n`);
  const r = spawnSync(npmBin, args, { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0)
    fail(`npm publish of ${spec} failed; published so far: ${published.join(", ") || "none"}`);
  published.push(spec);
}
process.stdout.write(`${JSON.stringify({ registry, published, skipped }, null, 2)}\n`);
