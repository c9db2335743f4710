// What a remote machine runs must not need a compiler: the runtime dependency
// closures of @runctl/agent and @runctl/control hold no native addon they
// require. (msgpackr's optional accelerator, msgpackr-extract, is reached only
// through optionalDependencies: msgpackr runs in plain JS without it, and an
// install that cannot build it goes on.) The job server's closure does hold
// one (better-sqlite3), which shows the check can see it.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  gypfile?: boolean;
}

/** The directory of `name` as Node resolves it from `fromDir` (its package.json, by walking node_modules up). */
function packageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name, "package.json");
    if (existsSync(candidate)) return dirname(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

function hasNativeCode(dir: string, manifest: Manifest): boolean {
  if (manifest.gypfile || existsSync(join(dir, "binding.gyp"))) return true;
  const build = join(dir, "build", "Release");
  return existsSync(build) && readdirSync(build).some((f) => f.endsWith(".node"));
}

/**
 * Every package the named one needs at run time, and which carry native code:
 * `native` are reached through required dependencies only, `optionalNative`
 * through an optional one somewhere on the way.
 */
function closure(start: string): { packages: Set<string>; native: string[]; optionalNative: string[] } {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve(`${start}/package.json`));
  const packages = new Set<string>();
  const required = new Set<string>();
  const nativeDirs = new Map<string, string>();
  const queue: Array<{ dir: string; optional: boolean }> = [{ dir: root, optional: false }];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const { dir, optional } = queue.shift() as { dir: string; optional: boolean };
    const key = `${dir}:${optional}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
    packages.add(manifest.name);
    if (!optional) required.add(manifest.name);
    if (hasNativeCode(dir, manifest)) nativeDirs.set(manifest.name, dir);
    for (const [deps, isOptional] of [
      [manifest.dependencies ?? {}, false],
      [manifest.optionalDependencies ?? {}, true],
    ] as const) {
      for (const name of Object.keys(deps)) {
        const found = packageDir(name, dir);
        if (found) queue.push({ dir: found, optional: optional || isOptional });
        else if (!isOptional) throw new Error(`${manifest.name}: ${name} is not installed`);
      }
    }
  }
  const names = [...nativeDirs.keys()];
  return {
    packages,
    native: names.filter((n) => required.has(n)),
    optionalNative: names.filter((n) => !required.has(n)),
  };
}

describe("dependency closures", () => {
  it("@runctl/agent holds no native addon", () => {
    const { packages, native, optionalNative } = closure("@runctl/agent");
    expect(packages).toContain("@runctl/tracker");
    expect(packages).toContain("@runctl/control");
    expect(packages).not.toContain("@runctl/queue-server");
    expect(native).toEqual([]);
    expect(optionalNative).toEqual(["msgpackr-extract"]);
  });

  it("@runctl/control holds no native addon", () => {
    const { packages, native, optionalNative } = closure("@runctl/control");
    expect(packages).not.toContain("@runctl/tracker");
    expect(native).toEqual([]);
    expect(optionalNative).toEqual(["msgpackr-extract"]);
  });

  it("the job server's closure has one, so the check can see it", () => {
    expect(closure("@runctl/queue-server").native).toContain("better-sqlite3");
  });
});
