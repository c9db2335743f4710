// Throwaway directories, and a check that children (which import dist/) run fresh code.
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const SRC = join(here, "..", "src");
const DIST = join(here, "..", "dist");

/** Children import dist/: fail loudly if it is missing or older than src/. */
export async function assertDistFresh(): Promise<void> {
  if (!existsSync(join(DIST, "mod.js")))
    throw new Error("packages/queue-server/dist is missing: run `npm run build` first");
  for (const file of await readdir(SRC)) {
    const out = join(DIST, file.replace(/\.ts$/, ".js"));
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(join(SRC, file)).mtimeMs) {
      throw new Error(`packages/queue-server/dist is stale (${file}): run \`npm run build\` first`);
    }
  }
}

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `runctl-queue-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
