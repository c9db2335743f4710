import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { extractListed } from "../src/bundle/extract.ts";
import { buildBundle, bundleManifest, extractBundle, selectFiles } from "../src/bundle/mod.ts";
import { UserError } from "../src/errors.ts";

let base: string;
/** Holds only the extraction target's parents; anything else appearing here escaped. */
let sandbox: string;
let archives: string;
let target: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), "runctl-bundle-extract-"));
  sandbox = path.join(base, "sandbox");
  archives = path.join(base, "archives");
  target = path.join(sandbox, "a", "target");
  await mkdir(sandbox, { recursive: true });
  await mkdir(archives, { recursive: true });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

interface RawEntry {
  name: string;
  /** ustar typeflag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" directory, "6" FIFO. */
  type: string;
  content?: string;
  linkname?: string;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

/** One ustar header block, written by hand so the test controls every hostile field. */
function ustarHeader(entry: RawEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(entry.name, 0, 100, "utf8");
  block.write(octal(entry.type === "5" ? 0o755 : 0o644, 8), 100, "ascii");
  block.write(octal(0, 8), 108, "ascii");
  block.write(octal(0, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(946684800, 12), 136, "ascii");
  block.write("        ", 148, "ascii");
  block.write(entry.type, 156, "ascii");
  if (entry.linkname !== undefined) block.write(entry.linkname, 157, 100, "utf8");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  if (entry.type === "3") {
    block.write(octal(1, 8), 329, "ascii");
    block.write(octal(3, 8), 337, "ascii");
  }
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return block;
}

async function writeTarball(name: string, entries: RawEntry[]): Promise<string> {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content ?? "");
    blocks.push(ustarHeader(entry, content.length));
    if (content.length > 0) {
      blocks.push(content, Buffer.alloc((512 - (content.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  const file = path.join(archives, `${name}.tar.gz`);
  await writeFile(file, gzipSync(Buffer.concat(blocks)));
  return file;
}

async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map((e) => e.split(path.sep).join("/")).sort();
}

async function expectRefused(archive: string): Promise<void> {
  const error = await extractBundle(archive, target).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(UserError);
  expect(error).toMatchObject({ code: "bundle_unsafe_entry" });
  expect((error as UserError).hint).toBeTruthy();
  // Refused before anything was written: not even the target exists.
  expect(await treeOf(sandbox)).toEqual([]);
  expect((await readdir(base)).sort()).toEqual(["archives", "sandbox"]);
}

describe("extractBundle refuses hostile archives", () => {
  it("refuses a '..' path", async () => {
    await expectRefused(
      await writeTarball("dotdot", [
        { name: "ok.txt", type: "0", content: "fine" },
        { name: "../evil", type: "0", content: "evil" },
      ]),
    );
    await expectRefused(
      await writeTarball("dotdot-deep", [{ name: "a/../../../evil", type: "0", content: "evil" }]),
    );
  });

  it("refuses an absolute path", async () => {
    const absolute = path.join(base, "abs-evil");
    await expectRefused(await writeTarball("absolute", [{ name: absolute, type: "0", content: "evil" }]));
  });

  it("refuses a symlink that escapes and a file written through it", async () => {
    await expectRefused(
      await writeTarball("symlink-escape", [
        { name: "link", type: "2", linkname: "../../outside" },
        { name: "link/x", type: "0", content: "evil" },
      ]),
    );
    await expectRefused(
      await writeTarball("symlink-escape-alone", [{ name: "sub/link", type: "2", linkname: "../../../.." }]),
    );
  });

  it("refuses a file written through a symlink even when the link stays inside", async () => {
    await expectRefused(
      await writeTarball("through-link", [
        { name: "dir/", type: "5" },
        { name: "alias", type: "2", linkname: "dir" },
        { name: "alias/x", type: "0", content: "x" },
      ]),
    );
  });

  it("refuses a chain of links that only escapes once followed", async () => {
    await expectRefused(
      await writeTarball("link-chain", [
        { name: "here", type: "2", linkname: "." },
        { name: "up", type: "2", linkname: "here/.." },
      ]),
    );
    await expectRefused(await writeTarball("link-loop", [{ name: "self", type: "2", linkname: "self/x" }]));
  });

  it("refuses hard links outside the archive's own files", async () => {
    await expectRefused(
      await writeTarball("hardlink-out", [{ name: "h", type: "1", linkname: "../../etc/passwd" }]),
    );
    await expectRefused(
      await writeTarball("hardlink-to-link", [
        { name: "sub/l", type: "2", linkname: "../x" },
        { name: "h", type: "1", linkname: "sub/l" },
      ]),
    );
  });

  it("refuses device files and FIFOs", async () => {
    await expectRefused(await writeTarball("chardev", [{ name: "null", type: "3" }]));
    await expectRefused(await writeTarball("fifo", [{ name: "pipe", type: "6" }]));
  });

  it("refuses the same path twice", async () => {
    await expectRefused(
      await writeTarball("duplicate", [
        { name: "a", type: "0", content: "one" },
        { name: "./a", type: "2", linkname: "b" },
      ]),
    );
  });

  it("stops extracting when the archive no longer matches the checked listing", async () => {
    const checked = [{ path: "ok.txt", type: "File" }];
    const swapped = await writeTarball("swapped", [
      { name: "ok.txt", type: "0", content: "fine" },
      { name: "link", type: "2", linkname: "../../../outside" },
      { name: "link/x", type: "0", content: "evil" },
    ]);
    await mkdir(target, { recursive: true });
    const error = await extractListed(swapped, target, checked).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "bundle_unsafe_entry", details: { entry: "link" } });
    expect(await treeOf(sandbox)).toEqual(["a", "a/target", "a/target/ok.txt"]);
    expect((await readdir(base)).sort()).toEqual(["archives", "sandbox"]);
  });

  it("reports a damaged archive as invalid, not unsafe", async () => {
    const file = path.join(archives, "garbage.tar.gz");
    await writeFile(file, gzipSync(Buffer.from("this is not a tar archive at all".repeat(40))));
    const error = await extractBundle(file, target).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "bundle_archive_invalid" });
    expect(await treeOf(sandbox)).toEqual([]);
  });
});

describe("extractBundle", () => {
  it("extracts a plain archive with inside links, hard links and directories", async () => {
    const archive = await writeTarball("benign", [
      { name: "pkg/", type: "5" },
      { name: "pkg/mod.py", type: "0", content: "x = 1\n" },
      { name: "pkg/alias.py", type: "2", linkname: "../pkg/mod.py" },
      { name: "copy.py", type: "1", linkname: "pkg/mod.py" },
    ]);
    expect(await extractBundle(archive, target)).toEqual({ fileCount: 3 });
    expect(await readlink(path.join(target, "pkg", "alias.py"))).toBe("../pkg/mod.py");
    expect(await readFile(path.join(target, "copy.py"), "utf8")).toBe("x = 1\n");
  });

  it("round-trips a built bundle: same files, contents, modes and key", async () => {
    const project = path.join(base, "project");
    await mkdir(path.join(project, "src", "deep", "er"), { recursive: true });
    await writeFile(path.join(project, "train.py"), "print('hi')\n");
    await writeFile(path.join(project, "run.sh"), "#!/bin/sh\n");
    await chmod(path.join(project, "run.sh"), 0o750);
    await writeFile(path.join(project, "src", "deep", "er", "data.bin"), Buffer.from([0, 1, 2, 255]));
    await writeFile(path.join(project, "src", "deep", "ignored.log"), "x");
    await writeFile(path.join(project, ".gitignore"), "*.log\n");
    await symlink("deep/er/data.bin", path.join(project, "src", "data.bin"));
    const info = await buildBundle(project, { cacheDir: path.join(base, "cache") });

    const result = await extractBundle(info.archivePath, target);
    expect(result.fileCount).toBe(info.fileCount);
    const extracted = await selectFiles(target);
    expect(extracted.files.map((f) => f.path)).toEqual(info.files.map((f) => f.path));
    expect((await bundleManifest(extracted.files)).key).toBe(info.key);
    expect((await lstat(path.join(target, "run.sh"))).mode & 0o777).toBe(0o755);
    expect((await lstat(path.join(target, "train.py"))).mode & 0o777).toBe(0o644);
    expect(await readlink(path.join(target, "src", "data.bin"))).toBe("deep/er/data.bin");
    expect([...(await readFile(path.join(target, "src", "data.bin")))]).toEqual([0, 1, 2, 255]);
  });

  it("refuses a non-empty target", async () => {
    const project = await mkdtemp(path.join(base, "p-"));
    await writeFile(path.join(project, "train.py"), "pass\n");
    const info = await buildBundle(project, { cacheDir: path.join(base, "cache") });
    await mkdir(target, { recursive: true });
    await writeFile(path.join(target, "existing"), "keep me");
    const error = await extractBundle(info.archivePath, target).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "bundle_target_not_empty" });
    expect(await readFile(path.join(target, "existing"), "utf8")).toBe("keep me");
  });
});
