// The core provider contract suite against this machine as a provider: every
// launch starts a real detached supervisor running a real process.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killGroup } from "@runctl/agent";
import { providerContractCases } from "@runctl/core/testing";
import { listRuns, RunWriter } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import providers from "../src/hooks/providers.ts";
import { LocalLaunchOptions, LocalProvider } from "../src/mod.ts";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-local-provider-"));
});
afterAll(async () => {
  // The suite terminates what it launched; wait for those supervisors to finish writing.
  const p = await make();
  const deadline = Date.now() + 30_000;
  while ((await p.list({ states: ["pending", "running", "stopping"] })).length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Nothing launched here may outlive the test run, whatever happened to its supervisor.
  for (const run of await listRuns(join(root, "runs"))) {
    for (const pgid of (run.rank_pgids as number[] | undefined) ?? []) killGroup(pgid, "SIGKILL");
  }
  await rm(root, { recursive: true, force: true });
});

const make = async () =>
  new LocalProvider({
    runsDir: join(root, "runs"),
    checkpointDir: join(root, "checkpoints"),
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });

describe("local provider contract", () => {
  const cases = providerContractCases(make, {
    launchSpec: {
      instanceType: "local",
      command: ["/usr/bin/python3", "-c", "import time; time.sleep(60)"],
      // Launches overlap (a terminated run is still releasing its lock): one checkpoint dir each.
      providerOptions: { checkpointDir: "checkpoints/{run}" },
    },
    settleTimeoutMs: 30_000,
    pollMs: 100,
    launchOptionsSchema: LocalLaunchOptions,
    // A run written by a training script itself (no CreatedBy tag): not a resource runctl made.
    createUnmanaged: async () => RunWriter.create({ runsDir: join(root, "runs"), writer: "python" }).id,
  });
  for (const c of cases) it(c.name, c.run);
});

describe("local provider plugin", () => {
  it("registers `local`, configured by core's [local] section", async () => {
    const [definition] = await providers();
    expect(definition).toMatchObject({
      name: "local",
      coreSection: true,
      capabilities: { stopStart: false },
    });
  });

  it("refuses spot and launches without a command", async () => {
    const p = await make();
    await expect(
      p.launch({ instanceType: "local", market: "spot", command: ["true"] }),
    ).rejects.toMatchObject({
      code: "unsupported",
    });
    await expect(p.launch({ instanceType: "local" })).rejects.toMatchObject({ code: "invalid_spec" });
  });
});
