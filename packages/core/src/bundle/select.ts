/**
 * Which files of a working directory go into a code bundle. Selection follows
 * gitignore semantics so a bundle holds what a user would commit, minus the
 * weights, environments and run output that make uploads slow and expensive.
 */
import type { Stats } from "node:fs";
import { lstat, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import path from "node:path";
import ignore, { type Ignore } from "ignore";
import { z } from "zod";
import { UserError } from "../errors.ts";

/**
 * Excluded unless `.runctlignore` re-includes them with `!`. They apply after
 * `.gitignore` so that a whitelisting `.gitignore` (ignore everything, then
 * re-include every directory) cannot pull a virtualenv or `.git` back in: git
 * never sees `.git`, and it knows nothing of what the others cost an upload.
 */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze([
  ".git/",
  ".hg/",
  ".svn/",
  ".venv/",
  "venv/",
  "__pycache__/",
  "*.pyc",
  "node_modules/",
  "*.pt",
  "*.pth",
  "*.ckpt",
  "checkpoints/",
  "runs/",
  ".runctl/",
  "wandb/",
  ".DS_Store",
]);

/** Name of the root-only ignore file that refines `.gitignore` for bundles. */
export const RUNCTL_IGNORE_FILE = ".runctlignore";

/** Only these two modes exist in a bundle, so a checkout's umask never changes the key. */
export type BundleMode = 0o644 | 0o755;

/** A selected entry; `path` is posix and relative to the root. */
export type BundleFile =
  | { type: "file"; path: string; absolutePath: string; size: number; mode: BundleMode }
  | { type: "symlink"; path: string; absolutePath: string; target: string };

export const SkipReasonSchema = z.enum([
  "symlink_outside_root",
  "symlink_absolute",
  "symlink_loop",
  "special_file",
  "name_not_utf8",
]);
export type SkipReason = z.infer<typeof SkipReasonSchema>;

export const SkippedEntrySchema = z.object({ path: z.string(), reason: SkipReasonSchema });
export type SkippedEntry = z.infer<typeof SkippedEntrySchema>;

export interface SelectOptions {
  /** More gitignore-syntax patterns relative to the root (config `bundle.exclude`); applied last. */
  extraExcludes?: readonly string[];
}

export interface SelectResult {
  /** Sorted by path. */
  files: BundleFile[];
  /** Entries left out for safety rather than by an ignore rule, sorted by path. */
  skipped: SkippedEntry[];
  /** Sum of regular file sizes. */
  totalBytes: number;
}

export function normaliseMode(mode: number): BundleMode {
  return (mode & 0o111) !== 0 ? 0o755 : 0o644;
}

/** Code-unit order, never locale order: the key must not depend on the machine's locale. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Escapes a literal path for use inside a gitignore pattern. */
export function escapeGlob(literal: string): string {
  const escaped = literal.replace(/[\\*?[\]]/g, "\\$&");
  return /^[!#]/.test(escaped) ? `\\${escaped}` : escaped;
}

/**
 * Rewrites one line of a nested `.gitignore` so it means the same thing when
 * matched against root-relative paths. One matcher then holds every rule in
 * precedence order, which keeps git's "last matching rule wins" across files
 * (a per-file matcher would let a parent directory's exclusion leak past a
 * later re-include).
 */
export function scopeGitignoreLine(dir: string, line: string): string | undefined {
  if (line.trim() === "" || line.startsWith("#")) return undefined;
  let body = line.replace(/(?<!\\) +$/, "");
  const negative = body.startsWith("!");
  if (negative) body = body.slice(1);
  const core = body.endsWith("/") ? body.slice(0, -1) : body;
  // A slash anywhere but the end anchors the pattern to the file's directory.
  const anchored = core.includes("/");
  const rel = body.startsWith("/") ? body.slice(1) : body;
  if (rel === "" || rel === "/") return undefined;
  return `${negative ? "!" : ""}${escapeGlob(dir)}/${anchored ? "" : "**/"}${rel}`;
}

function linesOf(text: string): string[] {
  return text.split(/\r?\n/);
}

async function readIgnoreFile(file: string): Promise<string[] | undefined> {
  let info: Stats;
  try {
    info = await lstat(file);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  if (!info.isFile()) return undefined;
  return linesOf(await readFile(file, "utf8"));
}

function errorCode(error: unknown): unknown {
  return error instanceof Error && "code" in error ? error.code : undefined;
}

function isNotFound(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith(`..${path.sep}`) && rel !== ".." && !path.isAbsolute(rel));
}

/** Resolves the root to its real path or explains why it cannot be bundled. */
export async function resolveBundleRoot(root: string): Promise<string> {
  const absolute = path.resolve(root);
  let info: Stats;
  try {
    info = await stat(absolute);
  } catch (error) {
    if (isNotFound(error)) {
      throw new UserError(`Cannot bundle ${absolute}: no such directory`, {
        code: "bundle_root_missing",
        hint: "Run from your project directory, or pass the path of the directory that holds your training code.",
        details: { root: absolute },
      });
    }
    throw error;
  }
  if (!info.isDirectory()) {
    throw new UserError(`Cannot bundle ${absolute}: not a directory`, {
      code: "bundle_root_not_directory",
      hint: "Pass the directory that holds your training code, not a file inside it.",
      details: { root: absolute },
    });
  }
  return realpath(absolute);
}

/** Holds the rule layers in precedence order and rebuilds the matcher when a nested `.gitignore` appears. */
class RuleSet {
  readonly #gitignore: string[] = [];
  readonly #tail: string[];
  #matcher: Ignore | undefined;

  constructor(runctlIgnore: readonly string[], extraExcludes: readonly string[]) {
    this.#tail = [...DEFAULT_EXCLUDES, ...runctlIgnore, ...extraExcludes];
  }

  addGitignore(dir: string, lines: readonly string[]): void {
    for (const line of lines) {
      const scoped = dir === "" ? line : scopeGitignoreLine(dir, line);
      if (scoped !== undefined) this.#gitignore.push(scoped);
    }
    this.#matcher = undefined;
  }

  ignores(rel: string, isDirectory: boolean): boolean {
    // Case-sensitive everywhere, so the same checkout selects the same files on every OS.
    this.#matcher ??= ignore({ ignorecase: false }).add(this.#gitignore).add(this.#tail);
    return this.#matcher.ignores(isDirectory ? `${rel}/` : rel);
  }
}

/**
 * Walks `root` and returns the entries a bundle holds. Excluded directories
 * are never entered; symlinks are kept as links only when they stay inside the
 * root by a relative target, because an absolute target would make the bundle
 * depend on where the checkout lives.
 */
export async function selectFiles(root: string, opts: SelectOptions = {}): Promise<SelectResult> {
  const base = await resolveBundleRoot(root);
  const runctlIgnore = (await readIgnoreFile(path.join(base, RUNCTL_IGNORE_FILE))) ?? [];
  const rules = new RuleSet(runctlIgnore, opts.extraExcludes ?? []);
  const files: BundleFile[] = [];
  const skipped: SkippedEntry[] = [];

  const walk = async (dirRel: string): Promise<void> => {
    const dirAbs = dirRel === "" ? base : path.join(base, dirRel);
    const gitignore = await readIgnoreFile(path.join(dirAbs, ".gitignore"));
    if (gitignore !== undefined) rules.addGitignore(dirRel, gitignore);

    // Raw names: one that is not UTF-8 has no faithful string form (Node would
    // substitute U+FFFD and then fail to find the file), nor a place in the
    // JSON manifest; it is left out and reported instead.
    const names: string[] = [];
    for (const raw of await readdir(dirAbs, { encoding: "buffer" })) {
      const name = utf8Name(raw);
      if (name !== undefined) names.push(name);
      else
        skipped.push({
          path: dirRel === "" ? lossy(raw) : `${dirRel}/${lossy(raw)}`,
          reason: "name_not_utf8",
        });
    }
    names.sort(comparePaths);
    const infos = await Promise.all(names.map((name) => lstat(path.join(dirAbs, name))));
    for (const [i, name] of names.entries()) {
      const info = infos[i];
      if (info === undefined) continue;
      const rel = dirRel === "" ? name : `${dirRel}/${name}`;
      const absolutePath = path.join(dirAbs, name);
      if (info.isDirectory()) {
        if (!rules.ignores(rel, true)) await walk(rel);
        continue;
      }
      if (rules.ignores(rel, false)) continue;
      if (info.isFile()) {
        files.push({
          type: "file",
          path: rel,
          absolutePath,
          size: info.size,
          mode: normaliseMode(info.mode),
        });
      } else if (info.isSymbolicLink()) {
        const link = await classifySymlink(base, absolutePath);
        if (typeof link === "string") {
          skipped.push({ path: rel, reason: link });
        } else {
          files.push({ type: "symlink", path: rel, absolutePath, target: link.target });
        }
      } else {
        skipped.push({ path: rel, reason: "special_file" });
      }
    }
  };

  await walk("");
  files.sort((a, b) => comparePaths(a.path, b.path));
  skipped.sort((a, b) => comparePaths(a.path, b.path));
  const totalBytes = files.reduce((sum, f) => sum + (f.type === "file" ? f.size : 0), 0);
  return { files, skipped, totalBytes };
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

function utf8Name(raw: Buffer): string | undefined {
  try {
    return STRICT_UTF8.decode(raw);
  } catch {
    return undefined;
  }
}

/** A non-UTF-8 name for messages: invalid bytes as `\xNN`. */
function lossy(raw: Buffer): string {
  let out = "";
  let i = 0;
  while (i < raw.length) {
    // The longest valid UTF-8 sequence starting here, else one escaped byte.
    let taken = 0;
    for (let n = Math.min(4, raw.length - i); n >= 1; n--) {
      const piece = utf8Name(raw.subarray(i, i + n));
      if (piece !== undefined) {
        out += piece;
        taken = n;
        break;
      }
    }
    if (taken === 0) {
      out += `\\x${(raw[i] as number).toString(16).padStart(2, "0")}`;
      taken = 1;
    }
    i += taken;
  }
  return out;
}

async function classifySymlink(base: string, absolutePath: string): Promise<{ target: string } | SkipReason> {
  const target = await readlink(absolutePath);
  if (path.isAbsolute(target)) return "symlink_absolute";
  if (!isInside(base, path.resolve(path.dirname(absolutePath), target))) return "symlink_outside_root";
  // The lexical check misses hops through other links (`a -> b/..` with `b -> /etc`).
  try {
    if (!isInside(base, await realpath(absolutePath))) return "symlink_outside_root";
  } catch (error) {
    if (errorCode(error) === "ELOOP") return "symlink_loop";
    // A dangling link that stays inside lexically is kept: the target may be an excluded file.
    if (!isNotFound(error)) throw error;
  }
  return { target };
}
