/**
 * Where the Python client lives, so every run runctl starts can `import runctl`
 * with nothing installed: its location goes first on PYTHONPATH. In the
 * workspace or an npm install that is @runctl/client-python's directory; the
 * agent artifact (dist/agent.bundle.mjs, what a remote machine downloads) also
 * carries the client as a zip, written once to a content-addressed file when
 * that package cannot be found.
 */
import { createHash } from "node:crypto";
import { mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";

// Set by scripts/bundle.mjs (esbuild `define`); absent when running from tsc's output.
declare const __RUNCTL_PYTHON_ZIP__: string | undefined;
declare const __RUNCTL_PYTHON_ZIP_SHA256__: string | undefined;

export function pythonClientDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@runctl/client-python/package.json"));
}

/** Where the embedded zip is kept: under RUNCTL_HOME on a runctl host, else the user's cache. */
export function pythonClientCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RUNCTL_HOME) return join(env.RUNCTL_HOME, "cache", "python");
  const cache = env.XDG_CACHE_HOME || (homedir() ? join(homedir(), ".cache") : tmpdir());
  return join(cache, "runctl", "python");
}

/**
 * Writes `zip` (base64) to `<dir>/runctl-client-<sha256>.zip` unless a file of that size is
 * already there, and returns its path. The name is checked against the bytes, and the file
 * appears whole (written aside, then renamed), so concurrent agents can share the directory.
 */
export function materializePythonZip(zipBase64: string, sha256: string, dir: string): string {
  const bytes = Buffer.from(zipBase64, "base64");
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== sha256) throw new Error(`embedded Python client zip: sha256 ${actual}, expected ${sha256}`);
  const path = join(dir, `runctl-client-${sha256}.zip`);
  try {
    if (statSync(path).size === bytes.length) return path;
  } catch {
    // not written yet
  }
  mkdirSync(dir, { recursive: true });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, bytes, { mode: 0o644 });
  renameSync(aside, path);
  return path;
}

let located: string | undefined;

/** The PYTHONPATH entry that provides `import runctl`: the package directory, else the embedded zip. */
export function pythonClientPath(): string {
  if (located !== undefined) return located;
  try {
    located = pythonClientDir();
  } catch (error) {
    if (typeof __RUNCTL_PYTHON_ZIP__ !== "string" || typeof __RUNCTL_PYTHON_ZIP_SHA256__ !== "string")
      throw error;
    located = materializePythonZip(
      __RUNCTL_PYTHON_ZIP__,
      __RUNCTL_PYTHON_ZIP_SHA256__,
      pythonClientCacheDir(),
    );
  }
  return located;
}

export function withPythonClient(pythonPath: string | undefined): string {
  return [pythonClientPath(), ...(pythonPath ? pythonPath.split(delimiter) : [])]
    .filter(Boolean)
    .join(delimiter);
}
