// Core pieces against hostile input (the hardening issue): the JSON depth
// limit, JSONL lines too long or too deep, config keys that reach into
// Object.prototype, NATS prefixes with wildcards, and bundles of files that
// compress too well, are huge, or have names that are not UTF-8.
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildBundle, extractBundle } from "../src/bundle/mod.ts";
import {
  configSchemaWith,
  defaultConfig,
  envNameToKeyPath,
  getConfigValue,
  loadConfig,
  setConfigValue,
} from "../src/config/mod.ts";
import { ConfigError, UserError } from "../src/errors.ts";
import { readJsonl, readJsonlSync } from "../src/files/jsonl.ts";
import { MAX_JSONL_LINE_BYTES, parseJsonLenient } from "../src/internal_mod.ts";
import { assertJsonDepth, JSON_TOO_DEEP, jsonTextDepth, MAX_JSON_DEPTH } from "../src/json-depth.ts";

let base: string;
beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), "runctl-hardening-"));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** This process's peak resident set (VmHWM), in bytes. */
async function peakRssBytes(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

function nestedText(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("assertJsonDepth", () => {
  it("measures text without parsing, ignoring brackets inside strings", () => {
    expect(jsonTextDepth('{"a":[1,{"b":"[[[\\"{{"}]}')).toBe(3);
    expect(jsonTextDepth("12")).toBe(0);
    expect(jsonTextDepth(nestedText(100_000))).toBe(100_000);
    expect(jsonTextDepth(nestedText(100_000), 64)).toBe(65);
  });

  it("refuses text and values past the limit with json_too_deep naming what and the limit", () => {
    const text = caught(() => assertJsonDepth(nestedText(3000), MAX_JSON_DEPTH, "--config"));
    expect(text).toBeInstanceOf(UserError);
    expect(text).toMatchObject({ code: JSON_TOO_DEEP, details: { max_depth: 64 } });
    expect((text as Error).message).toBe(
      "--config is nested more than 64 levels deep (the limit for JSON in runctl)",
    );
    let value: unknown = {};
    for (let i = 0; i < 100_000; i++) value = { a: value };
    expect(caught(() => assertJsonDepth(value, MAX_JSON_DEPTH, "config"))).toMatchObject({
      code: JSON_TOO_DEEP,
    });
    expect(caught(() => assertJsonDepth(nestedText(64), MAX_JSON_DEPTH, "x"))).toBeUndefined();
    expect(caught(() => assertJsonDepth(nestedText(65), MAX_JSON_DEPTH, "x"))).toMatchObject({
      code: JSON_TOO_DEEP,
    });
  });
});

describe("lenient JSON of run files", () => {
  it("refuses text nested past the limit before parsing (meta.json, config.json)", () => {
    expect(caught(() => parseJsonLenient(`{"summary":${nestedText(5000)}}`))).toMatchObject({
      code: JSON_TOO_DEEP,
    });
    expect(parseJsonLenient('{"loss":NaN}')).toEqual({ loss: Number.NaN });
  });
});

describe("JSONL readers", () => {
  it("skip and report a line over the length cap, keeping the lines around it", async () => {
    const file = path.join(base, "metrics.jsonl");
    const big = `{"_idx":1,"blob":"${"x".repeat(3 * MAX_JSONL_LINE_BYTES)}"}`;
    await writeFile(file, `{"_idx":0}\n${big}\n{"_idx":2}\n${nestedText(5000)}\n{"_idx":3}\n`);
    for (const page of [await readJsonl(file), readJsonlSync(file)]) {
      expect(page.records).toEqual([{ _idx: 0 }, { _idx: 2 }, { _idx: 3 }]);
      expect(page.skipped).toBe(2);
      expect(page.skips).toEqual([
        { offset: 11, bytes: Buffer.byteLength(big), reason: "too_long" },
        { offset: 11 + big.length + 1 + 11, bytes: 10_000, reason: "too_deep" },
      ]);
      expect(page.offset).toBe((await readFile(file)).length);
    }
  });

  it("leaves an over-long torn last line unconsumed, then skips it once complete", async () => {
    const file = path.join(base, "metrics.jsonl");
    await writeFile(file, `{"_idx":0}\n{"blob":"${"x".repeat(2 * MAX_JSONL_LINE_BYTES)}`);
    const torn = await readJsonl(file);
    expect(torn).toMatchObject({ records: [{ _idx: 0 }], offset: 11, skipped: 0 });
    await writeFile(file, `"}\n{"_idx":1}\n`, { flag: "a" });
    const next = await readJsonl(file, { since: torn.offset });
    expect(next.records).toEqual([{ _idx: 1 }]);
    expect(next.skips).toMatchObject([{ offset: 11, reason: "too_long" }]);
  });
});

describe("config keys", () => {
  it("refuses __proto__, constructor and prototype in set, get and env, before walking anything", async () => {
    const file = path.join(base, "config.toml");
    await writeFile(file, "[nats]\n");
    for (const key of ["__proto__.polluted", "nats.constructor.x", "bundle.prototype"]) {
      const error = await setConfigValue({ file, key, value: "1" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect(error).toMatchObject({ code: "config_unsafe_key" });
    }
    expect(await readFile(file, "utf8")).toBe("[nats]\n");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(caught(() => getConfigValue(defaultConfig(), "__proto__.toString"))).toMatchObject({
      code: "config_unsafe_key",
    });
    const env = caught(() => envNameToKeyPath("RUNCTL_NATS_CONSTRUCTOR", new Set(["nats"])));
    expect(env).toBeInstanceOf(ConfigError);
    expect(env).toMatchObject({ code: "config_unsafe_key" });
    // Nothing leaked into other objects of the process: a normal load still validates.
    await expect(loadConfig({ cwd: base, env: {}, homedir: base })).resolves.toBeDefined();
  });

  it("refuses a NATS prefix that is not plain subject tokens in the schema (config validate)", () => {
    const schema = configSchemaWith({});
    for (const prefix of ["a.>.*", "a.*", "a..b", "a b", ">"]) {
      expect(schema.safeParse({ nats: { prefix } }).success).toBe(false);
    }
    expect(schema.safeParse({ nats: { prefix: "team-1.a_b" } }).success).toBe(true);
  });
});

describe("bundles of awkward files", () => {
  it("bundles and extracts an all-zero file that compresses past 1000:1", async () => {
    const tree = path.join(base, "zeros");
    await mkdir(tree);
    await writeFile(path.join(tree, "train.py"), "print(1)\n");
    await writeFile(path.join(tree, "zeros.bin"), Buffer.alloc(6 * 1024 * 1024));
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    expect(info.archiveBytes).toBeLessThan(64 * 1024);
    const out = path.join(base, "out");
    expect(await extractBundle(info.archivePath, out)).toEqual({ fileCount: 2 });
    expect((await readFile(path.join(out, "zeros.bin"))).equals(Buffer.alloc(6 * 1024 * 1024))).toBe(true);
  });

  it("leaves out a file whose name is not UTF-8, saying why, and bundles the rest", async () => {
    const tree = path.join(base, "names");
    await mkdir(tree);
    await writeFile(path.join(tree, "train.py"), "print(1)\n");
    await writeFile(Buffer.from(path.join(tree, "bad\xff.txt"), "latin1"), "x");
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    expect(info.files.map((f) => f.path)).toEqual(["train.py"]);
    expect(info.skipped).toEqual([{ path: "bad\\xff.txt", reason: "name_not_utf8" }]);
    expect(info.warnings.join(" ")).toContain("not valid UTF-8");
  });

  it("packs a large sparse file as a stream", async () => {
    const tree = path.join(base, "sparse");
    await mkdir(tree);
    await writeFile(path.join(tree, "train.py"), "print(1)\n");
    await writeFile(path.join(tree, "sparse.bin"), "");
    await truncate(path.join(tree, "sparse.bin"), 256 * 1024 * 1024);
    const before = await peakRssBytes();
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    expect(info.totalBytes).toBe(256 * 1024 * 1024 + 9);
    // Generous: packing 256 MiB in pieces of 1 MiB; the old packer's peak grew with the file.
    expect((await peakRssBytes()) - before).toBeLessThan(128 * 1024 * 1024);
  });
});
