/**
 * File names inside a run directory (docs/run-directory.md). One place so the
 * writer, the readers and the tracker cannot drift from the Python client.
 */
export const RUN_FILES = {
  meta: "meta.json",
  config: "config.json",
  metrics: "metrics.jsonl",
  system: "system.jsonl",
  output: "output.log",
  git: "git.json",
  requirements: "requirements.txt",
  artifacts: "artifacts",
} as const;
