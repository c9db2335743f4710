/**
 * A cross-process mutex for read-merge-write of meta.json: the supervisor (TS)
 * and the Python client both rewrite the file, and without it one writer's
 * change (a summary, a heartbeat) can be lost between another's read and
 * rename. Protocol, shared with the Python client (`runctl/_meta.py`):
 * create `<file>.lock` with O_CREAT|O_EXCL, hold it only for the rewrite,
 * unlink it. A lock older than STALE_MS belongs to a writer that died mid-update
 * and is removed.
 */
import { closeSync, openSync, statSync, unlinkSync, writeSync } from "node:fs";
import { isErrno } from "./errno.ts";

export const FILE_MUTEX_STALE_MS = 2_000;
const WAIT_STEP_MS = 2;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export function withFileMutexSync<T>(file: string, body: () => T): T {
  const lock = `${file}.lock`;
  for (;;) {
    try {
      const fd = openSync(lock, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > FILE_MUTEX_STALE_MS) unlinkSync(lock);
      } catch {
        // released (or removed by another waiter) meanwhile: try again
      }
      sleepSync(WAIT_STEP_MS);
    }
  }
  try {
    return body();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // removed as stale by another process: nothing left to release
    }
  }
}
