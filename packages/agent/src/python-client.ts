/**
 * Where the Python client lives, so every run runctl starts can `import runctl`
 * with nothing installed: its directory goes first on PYTHONPATH.
 */
import { createRequire } from "node:module";
import { delimiter, dirname } from "node:path";

export function pythonClientDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@runctl/client-python/package.json"));
}

export function withPythonClient(pythonPath: string | undefined): string {
  return [pythonClientDir(), ...(pythonPath ? pythonPath.split(delimiter) : [])]
    .filter(Boolean)
    .join(delimiter);
}
