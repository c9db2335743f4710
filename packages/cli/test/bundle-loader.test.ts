// The fast path's bundle loader (dist/bundle-loader.js, as bin/run.js loads it): a real V8 code
// cache, written after a load that had none, used by the next load, replaced when V8 refuses it.
// Each load is a Node process of its own, as each `runctl local` is: within one process V8
// compiles a script once and would not look at the cache again.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, expect, it } from "vitest";
import { codeCacheDir } from "../src/bundle-loader.ts";

const LOADER = fileURLToPath(new URL("../dist/bundle-loader.js", import.meta.url));

/** Loads `file` in a new Node process, runs it, saves the cache: what the load saw and the run returned. */
function load(file: string, env: NodeJS.ProcessEnv): { cache: string; result: unknown } {
  const script = `const { loadBundle } = await import(${JSON.stringify(LOADER)});
const loaded = loadBundle(${JSON.stringify(file)}, process.env);
const result = await loaded.bundle.run(["local"], "/");
loaded.saveCache();
process.stdout.write(JSON.stringify({ cache: loaded.cache, result }));`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8" });
  if (child.status !== 0) throw new Error(`the load failed: ${child.stderr}`);
  return JSON.parse(child.stdout);
}

let dir: string;
let env: NodeJS.ProcessEnv;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "runctl-bundle-loader-"));
  env = { XDG_CACHE_HOME: join(dir, "cache") };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A bundle as scripts/bundle-local.mjs writes one: a CommonJS body that may read import.meta.url. */
function writeBundle(name: string, answer: string): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `"use strict";const { basename } = require("node:path");
module.exports.run = async (argv) => argv[0] === "local" && ${JSON.stringify(answer)} + " " + basename(new URL(__runctlBundleUrl).pathname);`,
  );
  return file;
}

const cacheFiles = () => readdirSync(codeCacheDir(env) as string);

it("writes a cache after a load without one, and the next load uses it", () => {
  const file = writeBundle("local.bundle.cjs", "yes");
  expect(load(file, env)).toEqual({ cache: "missing", result: "yes local.bundle.cjs" });
  expect(cacheFiles()).toHaveLength(1);
  expect(load(file, env)).toEqual({ cache: "used", result: "yes local.bundle.cjs" });
});

it("replaces a cache V8 refuses, and keeps one file: another build's cache is removed", () => {
  const file = writeBundle("local.bundle.cjs", "one");
  load(file, env);
  const [name] = cacheFiles();
  writeFileSync(join(codeCacheDir(env) as string, name as string), "not a code cache");
  expect(load(file, env)).toEqual({ cache: "rejected", result: "one local.bundle.cjs" });
  expect(load(file, env).cache).toBe("used");

  // A new build (other content): its own cache, the old one goes.
  writeBundle("local.bundle.cjs", "two");
  expect(load(file, env)).toEqual({ cache: "missing", result: "two local.bundle.cjs" });
  expect(cacheFiles()).toHaveLength(1);
  expect(cacheFiles()[0]).not.toBe(name);
});

it("RUNCTL_NO_CODE_CACHE, or no place for a cache: loads without one and writes nothing", () => {
  const file = writeBundle("local.bundle.cjs", "off");
  expect(load(file, { ...env, RUNCTL_NO_CODE_CACHE: "1" })).toEqual({
    cache: "off",
    result: "off local.bundle.cjs",
  });
  expect(existsSync(codeCacheDir(env) as string)).toBe(false);

  // The cache directory cannot be made (a file is in the way): the run goes on.
  mkdirSync(join(dir, "cache"));
  writeFileSync(join(dir, "cache", "runctl"), "");
  expect(load(file, env)).toEqual({ cache: "missing", result: "off local.bundle.cjs" });
});
