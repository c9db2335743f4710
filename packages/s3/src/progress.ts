/**
 * A one-line progress bar for transfers on stderr: files, bytes, rate and ETA, redrawn at most
 * every 200 ms. Drawn only for a person at a terminal (or when asked with --progress), so logs
 * and `--json` consumers never see carriage returns.
 */
import { formatBytes } from "@runctl/core";

export interface ProgressSink {
  /** Totals once the plan is known. */
  start(totalFiles: number, totalBytes: number): void;
  bytes(n: number): void;
  fileDone(): void;
  finish(): void;
}

export const silentProgress: ProgressSink = {
  start() {},
  bytes() {},
  fileDone() {},
  finish() {},
};

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class TerminalProgress implements ProgressSink {
  private files = 0;
  private sent = 0;
  private totalFiles = 0;
  private totalBytes = 0;
  private started = Date.now();
  private lastDraw = 0;

  constructor(
    private readonly stream: NodeJS.WritableStream = process.stderr,
    private readonly label = "transfer",
  ) {}

  start(totalFiles: number, totalBytes: number): void {
    this.totalFiles = totalFiles;
    this.totalBytes = totalBytes;
    this.started = Date.now();
    this.draw(true);
  }

  bytes(n: number): void {
    this.sent += n;
    this.draw(false);
  }

  fileDone(): void {
    this.files += 1;
    this.draw(false);
  }

  finish(): void {
    this.draw(true);
    this.stream.write("\n");
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 200) return;
    this.lastDraw = now;
    const seconds = Math.max(0.001, (now - this.started) / 1000);
    const rate = this.sent / seconds;
    const fraction = this.totalBytes === 0 ? 1 : Math.min(1, this.sent / this.totalBytes);
    const width = 20;
    const filled = Math.round(fraction * width);
    const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
    const eta = rate > 0 ? (this.totalBytes - this.sent) / rate : Number.POSITIVE_INFINITY;
    this.stream.write(
      `\r${this.label} ${bar} ${this.files}/${this.totalFiles} files  ${formatBytes(this.sent)}/${formatBytes(this.totalBytes)}  ${formatBytes(rate)}/s  ETA ${formatEta(eta)}\u001b[K`,
    );
  }
}
