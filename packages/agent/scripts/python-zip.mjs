// The Python client (the pure-Python `runctl` package of @runctl/client-python) as one zip,
// the same bytes for the same sources: Python imports a pure package straight from a zip on
// PYTHONPATH (zipimport), so the agent artifact can carry it and a remote machine needs no
// install. fflate: a small, dependency-free zip writer; the build needs no Python.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { zipSync } from "fflate";

// Fixed, so the zip (and the artifact's sha256) depends on the sources alone. Zip times
// start in 1980; 2000-01-01 like the code bundles.
const MTIME = new Date(Date.UTC(2000, 0, 1));

export function pythonClientSourceDir() {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@runctl/client-python/package.json"));
}

/** The package's `.py` files, subpackages included (`runctl/runner/…`), as sorted `/` paths. */
async function pythonSources(dir, prefix) {
  const found = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== "__pycache__") {
      found.push(...(await pythonSources(join(dir, entry.name), `${prefix}${entry.name}/`)));
    } else if (entry.isFile() && entry.name.endsWith(".py")) {
      found.push(`${prefix}${entry.name}`);
    }
  }
  return found.sort();
}

/** @returns {Promise<{ zip: Uint8Array, sha256: string, files: string[] }>} */
export async function buildPythonClientZip(sourceDir = pythonClientSourceDir()) {
  const names = await pythonSources(join(sourceDir, "runctl"), "");
  if (!names.includes("__init__.py")) throw new Error(`no runctl/__init__.py under ${sourceDir}`);
  const entries = {};
  for (const name of names) {
    entries[`runctl/${name}`] = [
      new Uint8Array(await readFile(join(sourceDir, "runctl", ...name.split("/")))),
      { mtime: MTIME },
    ];
  }
  const zip = zipSync(entries, { level: 9, mtime: MTIME });
  return {
    zip,
    sha256: createHash("sha256").update(zip).digest("hex"),
    files: names.map((n) => `runctl/${n}`),
  };
}
