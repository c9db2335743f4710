/**
 * `GET /api/v1/runs/{run_id}/artifacts/{path}`: one file of a run directory,
 * streamed from disk (never read whole into memory), with single byte ranges
 * (`Range: bytes=a-b | a- | -n`) so a client can resume a large checkpoint.
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { isErrno } from "@runctl/core/internal";
import { HttpError } from "./http-response.ts";
import { resolveRunFile } from "./run-files.ts";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".json": "application/json",
  ".jsonl": "application/x-ndjson",
  ".log": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".yaml": "application/yaml",
  ".yml": "application/yaml",
  ".toml": "application/toml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
  ".gz": "application/gzip",
  ".tar": "application/x-tar",
  ".zip": "application/zip",
};

export function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

export type ByteRange = { start: number; end: number } | "unsatisfiable" | undefined;

/**
 * A single `bytes=` range against a file of `size` bytes (RFC 9110 §14.1.2).
 * Undefined means "send the whole file": no header, a syntax we do not serve
 * (several ranges, other units) or an invalid one, all of which a server may
 * ignore.
 */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) };
}

function contentDisposition(path: string): string {
  const name = posix.basename(path);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function notFound(path: string): HttpError {
  return new HttpError(404, "artifact_not_found", `No file ${path} in this run`, {
    hint: "List the run's files with GET /api/v1/runs/{run_id}/artifacts (`runctl` clients: listArtifacts).",
  });
}

export async function sendRunFile(
  req: IncomingMessage,
  res: ServerResponse,
  runDir: string,
  segments: readonly string[],
): Promise<void> {
  const rel = segments.join("/");
  const real = await resolveRunFile(runDir, segments);
  if (real === undefined) throw notFound(rel);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NOFOLLOW: if the file was swapped for a symlink since it was resolved, refuse it.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    // Gone, or a symlink put in its place: not found. Anything else (EMFILE, EIO, EACCES) is the
    // server's trouble and must not tell a client that its checkpoint does not exist.
    if (isErrno(error, "ENOENT", "ELOOP", "ENOTDIR")) throw notFound(rel);
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw notFound(rel);
    const size = stat.size;
    const headers: Record<string, string | number> = {
      "Content-Type": contentTypeOf(rel),
      "Accept-Ranges": "bytes",
      "Content-Disposition": contentDisposition(rel),
      "Last-Modified": stat.mtime.toUTCString(),
      "X-Content-Type-Options": "nosniff",
      "Cache-Control": "no-store",
    };
    const range = parseRange(req.headers.range, size);
    if (range === "unsatisfiable") {
      throw new HttpError(
        416,
        "range_not_satisfiable",
        `The range ${req.headers.range} is outside ${rel} (${size} bytes)`,
        {
          hint: "Ask for bytes below the file's size, or omit Range for the whole file.",
          headers: { "Content-Range": `bytes */${size}` },
        },
      );
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    if (range) headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
    headers["Content-Length"] = end - start + 1;
    res.writeHead(range ? 206 : 200, headers);
    if (end < start || req.method === "HEAD") {
      res.end();
      return;
    }
    const stream = handle.createReadStream({ start, end, autoClose: false });
    try {
      await pipeline(stream, res);
    } catch {
      // The client went away mid-download; nothing to answer to.
      res.destroy();
    }
  } finally {
    await handle.close();
  }
}
