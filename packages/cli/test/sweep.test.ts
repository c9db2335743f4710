import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expandSweep, readSweepFile } from "../src/sweep.ts";

async function sweepFile(text: string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), "runctl-sweep-")), "sweep.yaml");
  await writeFile(file, text);
  return file;
}

describe("sweep files", () => {
  it("a grid is every combination, in order, with the values appended as flags", async () => {
    const sweep = await readSweepFile(
      await sweepFile(
        "name: g\nprogram: python train.py\nparameters:\n  lr: {values: [0.1, 0.01]}\n  opt: {values: [sgd, adam, lion]}\n",
      ),
    );
    const jobs = expandSweep(sweep, 0);
    expect(jobs).toHaveLength(6);
    expect(jobs[0]).toEqual({
      name: "g-0",
      command_argv: ["python", "train.py", "--lr", "0.1", "--opt", "sgd"],
      config: { lr: 0.1, opt: "sgd" },
      tags: ["sweep:g"],
    });
    expect(jobs.map((j) => `${j.config.lr}/${j.config.opt}`)).toEqual([
      "0.1/sgd",
      "0.1/adam",
      "0.1/lion",
      "0.01/sgd",
      "0.01/adam",
      "0.01/lion",
    ]);
  });

  it("a random sweep is the same for the same seed, different for another, and within bounds", async () => {
    const sweep = await readSweepFile(
      await sweepFile(
        [
          "program: [python, train.py]",
          "method: random",
          "max_runs: 50",
          "parameters:",
          "  lr: {distribution: log_uniform, min: 0.0001, max: 0.1}",
          "  dropout: {distribution: uniform, min: 0.1, max: 0.5}",
          "  layers: {distribution: int_uniform, min: 2, max: 4}",
          "  act: {values: [relu, gelu]}",
          "",
        ].join("\n"),
      ),
    );
    const a = expandSweep(sweep, 7);
    expect(expandSweep(sweep, 7)).toEqual(a);
    expect(expandSweep(sweep, 8)).not.toEqual(a);
    expect(a).toHaveLength(50);
    for (const { config } of a) {
      expect(config.lr).toBeGreaterThanOrEqual(0.0001);
      expect(config.lr).toBeLessThanOrEqual(0.1);
      expect(config.dropout).toBeGreaterThanOrEqual(0.1);
      expect(config.dropout).toBeLessThan(0.5);
      expect([2, 3, 4]).toContain(config.layers);
      expect(["relu", "gelu"]).toContain(config.act);
    }
    // Every integer of the range is drawn, the top one included.
    expect(new Set(a.map((j) => j.config.layers))).toEqual(new Set([2, 3, 4]));
  });

  it("refuses what it cannot expand, naming the fix", async () => {
    const random = await readSweepFile(
      await sweepFile("program: x\nmethod: random\nparameters:\n  lr: {values: [1]}\n"),
    );
    expect(() => expandSweep(random, 1)).toThrow(/max_runs/);
    const grid = await readSweepFile(
      await sweepFile("program: x\nparameters:\n  lr: {distribution: uniform, min: 0, max: 1}\n"),
    );
    expect(() => expandSweep(grid, 1)).toThrow(/grid sweep cannot enumerate/);
    await expect(readSweepFile(await sweepFile("program: x\nparameters: {}\n"))).rejects.toMatchObject({
      code: "sweep_invalid",
    });
    await expect(readSweepFile(await sweepFile("program: [x\n"))).rejects.toThrow(
      /sweep.yaml:\d+: not valid YAML/,
    );
    await expect(
      readSweepFile(
        await sweepFile("program: x\nparameters:\n  lr: {distribution: log_uniform, min: 0, max: 1}\n"),
      ),
    ).rejects.toThrow(/log_uniform needs min > 0/);
    await expect(readSweepFile("/nonexistent/sweep.yaml")).rejects.toMatchObject({
      code: "sweep_unreadable",
    });
  });
});
