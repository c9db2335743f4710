import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "@runctl/core";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  CheckpointInfo,
  checkpointInfo,
  cleanupCheckpoints,
  latestCheckpoint,
  listCheckpoints,
  parseStep,
  resolveCheckpointDir,
} from "../src/mod.ts";

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1 };

/** A real safetensors file: the header the reference writer produces (space-padded to 8 bytes) plus zeroed data. */
function safetensors(
  tensors: Record<string, { dtype: string; shape: number[] }>,
  metadata?: Record<string, string>,
) {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, { dtype, shape }] of Object.entries(tensors)) {
    const size = shape.reduce((a, b) => a * b, 1) * (BYTES[dtype] ?? 1);
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([prefix, Buffer.from(json), Buffer.alloc(offset)]);
}

/** A header given verbatim, with its true length, then `data`. */
function withHeader(json: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return rawSafetensors(BigInt(Buffer.byteLength(json)), Buffer.concat([Buffer.from(json), data]));
}

function rawSafetensors(headerLength: bigint, rest: Buffer = Buffer.alloc(0)): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength);
  return Buffer.concat([prefix, rest]);
}

async function rejection(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UserError) return error;
    throw error;
  }
  throw new Error("expected a UserError, got success");
}

const roots: string[] = [];
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "runctl-ckpt-"));
  roots.push(dir);
});
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function file(rel: string, content: Buffer | string = "x", mtimeSec?: number): Promise<string> {
  const path = join(dir, rel);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, content);
  if (mtimeSec !== undefined) await utimes(path, mtimeSec, mtimeSec);
  return path;
}

describe("parseStep", () => {
  it.each([
    ["ckpt_000120.pt", 120],
    ["epoch=3-step=1200.ckpt", 1200],
    ["global_step500.pt", 500],
    ["model-v2.safetensors", 2],
    ["model-00001-of-00004.safetensors", null],
    ["pytorch_model.bin", null],
    ["last.ckpt", null],
    ["step_99999999999999999999.pt", null],
  ])("%s → %s", (name, step) => {
    expect(parseStep(name)).toBe(step);
  });
});

describe("listCheckpoints", () => {
  it("finds checkpoint files recursively, skipping hidden entries, symlinks and other files, by step", async () => {
    await file("ckpt_000020.pt", "aa", 4000);
    await file("ckpt_000100.pt", "aaaa", 1000);
    await file("ckpt_000300.pth", "a", 2000);
    await file("sub/epoch=3-step=1200.ckpt", "abc", 3000);
    await file("notes.txt");
    await file("ckpt_000400.pt.tmp");
    await file(".hidden/ckpt_999999.pt");
    await file(".saving_000500.pt");
    await symlink(join(dir, "ckpt_000300.pth"), join(dir, "latest.pt"));
    const outside = await mkdtemp(join(tmpdir(), "runctl-ckpt-outside-"));
    roots.push(outside);
    await writeFile(join(outside, "ckpt_000900.pt"), "x");
    await symlink(outside, join(dir, "linked"));

    const list = await listCheckpoints(dir);
    expect(list.map((c) => c.name)).toEqual([
      "sub/epoch=3-step=1200.ckpt",
      "ckpt_000300.pth",
      "ckpt_000100.pt",
      "ckpt_000020.pt",
    ]);
    expect(list[0]).toMatchObject({ path: join(dir, "sub/epoch=3-step=1200.ckpt"), size: 3, step: 1200 });
    expect(list[0]?.mtime).toBe(new Date(3000 * 1000).toISOString());
    expect(list.map((c) => c.size)).toEqual([3, 1, 4, 2]);
  });

  it("orders by mtime when some name carries no step", async () => {
    await file("ckpt_000100.pt", "x", 1000);
    await file("ckpt_000050.pt", "x", 3000);
    await file("last.ckpt", "x", 2000);
    expect((await listCheckpoints(dir)).map((c) => c.name)).toEqual([
      "ckpt_000050.pt",
      "last.ckpt",
      "ckpt_000100.pt",
    ]);
  });

  it("takes the step of the Hugging Face layout from the directory", async () => {
    await file("checkpoint-500/model.safetensors", safetensors({}), 1000);
    await file("checkpoint-1000/model.safetensors", safetensors({}), 900);
    const list = await listCheckpoints(dir);
    expect(list.map((c) => [c.name, c.step])).toEqual([
      ["checkpoint-1000/model.safetensors", 1000],
      ["checkpoint-500/model.safetensors", 500],
    ]);
  });

  it("names a missing directory with code and hint", async () => {
    const error = await rejection(listCheckpoints(join(dir, "nope")));
    expect(error.code).toBe("checkpoint_dir_not_found");
    expect(error.message).toContain(join(dir, "nope"));
    expect(error.hint).toMatch(/local\.checkpoint_dir/);
    const notDir = await file("ckpt_1.pt");
    expect((await rejection(listCheckpoints(notDir))).code).toBe("checkpoint_dir_not_a_directory");
  });
});

describe("latestCheckpoint", () => {
  it("returns the newest, or null for an empty or missing directory", async () => {
    expect(await latestCheckpoint(dir)).toBeNull();
    expect(await latestCheckpoint(join(dir, "not-yet"))).toBeNull();
    await file("ckpt_000100.pt", "x", 5000);
    await file("ckpt_000200.pt", "x", 1000);
    expect((await latestCheckpoint(dir))?.name).toBe("ckpt_000200.pt");
  });
});

describe("checkpointInfo", () => {
  it("reads tensor count, dtypes, parameter count and metadata from a safetensors header", async () => {
    const path = await file(
      "model_000042.safetensors",
      safetensors(
        {
          "embed.weight": { dtype: "BF16", shape: [10, 4] },
          "head.weight": { dtype: "F32", shape: [4, 3] },
          "head.bias": { dtype: "F32", shape: [3] },
          step: { dtype: "I64", shape: [] },
          empty: { dtype: "U8", shape: [0, 5] },
        },
        { format: "pt", epoch: "3" },
      ),
    );
    const info = CheckpointInfo.parse(await checkpointInfo(path));
    expect(info).toMatchObject({
      path,
      format: "safetensors",
      step: 42,
      safetensors: {
        tensorCount: 5,
        dtypes: { BF16: 1, F32: 2, I64: 1, U8: 1 },
        parameterCount: 40 + 12 + 3 + 1 + 0,
        metadata: { format: "pt", epoch: "3" },
      },
    });
    expect(info.size).toBeGreaterThan(80 + 48 + 12 + 8);
    expect(info.safetensors?.headerBytes).toBeGreaterThan(0);
  });

  it("accepts a safetensors file without tensors or metadata", async () => {
    const info = await checkpointInfo(await file("empty.safetensors", safetensors({})));
    expect(info.safetensors).toMatchObject({ tensorCount: 0, parameterCount: 0, metadata: null, dtypes: {} });
  });

  const good = safetensors({ w: { dtype: "F32", shape: [4, 4] } });
  const corruptCases: Array<[string, Buffer, RegExp]> = [
    ["shorter than the length prefix", Buffer.from([1, 2, 3]), /shorter than the 8-byte/],
    ["header longer than the file", rawSafetensors(1000n, Buffer.from("{}")), /claims 1000 bytes/],
    ["header over the size limit", rawSafetensors(1n << 40n), /exceeds the .*limit/],
    ["header length near u64 max", rawSafetensors(0xffff_ffff_ffff_fff0n), /exceeds/],
    ["header not JSON", withHeader("{nope"), /not UTF-8 JSON/],
    ["header not UTF-8", rawSafetensors(6n, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d, 0x20])), /not UTF-8/],
    ["header a JSON array", withHeader("[]"), /Invalid safetensors header/],
    ["negative shape", withHeader('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'), /w\.shape/],
    [
      "metadata that is not strings",
      withHeader('{"__metadata__":{"a":1}}'),
      /Invalid safetensors header.*a:/,
    ],
    ["truncated tensor data", good.subarray(0, good.length - 10), /truncated/],
    ["bytes after the last tensor", Buffer.concat([good, Buffer.alloc(4)]), /belong to none/],
  ];
  it.each(corruptCases)(
    "refuses a safetensors file with %s as checkpoint_corrupt",
    async (_, content, message) => {
      const error = await rejection(checkpointInfo(await file("bad.safetensors", content)));
      expect(error.code).toBe("checkpoint_corrupt");
      expect(error.message).toMatch(message);
      expect(error.hint).toBeTruthy();
    },
  );

  it("refuses offsets that do not match dtype and shape", async () => {
    const content = withHeader('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}', Buffer.alloc(8));
    const error = await rejection(checkpointInfo(await file("short.safetensors", content)));
    expect(error.code).toBe("checkpoint_corrupt");
    expect(error.message).toMatch(/needs 16 bytes but its offsets span 8/);
  });

  it("reports torch files by magic bytes without unpickling", async () => {
    const zip = await file("ckpt_7.pt", Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(60)]));
    expect(await checkpointInfo(zip)).toMatchObject({ format: "torch (zip)", safetensors: null, step: 7 });
    // Legacy torch.save: a pickle starting with PROTO 2. Bytes that would run code if unpickled are fine: we never do.
    const legacy = await file("old.pth", Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]));
    expect(await checkpointInfo(legacy)).toMatchObject({ format: "torch", safetensors: null, step: null });
  });

  it("names missing, empty, directory and unknown inputs", async () => {
    expect((await rejection(checkpointInfo(join(dir, "none.pt")))).code).toBe("checkpoint_not_found");
    expect((await rejection(checkpointInfo(await file("empty.pt", "")))).code).toBe("checkpoint_corrupt");
    await mkdir(join(dir, "d.pt"));
    expect((await rejection(checkpointInfo(join(dir, "d.pt")))).code).toBe("checkpoint_not_a_file");
    expect((await rejection(checkpointInfo(await file("notes.txt")))).code).toBe("checkpoint_unknown_format");
  });

  // Debian's python3-torch is optional on developer machines; without it there is no
  // real torch.save output to read, and the magic-byte case above still covers the logic.
  const hasTorch = spawnSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" }).status === 0;
  it.skipIf(!hasTorch)("lists and identifies a real torch.save checkpoint as torch (zip)", async () => {
    const path = join(dir, "ckpt_000050.pt");
    const script = "import sys, torch; torch.save({'w': torch.zeros(3, 3), 'step': 50}, sys.argv[1])";
    const run = spawnSync("/usr/bin/python3", ["-c", script, path], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect((await listCheckpoints(dir)).map((c) => [c.name, c.step])).toEqual([["ckpt_000050.pt", 50]]);
    expect(await checkpointInfo(path)).toMatchObject({ format: "torch (zip)", step: 50, safetensors: null });
  });
});

describe("cleanupCheckpoints", () => {
  async function fiveCheckpoints(): Promise<void> {
    for (const step of [100, 200, 300, 400, 500]) await file(`ckpt_${step}.pt`, "x".repeat(step / 100), step);
    await file("config.json", "{}");
    await file("train.log", "log");
  }

  it("deletes nothing on a dry run and reports what it would delete", async () => {
    await fiveCheckpoints();
    const before = (await readdir(dir)).sort();
    const result = await cleanupCheckpoints(dir, { keepLastN: 2, dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(result.kept.map((c) => c.name)).toEqual(["ckpt_500.pt", "ckpt_400.pt"]);
    expect(result.deleted.map((c) => c.name)).toEqual(["ckpt_300.pt", "ckpt_200.pt", "ckpt_100.pt"]);
    expect(result.freedBytes).toBe(3 + 2 + 1);
    expect((await readdir(dir)).sort()).toEqual(before);
  });

  it("keeps the newest N and deletes only older checkpoint files", async () => {
    await fiveCheckpoints();
    const result = await cleanupCheckpoints(dir, { keepLastN: 2 });
    expect(result.deleted.map((c) => c.name)).toEqual(["ckpt_300.pt", "ckpt_200.pt", "ckpt_100.pt"]);
    expect(result.freedBytes).toBe(6);
    expect((await readdir(dir)).sort()).toEqual(["ckpt_400.pt", "ckpt_500.pt", "config.json", "train.log"]);
    const again = await cleanupCheckpoints(dir, { keepLastN: 2 });
    expect(again.deleted).toEqual([]);
  });

  it("refuses keepLastN below 1 and deletes nothing", async () => {
    await fiveCheckpoints();
    for (const keepLastN of [0, -1, 1.5, Number.NaN]) {
      const error = await rejection(cleanupCheckpoints(dir, { keepLastN }));
      expect(error.code).toBe("checkpoint_keep_invalid");
      expect(error.hint).toMatch(/--keep-last-n 1/);
    }
    expect(await readdir(dir)).toHaveLength(7);
  });

  it("never follows symlinks out of the directory", async () => {
    const outside = await mkdtemp(join(tmpdir(), "runctl-ckpt-outside-"));
    roots.push(outside);
    await writeFile(join(outside, "ckpt_1.pt"), "precious");
    await mkdir(join(outside, "nested"));
    await writeFile(join(outside, "nested", "ckpt_2.pt"), "precious");
    await fiveCheckpoints();
    await symlink(join(outside, "ckpt_1.pt"), join(dir, "ckpt_0.pt"));
    await symlink(join(outside, "nested"), join(dir, "old-run"));
    const result = await cleanupCheckpoints(dir, { keepLastN: 1 });
    expect(result.deleted).toHaveLength(4);
    expect(existsSync(join(outside, "ckpt_1.pt"))).toBe(true);
    expect(existsSync(join(outside, "nested", "ckpt_2.pt"))).toBe(true);
    expect(existsSync(join(dir, "ckpt_0.pt"))).toBe(true);
  });

  it("treats a checkpoint subdirectory as one checkpoint", async () => {
    for (const step of [500, 1000, 1500]) {
      await file(`checkpoint-${step}/model.safetensors`, safetensors({}), step);
      await file(`checkpoint-${step}/optimizer.pt`, "opt", step);
      await file(`checkpoint-${step}/trainer_state.json`, "{}", step);
    }
    const result = await cleanupCheckpoints(dir, { keepLastN: 2 });
    expect(result.kept.map((c) => c.name).sort()).toEqual([
      "checkpoint-1000/model.safetensors",
      "checkpoint-1000/optimizer.pt",
      "checkpoint-1500/model.safetensors",
      "checkpoint-1500/optimizer.pt",
    ]);
    expect(result.deleted.map((c) => c.name).sort()).toEqual([
      "checkpoint-500/model.safetensors",
      "checkpoint-500/optimizer.pt",
    ]);
    expect(await readdir(join(dir, "checkpoint-500"))).toEqual(["trainer_state.json"]);
  });

  it("asks confirm with the plan, deletes nothing when declined, and skips files changed meanwhile", async () => {
    await fiveCheckpoints();
    const declined = await cleanupCheckpoints(dir, { keepLastN: 3, confirm: async () => false });
    expect(declined).toMatchObject({ cancelled: true, deleted: [], freedBytes: 0 });
    expect(await readdir(dir)).toHaveLength(7);

    const result = await cleanupCheckpoints(dir, {
      keepLastN: 3,
      confirm: async (plan) => {
        expect(plan.delete.map((c) => c.name)).toEqual(["ckpt_200.pt", "ckpt_100.pt"]);
        expect(plan.bytes).toBe(3);
        // A run saves over a planned file while the question is open.
        await writeFile(join(dir, "ckpt_100.pt"), "rewritten");
        return true;
      },
    });
    expect(result.deleted.map((c) => c.name)).toEqual(["ckpt_200.pt"]);
    expect(result.skipped).toEqual([
      { path: join(dir, "ckpt_100.pt"), reason: expect.stringMatching(/modified/) },
    ]);
    expect(existsSync(join(dir, "ckpt_100.pt"))).toBe(true);
  });

  it("does not ask when there is nothing to delete", async () => {
    await file("ckpt_1.pt");
    const result = await cleanupCheckpoints(dir, {
      keepLastN: 5,
      confirm: () => Promise.reject(new Error("must not be asked")),
    });
    expect(result.deleted).toEqual([]);
  });
});

describe("resolveCheckpointDir", () => {
  it("prefers the named directory, then local.checkpoint_dir under the project root, then cwd", () => {
    expect(resolveCheckpointDir({ dir: "x", configDir: "y", projectRoot: "/p", cwd: "/c" })).toBe("/c/x");
    expect(resolveCheckpointDir({ configDir: "y", projectRoot: "/p", cwd: "/c" })).toBe("/p/y");
    expect(resolveCheckpointDir({ configDir: "/abs", projectRoot: "/p", cwd: "/c" })).toBe("/abs");
    expect(resolveCheckpointDir({ cwd: "/c" })).toBe("/c/checkpoints");
  });
});
