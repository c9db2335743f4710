/**
 * Atomic file replacement (temp file + fsync + rename + directory fsync): a
 * reader, or a crash at any point, sees the old content or the new, never a mix.
 * Every writer of run files and control files uses it.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { isErrno } from "./errno.ts";

export interface AtomicWriteOptions {
  /**
   * Default true: fsync the file and its directory, so the new content
   * survives a power loss too. False keeps the write atomic (a crash of the
   * process still leaves old or new) without the two fsyncs, for files that
   * are only a hint whose loss costs redundant work, never wrong data.
   */
  durable?: boolean;
}

/** Replaces `file` with `value` as pretty JSON, atomically (see writeFileAtomicSync). */
export function writeJsonAtomicSync(file: string, value: unknown, options?: AtomicWriteOptions): void {
  writeFileAtomicSync(file, `${JSON.stringify(value, null, 2)}\n`, options);
}

/**
 * Replaces `file` with `text` atomically: readers (and a crash at any point)
 * see the old content or the new, never a mix. The temp file is hidden and
 * unique per writer so concurrent writers never share one.
 */
export function writeFileAtomicSync(file: string, text: string, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", 0o644);
  try {
    const buf = Buffer.from(text, "utf8");
    let written = 0;
    while (written < buf.length) written += writeSync(fd, buf, written, buf.length - written);
    if (durable) fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(tmp);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (error) {
    unlinkSync(tmp);
    throw error;
  }
  if (durable) syncDirectory(dir);
}

// Makes the rename itself durable. Some file systems refuse fsync on a
// directory; the rename is still atomic there, only less durable on power loss.
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch (error) {
    if (!isErrno(error, "EISDIR", "EINVAL", "EPERM", "EACCES", "ENOTSUP")) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
