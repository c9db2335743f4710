/**
 * Output conventions shared by runctl and its plugins: with `--json`, stdout
 * carries one JSON document and nothing else; people-facing text, progress and
 * warnings go to stderr so pipes stay clean.
 */
import type { RunctlError } from "@runctl/core";

export function printError(error: RunctlError, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(error.toEnvelope(), null, 2)}\n`);
    return;
  }
  const lines = [`Error: ${error.message}`];
  if (error.hint) lines.push(`  Hint: ${error.hint}`);
  process.stderr.write(`${lines.join("\n")}\n`);
}

export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A plain aligned table; columns are sized to their widest cell. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
