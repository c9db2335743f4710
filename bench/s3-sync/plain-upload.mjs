#!/usr/bin/env node
// The baseline of bench.mjs: the same files uploaded with the same SDK and client settings as
// runctl (createS3Client from @runctl/s3: checksums WHEN_REQUIRED, path-style), by a plain loop:
// PutObject streamed from disk up to the part size, lib-storage multipart above it, the same
// number of files (and parts per file) in flight. No hashing, no listing, no comparison.
// Usage: node plain-upload.mjs DIR s3://BUCKET/PREFIX CONCURRENCY PART_SIZE_MB
// A second mode lists a prefix, for the no-change re-sync comparison:
//        node plain-upload.mjs --list s3://BUCKET/PREFIX
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const s3Package = join(root, "packages", "s3");
const requireFromS3 = createRequire(join(s3Package, "package.json"));
const { createS3Client } = await import(pathToFileURL(join(s3Package, "dist", "mod.js")).href);
const { ListObjectsV2Command, PutObjectCommand } = await import(
  pathToFileURL(requireFromS3.resolve("@aws-sdk/client-s3")).href
);
const { Upload } = await import(pathToFileURL(requireFromS3.resolve("@aws-sdk/lib-storage")).href);

function location(url) {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  return { bucket: m[1], prefix: m[2] === "" || m[2].endsWith("/") ? m[2] : `${m[2]}/` };
}

// The endpoint comes from AWS_ENDPOINT_URL_S3, which the SDK reads itself, as for runctl.
const client = createS3Client({
  region: "us-east-1",
  forcePathStyle: true,
  partSizeBytes: 0,
  concurrency: 1,
});

if (process.argv[2] === "--list") {
  const { bucket, prefix } = location(process.argv[3]);
  let token;
  let count = 0;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    count += page.Contents?.length ?? 0;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  process.stdout.write(`${JSON.stringify({ objects: count })}\n`);
  process.exit(0);
}

const [dir, url, concurrencyText, partMbText] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
const partSize = Number(partMbText) * 1024 * 1024;
const { bucket, prefix } = location(url);

const files = [];
async function walk(d) {
  for (const entry of await readdir(d, { withFileTypes: true })) {
    const full = join(d, entry.name);
    if (entry.isDirectory()) await walk(full);
    else if (entry.isFile())
      files.push({
        full,
        key: prefix + relative(dir, full).split(sep).join("/"),
        size: (await stat(full)).size,
      });
  }
}
await walk(dir);
// Largest first, as runctl orders them.
files.sort((a, b) => b.size - a.size);

let next = 0;
let bytes = 0;
async function worker() {
  while (next < files.length) {
    const f = files[next++];
    if (f.size <= partSize) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: f.key,
          Body: createReadStream(f.full),
          ContentLength: f.size,
        }),
      );
    } else {
      await new Upload({
        client,
        queueSize: Math.max(1, Math.min(4, concurrency)),
        partSize,
        params: { Bucket: bucket, Key: f.key, Body: createReadStream(f.full), ContentLength: f.size },
      }).done();
    }
    bytes += f.size;
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
process.stdout.write(`${JSON.stringify({ files: files.length, bytes })}\n`);
