/**
 * Loads the `runctl local` fast path's bundle (dist/local.bundle.cjs) with a
 * V8 code cache. Most of what the bundle costs at start is not parsing but
 * running its modules once: zod and runctl's schemas are built at import, by
 * hundreds of functions that each run once and must first be compiled. A code
 * cache taken after the bundle has run holds those functions compiled, so the
 * next start skips both the parse and their compilation (bench/README.md has
 * the figures). Node 22's module compile cache caches what a module compiles
 * eagerly, not what it compiled while running, and Node 20 has none; so the
 * bundle is a CommonJS function body run through `vm.Script`, whose
 * `createCachedData()` after the run includes everything compiled so far.
 *
 * The cache is one file per bundle content and Node version, under
 * `$XDG_CACHE_HOME/runctl/code-cache` (else `~/.cache/runctl/code-cache`),
 * written after the run (never on its critical path) when it was missing or
 * V8 refused it. A cache that cannot be read or written only costs speed.
 * This module imports Node built-ins only.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Script } from "node:vm";

/** What the bundle exports (scripts/bundle-local.mjs writes its entry). */
export interface LocalBundle {
  run(argv: readonly string[], cliRoot: string): Promise<boolean>;
}

export interface LoadedBundle {
  bundle: LocalBundle;
  /** What became of the code cache on this load. */
  cache: "off" | "missing" | "used" | "rejected";
  /** Writes the code cache if this load had none or V8 refused it; call once the work is done. */
  saveCache(): void;
}

/** The parameters the bundle's body is run with: CommonJS's, plus the URL esbuild puts for `import.meta.url`. */
const PARAMETERS = ["exports", "require", "module", "__filename", "__dirname", "__runctlBundleUrl"];

export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, ".cache") : undefined);
  return base ? join(base, "runctl", "code-cache") : undefined;
}

export function loadBundle(file: string, env: NodeJS.ProcessEnv = process.env): LoadedBundle {
  const source = readFileSync(file, "utf8");
  const dir = env.RUNCTL_NO_CODE_CACHE ? undefined : codeCacheDir(env);
  // Keyed by content: V8 checks a cache against the source's length only.
  const key = `local-${createHash("sha256").update(source).digest("hex").slice(0, 24)}-${process.version}-${process.arch}`;
  const cacheFile = dir ? join(dir, `${key}.bin`) : undefined;
  let cachedData: Buffer | undefined;
  if (cacheFile) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // none yet
    }
  }
  const script = new Script(`(function (${PARAMETERS.join(", ")}) {${source}\n})`, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
  const cache = !cacheFile
    ? "off"
    : !cachedData
      ? "missing"
      : script.cachedDataRejected
        ? "rejected"
        : "used";
  const module = { exports: {} as LocalBundle };
  const body = script.runInThisContext() as (...args: unknown[]) => void;
  body(module.exports, createRequire(file), module, file, dirname(file), pathToFileURL(file).href);
  return {
    bundle: module.exports,
    cache,
    saveCache() {
      if (!dir || !cacheFile || cache === "used") return;
      try {
        mkdirSync(dir, { recursive: true });
        // Caches of other builds or Node versions are of no more use.
        for (const name of readdirSync(dir)) {
          if (name.startsWith("local-") && name !== `${key}.bin`) rmSync(join(dir, name), { force: true });
        }
        const temp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(temp, script.createCachedData());
        renameSync(temp, cacheFile);
      } catch {
        // a cache only saves time
      }
    },
  };
}
