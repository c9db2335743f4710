/**
 * Output conventions shared by runctl and its plugins: with `--json`, stdout
 * carries one JSON document and nothing else; people-facing text, progress and
 * warnings go to stderr so pipes stay clean.
 */
import type { RunctlError } from "@runctl/core";
import { terminalSafe, terminalSafeLines } from "./terminal-text.ts";

export function printError(error: RunctlError, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(error.toEnvelope(), null, 2)}\n`);
    return;
  }
  const lines = [`Error: ${error.message}`];
  if (error.hint) lines.push(`  Hint: ${error.hint}`);
  // Messages quote names and paths from outside: escapes in them are shown, not run.
  process.stderr.write(`${terminalSafeLines(lines.join("\n"))}\n`);
}

/** A line (or lines) for people on stderr; control characters in it are shown escaped. */
export function note(message: string): void {
  process.stderr.write(`${terminalSafeLines(message)}\n`);
}

/**
 * A plain aligned table; columns are sized to their widest cell. Cells are
 * made terminal-safe here, so no table can carry an escape sequence.
 */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map(terminalSafe));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
