// requirements.txt of a Python run, and the cache that spares a Python start
// per run while nothing was installed into the interpreter's sys.path.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRequirements } from "../src/mod.ts";

const PYTHON = "/usr/bin/python3";
let root: string;
let savedCache: string | undefined;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-capture-"));
  savedCache = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = join(root, "cache");
});
afterAll(async () => {
  if (savedCache === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = savedCache;
  await rm(root, { recursive: true, force: true });
});

describe("writeRequirements", () => {
  it("lists the interpreter's distributions, from a cache while sys.path is unchanged", async () => {
    const first = join(root, "run1");
    await mkdir(first);
    expect(await writeRequirements(first, root, PYTHON)).toEqual({ requirements_file: "requirements.txt" });
    const listed = await readFile(join(first, "requirements.txt"), "utf8");
    const dir = join(root, "cache", "runctl", "requirements");
    const [file] = await readdir(dir);
    const cachePath = join(dir, file as string);
    const cache = JSON.parse(await readFile(cachePath, "utf8")) as {
      paths: { dir: string; mtimeMs: number }[];
      text: string;
    };
    expect(cache.text).toBe(listed);
    expect(cache.paths.length).toBeGreaterThan(0);

    // A hit: the cached text is used as it is (marked here to tell it from a fresh listing).
    await writeFile(cachePath, JSON.stringify({ ...cache, text: "from-cache==1\n" }));
    const second = join(root, "run2");
    await mkdir(second);
    await writeRequirements(second, root, PYTHON);
    expect(await readFile(join(second, "requirements.txt"), "utf8")).toBe("from-cache==1\n");

    // A directory on sys.path changed (something was installed): listed afresh.
    const stale = {
      ...cache,
      text: "from-cache==1\n",
      paths: cache.paths.map((p) => ({ ...p, mtimeMs: 1 })),
    };
    await writeFile(cachePath, JSON.stringify(stale));
    const third = join(root, "run3");
    await mkdir(third);
    await writeRequirements(third, root, PYTHON);
    expect(await readFile(join(third, "requirements.txt"), "utf8")).toBe(listed);
  });
});
