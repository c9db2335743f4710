import {
  chmod,
  cp,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as tar from "tar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BundleInfoSchema,
  buildBundle,
  bundleManifest,
  selectFiles,
  writeArchive,
} from "../src/bundle/mod.ts";
import { UserError } from "../src/errors.ts";

let base: string;
let tree: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), "runctl-bundle-build-"));
  tree = path.join(base, "project");
  const files: Record<string, string> = {
    ".gitignore": "*.log\n",
    ".runctlignore": "scratch/\n",
    "train.py": "print('train')\n",
    "run.sh": "#!/bin/sh\n",
    "src/model.py": "class Model: ...\n",
    "src/.gitignore": "generated/\n",
    "src/generated/big.py": "x = 1\n",
    "src/debug.log": "noise\n",
    "scratch/notes.md": "notes\n",
    "node_modules/x/index.js": "module.exports = 1\n",
    "weights.pt": "not really weights\n",
    "data/private.csv": "secret\n",
  };
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
    await writeFile(path.join(tree, rel), content);
  }
  await chmod(path.join(tree, "run.sh"), 0o755);
  await symlink("src/model.py", path.join(tree, "model-link.py"));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const KEPT = [
  ".gitignore",
  ".runctlignore",
  "model-link.py",
  "run.sh",
  "src/.gitignore",
  "src/model.py",
  "train.py",
];

async function archiveListing(
  archive: string,
): Promise<{ path: string; type: string; mode: number | undefined }[]> {
  const out: { path: string; type: string; mode: number | undefined }[] = [];
  await tar.list({
    file: archive,
    onReadEntry: (e) => out.push({ path: e.path, type: e.type, mode: e.mode }),
  });
  return out;
}

describe("buildBundle", () => {
  it("leaves ignored files out of both the manifest and the archive", async () => {
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache"), extraExcludes: ["data/"] });
    BundleInfoSchema.parse(info);
    expect(info.files.map((f) => f.path)).toEqual(KEPT);
    const listing = await archiveListing(info.archivePath);
    expect(listing.map((e) => e.path)).toEqual(KEPT);
    expect(listing.find((e) => e.path === "model-link.py")?.type).toBe("SymbolicLink");
    expect(listing.find((e) => e.path === "run.sh")?.mode).toBe(0o755);
    expect(listing.find((e) => e.path === "train.py")?.mode).toBe(0o644);
    expect(info.fileCount).toBe(KEPT.length);
    expect(info.cached).toBe(false);
    expect(info.archiveBytes).toBe((await stat(info.archivePath)).size);
  });

  it("produces byte-identical archives from two builds and from a copy with other modes and mtimes", async () => {
    const one = await buildBundle(tree, { cacheDir: path.join(base, "cache-1") });
    const two = await buildBundle(tree, { cacheDir: path.join(base, "cache-2") });
    const copy = path.join(base, "elsewhere", "copy");
    await cp(tree, copy, { recursive: true, verbatimSymlinks: true, preserveTimestamps: false });
    await chmod(path.join(copy, "run.sh"), 0o700);
    await chmod(path.join(copy, "train.py"), 0o664);
    const three = await buildBundle(copy, { cacheDir: path.join(base, "cache-3") });

    const bytes = await readFile(one.archivePath);
    expect(two.key).toBe(one.key);
    expect(three.key).toBe(one.key);
    expect((await readFile(two.archivePath)).equals(bytes)).toBe(true);
    expect((await readFile(three.archivePath)).equals(bytes)).toBe(true);
    expect(three.archiveSha256).toBe(one.archiveSha256);
    // gzip header: magic, no embedded mtime (bytes 4-7), OS byte "unknown" rather than the build host's.
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    expect(bytes.readUInt32LE(4)).toBe(0);
    expect(bytes[9]).toBe(0xff);
  });

  it("packs hard-linked files as ordinary files", async () => {
    await link(path.join(tree, "train.py"), path.join(tree, "train-copy.py"));
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    const listing = await archiveListing(info.archivePath);
    expect(listing.filter((e) => e.path.startsWith("train")).map((e) => [e.path, e.type])).toEqual([
      ["train-copy.py", "File"],
      ["train.py", "File"],
    ]);
  });

  it("returns a cached archive without packing again", async () => {
    const cacheDir = path.join(base, "cache");
    const first = await buildBundle(tree, { cacheDir });
    const before = await stat(first.archivePath);
    const second = await buildBundle(tree, { cacheDir });
    const after = await stat(second.archivePath);
    expect(second.cached).toBe(true);
    expect(second.key).toBe(first.key);
    expect(second.archivePath).toBe(first.archivePath);
    expect(second.archiveSha256).toBe(first.archiveSha256);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    // Only the archive and its record; no temporaries left behind.
    expect((await readdir(cacheDir)).sort()).toEqual([`${first.key}.json`, `${first.key}.tar.gz`]);
  });

  it("recovers a lost or corrupt cache record from the archive itself", async () => {
    const cacheDir = path.join(base, "cache");
    const first = await buildBundle(tree, { cacheDir });
    await writeFile(path.join(cacheDir, `${first.key}.json`), "{not json");
    const second = await buildBundle(tree, { cacheDir });
    expect(second.cached).toBe(true);
    expect(second.archiveSha256).toBe(first.archiveSha256);
  });

  it("keeps a cache directory inside the project out of the bundle", async () => {
    const cacheDir = path.join(tree, "bundles");
    const first = await buildBundle(tree, { cacheDir });
    const second = await buildBundle(tree, { cacheDir });
    expect(second.key).toBe(first.key);
    expect(second.files.some((f) => f.path.startsWith("bundles/"))).toBe(false);
  });

  it("warns above the size threshold and names the largest files", async () => {
    await writeFile(path.join(tree, "big.bin"), Buffer.alloc(4096, 1));
    await writeFile(path.join(tree, "medium.bin"), Buffer.alloc(2048, 2));
    await symlink("/etc/passwd", path.join(tree, "abs-link"));
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache"), warnBytes: 1024 });
    expect(info.largest.slice(0, 2)).toEqual([
      { path: "big.bin", size: 4096 },
      { path: "medium.bin", size: 2048 },
    ]);
    expect(info.largest.length).toBeLessThanOrEqual(10);
    expect(info.warnings.some((w) => w.includes("big.bin") && w.includes("medium.bin"))).toBe(true);
    expect(info.skipped).toEqual([{ path: "abs-link", reason: "symlink_absolute" }]);
    expect(info.warnings.some((w) => w.includes("abs-link"))).toBe(true);

    const quiet = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    expect(quiet.warnings.some((w) => w.includes("big.bin"))).toBe(false);
  });

  it("refuses to build an empty bundle", async () => {
    await writeFile(path.join(tree, ".runctlignore"), "*\n");
    const error = await buildBundle(tree, { cacheDir: path.join(base, "cache") }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect(error).toMatchObject({ code: "bundle_empty" });
  });

  it("refuses to pack files that no longer match the manifest", async () => {
    const { files } = await selectFiles(tree);
    const manifest = await bundleManifest(files);
    await writeFile(path.join(tree, "train.py"), "print('edited')\n");
    const dest = path.join(base, "out.tar.gz");
    const error = await writeArchive(tree, manifest.entries, dest).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "bundle_changed_during_build", details: { path: "train.py" } });
  });

  it("reports at most ten largest files", async () => {
    for (let i = 0; i < 12; i++) await writeFile(path.join(tree, `f${i}.bin`), Buffer.alloc(100 + i));
    const info = await buildBundle(tree, { cacheDir: path.join(base, "cache") });
    expect(info.largest).toHaveLength(10);
    expect(info.largest[0]).toEqual({ path: "f11.bin", size: 111 });
  });
});
