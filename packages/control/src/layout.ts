/**
 * The files of a control queue directory (docs/control.md, "Files"), and the
 * limits every publisher and consumer shares.
 */

export const QUEUE_FILES = {
  commands: "commands.jsonl",
  acks: "acks.jsonl",
  controls: "controls.json",
  /** The publishers' mutex: `commands.jsonl.lock`, created O_CREAT|O_EXCL. */
  lock: "commands.jsonl.lock",
} as const;

/** `cursor.rank<N>.json`: how far rank N has applied. */
export function cursorFileName(rank: number): string {
  return `cursor.rank${rank}.json`;
}

/** Publishers refuse command lines longer than this many UTF-8 bytes, newline included. */
export const MAX_COMMAND_BYTES = 64 * 1024;

/** How many applied command ids a cursor remembers for de-duplication. */
export const APPLIED_IDS_KEPT = 1024;

/** Set by runctl for a run's processes: the run's queue directory (`<run_dir>/control`). */
export const CONTROL_DIR_ENV = "RUNCTL_CONTROL_DIR";
