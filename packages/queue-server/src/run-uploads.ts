/**
 * `PUT /api/v1/runs/{run_id}/files/{path}`: a worker writing its run
 * directory to the server (docs/job-queue.md, Uploads). With `offset` the
 * bytes land at that offset after the file is cut there, so resending a chunk
 * whose answer was lost is harmless; an offset past the end is a gap (409
 * with the current size). Without `offset` the file is replaced atomically
 * (temp file + rename), so readers never see half of it. A file too large for
 * one request is staged: its chunks (`part=<id>` with offsets) go to a hidden
 * part file, and `part=<id>&commit=1` renames that into place, so a reader, or
 * a worker dying mid-upload, never leaves half a checkpoint where the whole
 * one is expected.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdir, open, realpath, rename, stat, unlink } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { isErrno } from "@runctl/core/internal";
import type { FileUploadResponse } from "@runctl/tracker";
import { announcesBody, bodyTooLarge, declaredLength, pumpBody } from "./http-body.ts";
import { HttpError } from "./http-response.ts";
import { isInside, UPLOAD_TEMP_PREFIX } from "./run-files.ts";

function badTarget(rel: string, why: string): HttpError {
  return new HttpError(400, "bad_path", `Cannot write ${rel}: ${why}`, {
    hint: "Upload regular files under the run directory; a path cannot pass through or replace a directory.",
  });
}

/** Where `segments` lands in `runDir`, after creating its parent directories inside it. */
async function targetPath(runDir: string, segments: readonly string[]): Promise<string> {
  const rel = segments.join("/");
  await mkdir(runDir, { recursive: true });
  const root = await realpath(runDir);
  const parent = join(root, ...segments.slice(0, -1));
  try {
    await mkdir(parent, { recursive: true });
  } catch (error) {
    if (isErrno(error, "EEXIST", "ENOTDIR")) throw badTarget(rel, "a parent is a file");
    if (isErrno(error, "ENAMETOOLONG")) throw badTarget(rel, "name too long");
    throw error;
  }
  // A symlinked parent (never made by the API, but the directory is on disk) must not lead outside.
  const realParent = await realpath(parent);
  if (!isInside(root, realParent)) throw badTarget(rel, "it leads outside the run directory");
  return join(realParent, segments[segments.length - 1] as string);
}

async function openTarget(path: string, flags: number, rel: string): Promise<FileHandle> {
  try {
    return await open(path, flags | constants.O_NOFOLLOW, 0o644);
  } catch (error) {
    if (isErrno(error, "EISDIR")) throw badTarget(rel, "it is a directory");
    if (isErrno(error, "ELOOP")) throw badTarget(rel, "it is a symlink");
    if (isErrno(error, "ENAMETOOLONG")) throw badTarget(rel, "name too long");
    throw error;
  }
}

/** Streams the request body into `handle` from `position`; returns the byte count. */
function writeBody(
  req: IncomingMessage,
  handle: FileHandle,
  position: number,
  limit: number,
): Promise<number> {
  let at = position;
  return pumpBody(req, limit, async (chunk) => {
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, at);
      done += bytesWritten;
      at += bytesWritten;
    }
  });
}

/**
 * Receives one upload; the caller has checked that the uploader holds the
 * run's attempt. `offset` undefined replaces the file atomically.
 */
export interface UploadMode {
  offset: number | undefined;
  part: string | undefined;
  commit: boolean;
}

export async function receiveRunFile(
  req: IncomingMessage,
  runDir: string,
  segments: readonly string[],
  mode: UploadMode,
  limit: number,
): Promise<FileUploadResponse> {
  const rel = segments.join("/");
  const { offset, part, commit } = mode;
  if (commit || part !== undefined) {
    if (part === undefined || (commit && offset !== undefined) || (!commit && offset === undefined)) {
      throw new HttpError(
        400,
        "bad_request",
        "A staged upload is `part` with `offset`, or `part` with `commit=1`",
        {
          hint: "Send the chunks with ?part=<id>&offset=<n>, then an empty ?part=<id>&commit=1.",
        },
      );
    }
  }
  if (!announcesBody(req)) {
    throw new HttpError(
      411,
      "length_required",
      "An upload needs a body with Content-Length (or chunked transfer)",
      {
        hint: "Send the file's bytes as the request body; an empty file is `Content-Length: 0`.",
      },
    );
  }
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw bodyTooLarge(limit);
  const target = await targetPath(runDir, segments);
  const staged = part === undefined ? undefined : join(target, "..", `${UPLOAD_TEMP_PREFIX}part-${part}`);
  if (staged !== undefined && commit) {
    try {
      await rename(staged, target);
    } catch (error) {
      if (isErrno(error, "ENOENT")) {
        throw new HttpError(409, "upload_gap", `Nothing staged for ${rel} under part ${part}`, {
          hint: "Send the chunks (?part=<id>&offset=<n>) before committing.",
          extra: { size: 0 },
        });
      }
      if (isErrno(error, "EISDIR", "ENOTEMPTY", "EEXIST")) throw badTarget(rel, "it is a directory");
      throw error;
    }
    return { path: rel, size: (await stat(target)).size };
  }
  if (offset !== undefined) {
    const handle = await openTarget(staged ?? target, constants.O_RDWR | constants.O_CREAT, rel);
    try {
      const size = (await handle.stat()).size;
      if (offset > size) {
        throw new HttpError(
          409,
          "upload_gap",
          `Offset ${offset} is past the end of ${rel} (current size ${size})`,
          {
            hint: `Resend from offset ${size}.`,
            extra: { size },
          },
        );
      }
      await handle.truncate(offset);
      const written = await writeBody(req, handle, offset, limit);
      return { path: rel, size: offset + written };
    } finally {
      await handle.close();
    }
  }
  const tmp = join(target, "..", `${UPLOAD_TEMP_PREFIX}${randomBytes(4).toString("hex")}`);
  const handle = await openTarget(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, rel);
  let renamed = false;
  try {
    const written = await writeBody(req, handle, 0, limit);
    await handle.datasync();
    await handle.close();
    try {
      await rename(tmp, target);
    } catch (error) {
      if (isErrno(error, "EISDIR", "ENOTEMPTY", "EEXIST")) throw badTarget(rel, "it is a directory");
      throw error;
    }
    renamed = true;
    return { path: rel, size: written };
  } finally {
    if (!renamed) {
      await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    }
  }
}
