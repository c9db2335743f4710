// Run sync to an artifact store (file://): append-only files travel as
// segments by offset, whole files are replaced, and a sync engine started
// again (an agent restarted mid-run) continues from what the store holds, so
// nothing is stored twice.
import { appendFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileArtifactStore, listStoredRunFiles, readStoredRunFile, StoreRunSync } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunDirSync } from "../src/mod.ts";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-sync-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("RunDirSync to an artifact store", () => {
  it("mirrors growth by offset and whole files, and resumes without duplicates", async () => {
    const dir = join(root, "run");
    await mkdir(join(dir, "artifacts"), { recursive: true });
    const store = new FileArtifactStore(join(root, "store"));
    const prefix = "runs/r1";
    const metric = (i: number) => `${JSON.stringify({ _idx: i, loss: 1 / (i + 1) })}\n`;

    await writeFile(join(dir, "meta.json"), '{"status": "running"}\n');
    await writeFile(join(dir, "metrics.jsonl"), metric(0) + metric(1));
    await writeFile(join(dir, "meta.json.lock"), "123");
    const first = new RunDirSync(dir, new StoreRunSync(store, prefix));
    await first.sync();

    await appendFile(join(dir, "metrics.jsonl"), metric(2));
    await writeFile(join(dir, "meta.json"), '{"status": "completed"}\n');
    await writeFile(join(dir, "artifacts", "model.bin"), Buffer.alloc(3 * 1024 * 1024, 7));
    // The agent died and came back: a new engine over the same store.
    const again = new RunDirSync(dir, new StoreRunSync(store, prefix));
    await again.resume();
    await again.sync();
    await again.sync();

    expect(await listStoredRunFiles(store, prefix)).toEqual([
      "artifacts/model.bin",
      "meta.json",
      "metrics.jsonl",
    ]);
    const metrics = await readStoredRunFile(store, prefix, "metrics.jsonl");
    expect(metrics?.toString()).toBe(metric(0) + metric(1) + metric(2));
    expect((await readStoredRunFile(store, prefix, "meta.json"))?.toString()).toContain("completed");
    expect(
      (await readStoredRunFile(store, prefix, "artifacts/model.bin"))?.equals(
        await readFile(join(dir, "artifacts", "model.bin")),
      ),
    ).toBe(true);
    // Two segments: the first pass's bytes and the resumed pass's new ones, nothing resent.
    const segments = (await store.list(`${prefix}/metrics.jsonl.segments/`)).map((o) => o.size);
    expect(segments).toEqual([Buffer.byteLength(metric(0) + metric(1)), Buffer.byteLength(metric(2))]);
    expect(await readStoredRunFile(store, prefix, "missing.txt")).toBeNull();
  });

  it("starts a file over when it shrank (replaced by the writer)", async () => {
    const dir = join(root, "run2");
    await mkdir(dir, { recursive: true });
    const store = new FileArtifactStore(join(root, "store2"));
    const sync = new RunDirSync(dir, new StoreRunSync(store, "r"));
    await writeFile(join(dir, "output.log"), "a long first version\n");
    await sync.sync();
    await writeFile(join(dir, "output.log"), "short\n");
    await sync.sync();
    expect((await readStoredRunFile(store, "r", "output.log"))?.toString()).toBe("short\n");
  });

  it("never stores a whole file cut short while a writer keeps replacing it (atomic renames, growing)", async () => {
    const dir = join(root, "run3");
    await mkdir(dir, { recursive: true });
    const store = new FileArtifactStore(join(root, "store3"));
    const sync = new RunDirSync(dir, new StoreRunSync(store, "r"));
    const meta = (n: number) =>
      JSON.stringify({ status: "running", beats: Array.from({ length: n }, (_, i) => i) });
    await writeFile(join(dir, "meta.json"), meta(1));
    let stop = false;
    // A writer as the supervisor's: each version written aside, then renamed over meta.json.
    const writer = (async () => {
      for (let n = 2; !stop; n++) {
        await writeFile(join(dir, ".meta.json.w.tmp"), meta(n));
        await rename(join(dir, ".meta.json.w.tmp"), join(dir, "meta.json"));
      }
    })();
    const seen: string[] = [];
    for (let pass = 0; pass < 200; pass++) {
      await sync.sync();
      seen.push((await readStoredRunFile(store, "r", "meta.json"))?.toString() ?? "");
    }
    stop = true;
    await writer;
    // Every stored version parses: none is a longer version read to a shorter version's size.
    for (const text of seen) expect(() => JSON.parse(text), text).not.toThrow();
  });
});
