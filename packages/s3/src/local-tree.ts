/** The files under a local directory, as sync sees them: relative POSIX paths, sizes, filtered by globs. */
import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import picomatch from "picomatch";

export interface LocalFile {
  /** Relative POSIX path, e.g. `ckpt/step-100.pt`. */
  path: string;
  absolute: string;
  size: number;
}

/** Marks files sync writes while downloading; never synced, never deleted by --delete. */
export const DOWNLOAD_TMP_MARK = ".runctl-download-";

export type PathFilter = (path: string) => boolean;

/**
 * `--include` / `--exclude` globs (picomatch, dotfiles matched): a path is synced when it
 * matches some include (all, when none are given) and no exclude.
 */
export function pathFilter(include: readonly string[], exclude: readonly string[]): PathFilter {
  const options = { dot: true };
  const inc = include.length > 0 ? picomatch([...include], options) : () => true;
  const exc = exclude.length > 0 ? picomatch([...exclude], options) : () => false;
  return (path) => inc(path) && !exc(path);
}

export async function walkLocal(root: string, filter: PathFilter): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && dir === root) return;
      throw error;
    }
    await Promise.all(
      entries.map(async (entry) => {
        const absolute = join(dir, entry.name);
        // Symlinks are not followed: a link to / would otherwise upload the machine.
        if (entry.isDirectory()) return walk(absolute);
        if (!entry.isFile() || entry.name.includes(DOWNLOAD_TMP_MARK)) return;
        const path = relative(root, absolute).split(sep).join("/");
        if (!filter(path)) return;
        out.push({ path, absolute, size: (await stat(absolute)).size });
      }),
    );
  };
  await walk(root);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
