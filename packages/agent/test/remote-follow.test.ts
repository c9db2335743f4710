// followRemote against a real nats-server, the real telemetry publisher and a file:// store copy.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectNats, NatsTelemetry } from "@runctl/control";
import { FileArtifactStore } from "@runctl/core";
import { StoreRunSource } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followRemote } from "../src/mod.ts";

// The harness lives in test-e2e, outside this package's tsconfig rootDir: imported by a path TypeScript does not follow.
interface NatsServer {
  url: string;
  close(): Promise<void>;
}
const HARNESS = "../../../test-e2e/src/nats-server.ts";
const { startNatsServer } = (await import(/* @vite-ignore */ new URL(HARNESS, import.meta.url).href)) as {
  startNatsServer(): Promise<NatsServer>;
};

let server: NatsServer;
let dir: string;
let store: FileArtifactStore;
beforeAll(async () => {
  server = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), "runctl-follow-"));
  store = new FileArtifactStore(join(dir, "store"));
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function putStored(runId: string, file: string, text: string) {
  const local = join(dir, `${runId}-${file}`);
  writeFileSync(local, text);
  await store.putFile(`runs/${runId}/${file}`, local);
}

/** Follows `runId` in the background; `heard()` resolves once the follower listens. */
function follow(runId: string, quietMs?: number) {
  let out = "";
  const notes: string[] = [];
  let listening: () => void = () => {};
  const heard = new Promise<void>((resolve) => {
    listening = resolve;
  });
  const ended = followRemote({
    runId,
    settings: { url: server.url },
    source: new StoreRunSource(store, "runs"),
    write: (bytes) => {
      out += Buffer.from(bytes).toString("utf8");
    },
    note: (message) => {
      notes.push(message);
      if (message.startsWith("runctl: following")) listening();
    },
    ...(quietMs !== undefined ? { quietMs } : {}),
  });
  return { ended, heard, output: () => out, notes };
}

describe("following a run over NATS with its store copy", () => {
  it("waits for the store copy to fill a gap instead of skipping the bytes", async () => {
    const runId = "follow-gap";
    const follower = follow(runId);
    await follower.heard;
    const nc = await connectNats({ url: server.url });
    const telemetry = new NatsTelemetry(nc, "runctl", runId, "vm-1");
    await telemetry.append("output.log", 0, Buffer.from("line 0\n"));
    // "line 1\n" never goes out as telemetry: the follower sees a gap before "line 2\n".
    await telemetry.append("output.log", 14, Buffer.from("line 2\n"));
    await nc.flush();
    // The store copy gets it a sync later.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    await putStored(runId, "output.log", "line 0\nline 1\nline 2\n");
    expect(await telemetry.publishEnd("completed", 0)).toBe(true);
    expect(await follower.ended).toBe("completed");
    expect(follower.output()).toBe("line 0\nline 1\nline 2\n");
    expect(follower.notes.filter((n) => /bytes of output/.test(n))).toEqual([]);
    await nc.close();
  });

  it("ends from the store copy when the run's end was never announced over NATS", async () => {
    const runId = "follow-unannounced";
    const follower = follow(runId, 300);
    await follower.heard;
    const nc = await connectNats({ url: server.url });
    await new NatsTelemetry(nc, "runctl", runId, "vm-1").append("output.log", 0, Buffer.from("a\n"));
    await nc.close();
    await putStored(runId, "output.log", "a\nb\n");
    await putStored(runId, "meta.json", JSON.stringify({ status: "failed", exit_code: 3 }));
    expect(await follower.ended).toBe("failed");
    expect(follower.output()).toBe("a\nb\n");
  });
});
