import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Tracker } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileTracker, readMeta } from "../src/mod.ts";
import { tempDir } from "./helpers.ts";

let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  root = await tempDir("file-tracker");
});
afterAll(async () => {
  await root.cleanup();
});

describe("FileTracker", () => {
  it("implements the Tracker contract over a runs directory", async () => {
    const files = new FileTracker({ runsDir: join(root.path, "runs") });
    const tracker: Tracker = files;
    const run = await tracker.createRun({ name: "tiny", config: { lr: 0.1 }, tags: ["t"] });
    expect(run).toMatchObject({ name: "tiny", status: "running", tags: ["t"] });

    for (let step = 0; step < 3; step++) await tracker.logMetrics(run.id, { loss: 1 / (step + 1) }, step);
    await tracker.setSummary(run.id, { final_loss: 1 / 3 });
    const src = join(root.path, "model.pt");
    await writeFile(src, "weights");
    await tracker.saveArtifact(run.id, src);

    const page = await tracker.getMetrics(run.id, 1);
    expect(page.records.map((r) => r.step)).toEqual([1, 2]);
    expect(page.cursor).toBe(3);
    expect((await tracker.getRun(run.id)).status).toBe("running");

    const done = await tracker.finishRun(run.id, "completed", { exitCode: 0 });
    expect(done).toMatchObject({ status: "completed", exit_code: 0, summary: { final_loss: 1 / 3 } });
    expect((await tracker.listArtifacts(run.id)).map((a) => a.path)).toEqual(["model.pt"]);
    expect((await tracker.listRuns({ status: ["completed"] })).map((r) => r.id)).toEqual([run.id]);

    // A second tracker (another process, say) picks the run up from disk and keeps counting.
    const other = new FileTracker({ runsDir: join(root.path, "runs") });
    expect((await other.logMetrics(run.id, { late: 1 }))._idx).toBe(3);
    expect(await readMeta(join(root.path, "runs", run.id))).toEqual(done);
    other.close();
    files.close();

    await expect(tracker.getRun("no-such-run")).rejects.toMatchObject({ code: "run_not_found" });
    await expect(tracker.listArtifacts("no-such-run")).rejects.toMatchObject({ code: "run_not_found" });
    await expect(tracker.getRun("../etc")).rejects.toMatchObject({ code: "run_bad_id" });
  });
});
