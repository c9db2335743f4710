import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { selectFiles } from "../src/bundle/mod.ts";
import { scopeGitignoreLine } from "../src/bundle/select.ts";
import { UserError } from "../src/errors.ts";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "runctl-bundle-select-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(rel: string, content = `content of ${rel}\n`): Promise<void> {
  const file = path.join(dir, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
}

async function selectedPaths(extraExcludes?: string[]): Promise<string[]> {
  const { files } = await selectFiles(dir, { extraExcludes });
  return files.map((f) => f.path);
}

describe("selectFiles", () => {
  it("applies default excludes at any depth without touching ordinary files", async () => {
    for (const rel of [
      "train.py",
      "model.safetensors",
      ".git/config",
      ".venv/bin/python",
      "venv/lib/x.py",
      "src/__pycache__/a.cpython-312.pyc",
      "src/stale.pyc",
      "web/node_modules/left-pad/index.js",
      "weights.pt",
      "weights.pth",
      "sub/last.ckpt",
      "checkpoints/step1/model.bin",
      "runs/r1/metrics.jsonl",
      ".runctl/state.json",
      "wandb/run-1/files.txt",
      "src/.DS_Store",
      ".hg/store",
      ".svn/entries",
      "src/model.py",
    ]) {
      await write(rel);
    }
    expect(await selectedPaths()).toEqual(["model.safetensors", "src/model.py", "train.py"]);
  });

  it("applies a nested .gitignore relative to its own directory", async () => {
    await write(".gitignore", "*.log\n/build/\n");
    await write("a/.gitignore", "/local.txt\ndata/\n!keep.log\n");
    for (const rel of [
      "x.log",
      "build/out.o",
      "a/build/out.o",
      "a/keep.log",
      "a/other.log",
      "a/local.txt",
      "a/b/local.txt",
      "a/data/big.bin",
      "a/b/data/big.bin",
      "local.txt",
      "data/root-data.csv",
    ]) {
      await write(rel);
    }
    expect(await selectedPaths()).toEqual([
      ".gitignore",
      "a/.gitignore",
      "a/b/local.txt",
      "a/build/out.o",
      "a/keep.log",
      "data/root-data.csv",
      "local.txt",
    ]);
  });

  it("lets .runctlignore exclude more and re-include what .gitignore or the defaults left out", async () => {
    await write(".gitignore", "data/\n*.csv\n");
    await write(".runctlignore", "!data/\n!data/labels.csv\nscratch/\n!runs/\n");
    for (const rel of [
      "data/labels.csv",
      "data/raw.csv",
      "data/readme.md",
      "scratch/notes.md",
      "runs/keep.py",
    ]) {
      await write(rel);
    }
    expect(await selectedPaths()).toEqual([
      ".gitignore",
      ".runctlignore",
      "data/labels.csv",
      "data/readme.md",
      "runs/keep.py",
    ]);
  });

  it("keeps the defaults out even when .gitignore re-includes everything", async () => {
    await write(".gitignore", "*\n!*/\n!*.py\n");
    await write(".venv/lib/site.py");
    await write("pkg/mod.py");
    await write("pkg/notes.txt");
    expect(await selectedPaths()).toEqual(["pkg/mod.py"]);
  });

  it("applies extra excludes from config", async () => {
    await write("train.py");
    await write("data/big.bin");
    await write("notes/todo.md");
    await write("src/gen/out.py");
    await write("lib/src/gen/kept.py");
    expect(await selectedPaths(["data/", "*.md", "/src/gen/"])).toEqual(["lib/src/gen/kept.py", "train.py"]);
  });

  it("keeps symlinks that stay inside and skips ones that escape, are absolute or are special files", async () => {
    await write("lib/util.py");
    await mkdir(path.join(dir, "node_modules"), { recursive: true });
    await symlink("../lib/util.py", path.join(dir, "node_modules", "escape-if-entered"));
    await symlink("/etc", path.join(dir, "node_modules", "abs-if-entered"));
    await symlink("lib/util.py", path.join(dir, "inside"));
    await symlink("lib", path.join(dir, "libdir"));
    await symlink("../outside", path.join(dir, "escape"));
    await symlink(path.join(dir, "lib", "util.py"), path.join(dir, "absolute"));
    await symlink("loop", path.join(dir, "loop"));
    const socketPath = path.join(dir, "daemon.sock");
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const result = await selectFiles(dir);
      expect(result.files.map((f) => [f.path, f.type])).toEqual([
        ["inside", "symlink"],
        ["lib/util.py", "file"],
        ["libdir", "symlink"],
      ]);
      expect(result.files.find((f) => f.path === "libdir")).toMatchObject({ target: "lib" });
      expect(result.skipped).toEqual([
        { path: "absolute", reason: "symlink_absolute" },
        { path: "daemon.sock", reason: "special_file" },
        { path: "escape", reason: "symlink_outside_root" },
        { path: "loop", reason: "symlink_loop" },
      ]);
      expect(result.totalBytes).toBe(Buffer.byteLength("content of lib/util.py\n"));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("refuses a missing root with a hint", async () => {
    const missing = path.join(dir, "nope");
    const error = await selectFiles(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "bundle_root_missing" });
    expect((error as UserError).hint).toBeTruthy();
  });
});

describe("scopeGitignoreLine", () => {
  it("anchors patterns with an inner slash and floats the rest under the directory", () => {
    expect(scopeGitignoreLine("a/b", "foo")).toBe("a/b/**/foo");
    expect(scopeGitignoreLine("a/b", "/foo")).toBe("a/b/foo");
    expect(scopeGitignoreLine("a/b", "x/y")).toBe("a/b/x/y");
    expect(scopeGitignoreLine("a/b", "dir/")).toBe("a/b/**/dir/");
    expect(scopeGitignoreLine("a/b", "!keep  ")).toBe("!a/b/**/keep");
    expect(scopeGitignoreLine("a[1]", "*.log")).toBe("a\\[1\\]/**/*.log");
    expect(scopeGitignoreLine("a", "# comment")).toBeUndefined();
    expect(scopeGitignoreLine("a", "   ")).toBeUndefined();
  });
});
