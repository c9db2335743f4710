/**
 * What both clouds' preemption tests check in the store: the preempted run's meta.json, that
 * every rank applied `checkpoint.save` and the one checkpoint it wrote is there whole, and then
 * `runctl <cloud> train … --resume <run>`: every rank of the new run starts from that
 * checkpoint, fetched from the store, and the new run records where it resumed from.
 */
import { type ArtifactStore, readStoredRunFile } from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { expect } from "vitest";
import { z } from "zod";
import type { RemoteTrainSetup } from "./remote-train-setup.ts";
import { TRAIN_STORE_URL } from "./remote-train-setup.ts";
import { runctlJson, type Workspace, waitFor } from "./runctl-cli.ts";

/** What `<cloud> train --json` answers. */
export const Trained = z.object({
  runId: z.string(),
  placement: z.object({ resourceId: z.string(), market: z.string() }).loose(),
});

const Ack = z
  .object({ id: z.string(), path: z.string().nullable(), status: z.string(), rank: z.number() })
  .loose();

/** The remote-train store, read as the test's own client with `key`. */
export function trainStore(setup: RemoteTrainSetup, key: { accessKeyId: string; secretAccessKey: string }) {
  return S3ArtifactStore.fromUrl(TRAIN_STORE_URL, {
    endpoint: setup.s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: key,
  });
}

export async function storedMeta(
  store: ArtifactStore,
  runId: string,
): Promise<Record<string, unknown> | undefined> {
  const bytes = await readStoredRunFile(store, `runs/${runId}`, "meta.json");
  return bytes ? (JSON.parse(bytes.toString("utf8")) as Record<string, unknown>) : undefined;
}

/** A machine's logs as one text, for a failure's message (empty when it is gone). */
export function hostLogs(
  host: { logs(): Promise<{ bootstrap: string; agent: string; console: string }> } | undefined,
): () => Promise<string> {
  return async () => {
    const l = await host?.logs();
    return l ? `bootstrap.log:\n${l.bootstrap}\nagent.log:\n${l.agent}\n${l.console}` : "";
  };
}

/** Waits until the run is live in the store: `running`, and its first step written (`polling`). */
export async function waitUntilLive(store: ArtifactStore, runId: string, logs: () => Promise<string>) {
  await waitFor(
    async () =>
      (await storedMeta(store, runId))?.status === "running" &&
      (await store.head(`runs/${runId}/polling`)) !== null,
    "the run to be live in the store",
    120_000,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}\n${await logs()}`);
  });
}

/**
 * Every rank applied `checkpoint.save`, sent over the run's NATS channel (not the node-local
 * queue), and the one checkpoint it wrote is in the store under the run's prefix, whole.
 */
export async function expectCheckpointed(
  store: ArtifactStore,
  runId: string,
  logs: () => Promise<string>,
): Promise<Preempted> {
  const acksText =
    (await readStoredRunFile(store, `runs/${runId}`, "control/acks.jsonl"))?.toString("utf8") ?? "";
  const acks = acksText
    .split("\n")
    .filter(Boolean)
    .map((line) => Ack.parse(JSON.parse(line)))
    .filter((a) => a.path === "checkpoint.save");
  expect(await logs()).not.toMatch(/sent through the node-local queue/);
  expect(acks.map((a) => [a.rank, a.status]).sort()).toEqual([
    [0, "applied"],
    [1, "applied"],
  ]);
  const prefix = `runs/${runId}/checkpoints/`;
  const checkpoints = (await store.list(prefix)).map((o) => o.key);
  expect(checkpoints).toHaveLength(1);
  expect(checkpoints[0]).toMatch(new RegExp(`^${prefix}step-\\d{6}\\.pt$`));
  expect((await store.head(checkpoints[0] as string))?.size).toBeGreaterThan(500);
  return { runId, checkpoint: (checkpoints[0] as string).slice(prefix.length) };
}

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
  await waitFor(
    async () => (await storedMeta(store, runId))?.status === "completed",
    "the resumed run to end",
    60_000,
  );
  expect(await storedMeta(store, runId)).toMatchObject({ resumed_from: `${from.runId}/${from.checkpoint}` });
  // Fetched outside the new run's directory: its store copy does not hold the checkpoint again.
  expect(await store.list(`runs/${runId}/checkpoints/`)).toEqual([]);
}
