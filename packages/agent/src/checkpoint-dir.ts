/**
 * Where checkpoints live, on its own: what every run's launch needs (the
 * checkpoint directory it locks and hands to the script) without the
 * listing, inspection and retention code of checkpoints.ts.
 */
import { homedir } from "node:os";
import { join, resolve, sep } from "node:path";

export interface ResolveCheckpointDirOptions {
  /** A directory the user named (relative to cwd); wins over configuration. */
  dir?: string;
  /** `local.checkpoint_dir` from the loaded configuration, as written. */
  configDir?: string;
  /** Directory holding the project's `.runctl.toml`, when there is one. */
  projectRoot?: string;
  cwd?: string;
}

/**
 * The directory a checkpoint command works on: the one named, else
 * `local.checkpoint_dir` relative to the project root (or cwd without a
 * project), the same rule `local.runs_dir` follows.
 */
export function resolveCheckpointDir(options: ResolveCheckpointDirOptions = {}): string {
  const cwd = options.cwd ?? process.cwd();
  if (options.dir !== undefined) return resolve(cwd, expandHome(options.dir));
  return resolve(options.projectRoot ?? cwd, expandHome(options.configDir ?? "checkpoints"));
}

function expandHome(path: string): string {
  return path === "~" || path.startsWith(`~/`) || path.startsWith(`~${sep}`)
    ? join(homedir(), path.slice(1))
    : path;
}
