/**
 * Output conventions shared by every command: with `--json`, stdout carries one
 * JSON document and nothing else; people-facing text, progress and warnings go
 * to stderr so pipes stay clean.
 */
import { terminalSafe } from "@runctl/command";

export { note, printError, table } from "@runctl/command";

/**
 * Nested objects as dotted keys (`{optimizer: {lr: 1}}` → `optimizer.lr`), so
 * configs of different shapes line up row by row. Arrays and empty objects
 * are leaf values: splitting them would invent keys nobody wrote.
 */
export function flatten(value: Record<string, unknown>, prefix = ""): Record<string, unknown> {
  // No prototype: a key such as `__proto__` in a user's config stays a plain key.
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, v] of Object.entries(value)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    if (isPlainObject(v) && Object.keys(v).length > 0) Object.assign(out, flatten(v, path));
    else out[path] = v;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Numbers short enough for a table: integers as they are, others to 5 significant digits. */
export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
  return String(Number(n.toPrecision(5)));
}

/** One cell's text for any JSON value; long values are cut so one key cannot widen a table off screen. */
export function formatValue(value: unknown, maxChars = 40): string {
  let text: string;
  if (value === undefined) text = "-";
  else if (typeof value === "number") text = formatNumber(value);
  else if (typeof value === "string") text = value;
  else text = JSON.stringify(value) ?? String(value);
  text = terminalSafe(text.replace(/[\r\n\t]+/g, " "));
  return text.length > maxChars ? `${text.slice(0, maxChars - 3)}...` : text;
}

/** `45s`, `3m12s`, `1h02m`, `2d03h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

/** `5m ago`, `2h ago`, `3d ago`; clocks of other machines may run ahead, hence `in 5s`. */
export function formatAgo(at: Date, now: Date = new Date()): string {
  const ms = now.getTime() - at.getTime();
  if (Number.isNaN(ms)) return "-";
  if (Math.abs(ms) < 1000) return "just now";
  const s = Math.floor(Math.abs(ms) / 1000);
  const unit =
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m`
        : s < 86_400
          ? `${Math.floor(s / 3600)}h`
          : `${Math.floor(s / 86_400)}d`;
  return ms > 0 ? `${unit} ago` : `in ${unit}`;
}

export interface ChartPoint {
  x: number;
  y: number;
}

/**
 * A plain-ASCII line chart (works on any terminal and in logs): points are
 * averaged into at most `width` columns along x, one `*` per column, with the
 * y range on the left and the x range below. Non-finite values are left out;
 * no finite point gives no lines.
 */
export function asciiChart(
  points: readonly ChartPoint[],
  options: { height?: number; width?: number } = {},
): string[] {
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (finite.length === 0) return [];
  const height = Math.max(1, options.height ?? 10);
  let xMin = Number.POSITIVE_INFINITY;
  let xMax = Number.NEGATIVE_INFINITY;
  for (const p of finite) {
    xMin = Math.min(xMin, p.x);
    xMax = Math.max(xMax, p.x);
  }
  const columns = Math.max(1, Math.min(options.width ?? 60, new Set(finite.map((p) => p.x)).size));
  const sums = new Array<number>(columns).fill(0);
  const counts = new Array<number>(columns).fill(0);
  for (const p of finite) {
    const c = xMax === xMin ? 0 : Math.round(((p.x - xMin) / (xMax - xMin)) * (columns - 1));
    sums[c] = (sums[c] ?? 0) + p.y;
    counts[c] = (counts[c] ?? 0) + 1;
  }
  const values = sums.map((sum, i) => ((counts[i] ?? 0) > 0 ? sum / (counts[i] ?? 1) : undefined));
  const plotted = values.filter((v): v is number => v !== undefined);
  const yMin = Math.min(...plotted);
  const yMax = Math.max(...plotted);
  const grid = Array.from({ length: height }, () => new Array<string>(columns).fill(" "));
  // A constant series sits mid-height with one label, not min = max twice.
  const flatRow = height - 1 - Math.floor((height - 1) / 2);
  values.forEach((v, c) => {
    if (v === undefined) return;
    const row =
      grid[yMax === yMin ? flatRow : height - 1 - Math.round(((v - yMin) / (yMax - yMin)) * (height - 1))];
    if (row) row[c] = "*";
  });
  const top = formatNumber(yMax);
  const bottom = formatNumber(yMin);
  const labelWidth = Math.max(top.length, bottom.length);
  const lines = grid.map((row, i) => {
    const label = yMax === yMin ? (i === flatRow ? top : "") : i === 0 ? top : i === height - 1 ? bottom : "";
    return `${label.padStart(labelWidth)} |${row.join("")}`.trimEnd();
  });
  lines.push(`${" ".repeat(labelWidth)} +${"-".repeat(columns)}`);
  const left = formatNumber(xMin);
  const right = xMax === xMin ? "" : formatNumber(xMax);
  const gap = Math.max(1, columns - left.length - right.length);
  lines.push(`${" ".repeat(labelWidth + 2)}${left}${right === "" ? "" : " ".repeat(gap) + right}`);
  return lines;
}

/** Colour only for a person at a terminal: never in pipes, files, or with NO_COLOR / TERM=dumb. */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  const noColor = process.env.NO_COLOR;
  return stream.isTTY === true && (noColor === undefined || noColor === "") && process.env.TERM !== "dumb";
}

const ANSI = { bold: 1, red: 31, green: 32, yellow: 33 } as const;

export function paint(text: string, style: keyof typeof ANSI, enabled: boolean): string {
  return enabled ? `\u001b[${ANSI[style]}m${text}\u001b[0m` : text;
}
