// meta.json is rewritten by two kinds of writers at once (the supervisor in
// Node, the training script's Python client): racing read-merge-writes from
// both languages must not lose each other's keys.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RunWriter, readMeta } from "@runctl/tracker";
import { afterAll, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const CLIENT = dirname(require.resolve("@runctl/client-python/package.json"));
const N = 300;
let root: string | undefined;
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

it("keeps every update when Node and Python writers race on meta.json", async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-meta-mutex-"));
  const writer = RunWriter.create({ runsDir: root, name: "race" });
  const python = `
import sys
from runctl._meta import update_meta
for i in range(${N}):
    def bump(meta):
        meta["py_n"] = meta.get("py_n", 0) + 1
    update_meta(sys.argv[1], bump)
`;
  const node = `
import { RunWriter } from "@runctl/tracker";
const w = RunWriter.open(process.argv[1]);
for (let i = 0; i < ${N}; i++) w.updateMeta((m) => ({ node_n: (m.node_n ?? 0) + 1 }));
`;
  const env = { ...process.env, PYTHONPATH: CLIENT };
  await Promise.all([
    run("/usr/bin/python3", ["-c", python, writer.dir], env),
    run(process.execPath, ["--input-type=module", "-e", node, writer.dir], env),
    run(process.execPath, ["--input-type=module", "-e", node, writer.dir], env),
  ]);
  const meta = (await readMeta(writer.dir)) as Record<string, unknown>;
  expect(meta.py_n).toBe(N);
  expect(meta.node_n).toBe(2 * N);
  writer.close();
});
