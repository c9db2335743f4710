/**
 * `runctl <cloud> train … --resume <run>` after a preemption, as both clouds' preemption tests
 * check it: every rank of the new run starts from the preempted run's checkpoint, fetched from
 * the store, and the new run records where it resumed from.
 */
import { type ArtifactStore, readStoredRunFile } from "@runctl/core";
import { expect } from "vitest";
import { runctlJson, type Workspace, waitFor } from "./runctl-cli.ts";

export interface Preempted {
  runId: string;
  /** The checkpoint's name under the run's `checkpoints/` (`step-000254.pt`). */
  checkpoint: string;
}

/** Waits for both ranks of `runId` to resume from `from`, stops the run, checks what it records. */
export async function expectResumed(
  store: ArtifactStore,
  user: Workspace,
  runId: string,
  from: Preempted,
  logs: () => Promise<string>,
): Promise<void> {
  const step = Number(/step-(\d+)\.pt/.exec(from.checkpoint)?.[1]);
  const output = async () =>
    (await readStoredRunFile(store, `runs/${runId}`, "output.log"))?.toString("utf8") ?? "";
  await waitFor(
    async () => (await output()).split("\n").filter((l) => / resumed from step /.test(l)).length === 2,
    "both ranks to resume",
    120_000,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}\n${await output()}\n${await logs()}`);
  });
  for (const rank of [0, 1]) {
    expect(await output()).toContain(`rank ${rank} resumed from step ${step} (${from.checkpoint})`);
  }
  const stop = await runctlJson(["ctl", runId, "run.stop", "--wait", "--timeout", "60"], user);
  expect(stop.code, stop.stderr).toBe(0);
  const meta = async () => {
    const bytes = await readStoredRunFile(store, `runs/${runId}`, "meta.json");
    return bytes ? (JSON.parse(bytes.toString("utf8")) as Record<string, unknown>) : undefined;
  };
  await waitFor(async () => (await meta())?.status === "completed", "the resumed run to end", 60_000);
  expect(await meta()).toMatchObject({ resumed_from: `${from.runId}/${from.checkpoint}` });
  // Fetched outside the new run's directory: its store copy does not hold the checkpoint again.
  expect(await store.list(`runs/${runId}/checkpoints/`)).toEqual([]);
}
