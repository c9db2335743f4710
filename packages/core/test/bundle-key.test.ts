import { createHash } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BundleEntrySchema, bundleManifest, canonicalManifest, selectFiles } from "../src/bundle/mod.ts";

let base: string;
let tree: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), "runctl-bundle-key-"));
  tree = path.join(base, "project");
  await mkdir(path.join(tree, "src", "pkg"), { recursive: true });
  await writeFile(path.join(tree, "train.py"), "print('train')\n");
  await writeFile(path.join(tree, "run.sh"), "#!/bin/sh\nexec python train.py\n");
  await chmod(path.join(tree, "run.sh"), 0o755);
  await writeFile(path.join(tree, "src", "pkg", "model.py"), "class Model: ...\n");
  await writeFile(path.join(tree, "src", "pkg", "zeta.txt"), "z\n");
  await writeFile(path.join(tree, "src", "a.txt"), "a\n");
  await symlink("pkg/model.py", path.join(tree, "src", "model.py"));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function keyOf(root: string): Promise<string> {
  const { files } = await selectFiles(root);
  return (await bundleManifest(files)).key;
}

async function everyFile(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe("bundle key", () => {
  it("is the same for the same tree twice", async () => {
    const first = await keyOf(tree);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await keyOf(tree)).toBe(first);
  });

  it("does not depend on where the checkout lives", async () => {
    const copy = path.join(base, "elsewhere", "deeper", "copy");
    await cp(tree, copy, { recursive: true, verbatimSymlinks: true });
    expect(await keyOf(copy)).toBe(await keyOf(tree));
  });

  it("does not depend on mtimes", async () => {
    const before = await keyOf(tree);
    const when = new Date("2031-05-06T07:08:09Z");
    for (const file of await everyFile(tree)) await utimes(file, when, when);
    expect(await keyOf(tree)).toBe(before);
  });

  it("does not depend on permission bits beyond executable or not", async () => {
    const before = await keyOf(tree);
    await chmod(path.join(tree, "train.py"), 0o600);
    await chmod(path.join(tree, "run.sh"), 0o700);
    expect(await keyOf(tree)).toBe(before);
  });

  it("changes when one byte changes", async () => {
    const before = await keyOf(tree);
    await writeFile(path.join(tree, "src", "pkg", "zeta.txt"), "y\n");
    expect(await keyOf(tree)).not.toBe(before);
  });

  it("changes when a file becomes executable or a link target changes", async () => {
    const before = await keyOf(tree);
    await chmod(path.join(tree, "train.py"), 0o755);
    const executable = await keyOf(tree);
    expect(executable).not.toBe(before);
    await rm(path.join(tree, "src", "model.py"));
    await symlink("a.txt", path.join(tree, "src", "model.py"));
    expect(await keyOf(tree)).not.toBe(executable);
  });

  it("describes each entry with a normalised mode and its content hash", async () => {
    const { files } = await selectFiles(tree);
    const { entries, key } = await bundleManifest(files);
    for (const e of entries) BundleEntrySchema.parse(e);
    expect(entries.map((e) => e.path)).toEqual([
      "run.sh",
      "src/a.txt",
      "src/model.py",
      "src/pkg/model.py",
      "src/pkg/zeta.txt",
      "train.py",
    ]);
    expect(entries[0]).toEqual({
      type: "file",
      path: "run.sh",
      mode: 0o755,
      size: Buffer.byteLength("#!/bin/sh\nexec python train.py\n"),
      sha256: createHash("sha256").update("#!/bin/sh\nexec python train.py\n").digest("hex"),
    });
    expect(entries[2]).toEqual({ type: "symlink", path: "src/model.py", target: "pkg/model.py" });
    expect(key).toBe(createHash("sha256").update(canonicalManifest(entries)).digest("hex"));
    // Order of the input must not matter.
    expect((await bundleManifest([...files].reverse())).key).toBe(key);
  });
});
