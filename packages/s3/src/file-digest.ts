/** Content hashes of local files, read once for both digests sync compares by. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";

export interface FileDigest {
  /** Hex; compared with an S3 ETag where that is a plain MD5 (single-part uploads). */
  md5?: string;
  /** Hex; recorded as `x-amz-meta-runctl-sha256` on every object runctl writes. */
  sha256: string;
}

/** Below this a file is read in one call: a stream's setup costs more than the bytes. */
const WHOLE_FILE_LIMIT = 4 * 1024 * 1024;

export async function digestFile(path: string, withMd5: boolean, size?: number): Promise<FileDigest> {
  const sha = createHash("sha256");
  const md5 = withMd5 ? createHash("md5") : undefined;
  if (size !== undefined && size <= WHOLE_FILE_LIMIT) {
    const bytes = await readFile(path);
    sha.update(bytes);
    md5?.update(bytes);
  } else {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      sha.update(chunk as Buffer);
      md5?.update(chunk as Buffer);
    }
  }
  const digest: FileDigest = { sha256: sha.digest("hex") };
  if (md5) digest.md5 = md5.digest("hex");
  return digest;
}

/** `"9b2cf535f27731c974343645a3985328"` → the MD5, or undefined for multipart (`…-3`) and other ETags. */
export function plainMd5Etag(etag: string | undefined): string | undefined {
  const m = /^"?([0-9a-f]{32})"?$/.exec(etag ?? "");
  return m?.[1];
}
