/**
 * The agent as a process: `node agent-main.js <spec.json | ->` runs one run
 * spec (core's RunSpec) under the supervisor and exits with the run's exit
 * code. The local provider starts it for every local run (the spec on stdin,
 * so no secret it carries touches the disk). On a cloud machine a bootstrap
 * starts `node agent.mjs host <host.json>` instead (host-main.ts).
 */
import { closeSync, createWriteStream, fstatSync, readFileSync, writeSync } from "node:fs";
import { Socket } from "node:net";
import type { Writable } from "node:stream";
import { isatty, WriteStream } from "node:tty";
import { parseAt, RunSpec, toRunctlError } from "@runctl/core";
import { AGENT_STATUS_FD_VARIABLE, type AgentStatus } from "./agent-status.ts";
import { Supervisor } from "./supervisor.ts";

// The launcher (the local provider) reads one status line from this fd: the run
// started, or why not. Not passed on to the ranks.
const statusFd = Number(process.env[AGENT_STATUS_FD_VARIABLE]);
delete process.env[AGENT_STATUS_FD_VARIABLE];
function report(status: AgentStatus): void {
  if (!Number.isInteger(statusFd) || statusFd < 3) return;
  try {
    writeSync(statusFd, `${JSON.stringify(status)}\n`);
    closeSync(statusFd);
  } catch {
    // the launcher went away: nobody to tell
  }
}
function fail(error: unknown): never {
  const err = toRunctlError(error);
  report({ ok: false, error: { kind: err.kind, ...err.toEnvelope().error } });
  process.stderr.write(`runctl agent: ${err.message}${err.hint ? `\n  ${err.hint}` : ""}\n`);
  process.exit(err.exitCode);
}

if (process.argv[2] === "host") {
  const { hostMain } = await import("./host-main.ts");
  process.exitCode = await hostMain(process.argv[3]);
} else if (process.argv[2] === "orphaned") {
  const { finishOrphanedRun } = await import("./orphaned-run.ts");
  finishOrphanedRun(process.env);
} else {
  await runSpecMain(process.argv[2] ?? "-");
}

async function runSpecMain(source: string): Promise<void> {
  let spec: RunSpec;
  try {
    const text = readFileSync(source === "-" ? 0 : source, "utf8");
    spec = parseAt(RunSpec, JSON.parse(text), {
      what: `run spec ${source}`,
      kind: "user",
      code: "bad_run_spec",
    });
  } catch (error) {
    fail(error);
  }

  // Handlers go in before the ranks exist: a signal that arrives while they are
  // being started must stop them, not kill this process and orphan them.
  let requested: NodeJS.Signals | undefined;
  let supervisor: Supervisor | undefined;
  const stop = (signal: NodeJS.Signals) => {
    requested ??= signal;
    supervisor?.stop(signal);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => stop(signal === "SIGHUP" ? "SIGTERM" : signal));
  }
  // A foreground CLI killed hard cannot forward Ctrl-C any more: its run stops with it.
  if (spec.stopWithParent) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop("SIGTERM");
    }, 500).unref();
  }

  // The terminal's end of a pipe or socket is written through the event loop
  // (net.Socket), so a reader that stops reading backs up into a bounded buffer
  // (the supervisor stops echoing past it) instead of blocking this process or
  // failing with EAGAIN on a descriptor the launcher made non-blocking; a TTY
  // gets a tty stream, a file a plain file stream.
  const terminalStream = (fd: number): Writable => {
    if (isatty(fd)) return new WriteStream(fd);
    const stats = fstatSync(fd);
    if (stats.isFIFO() || stats.isSocket()) return new Socket({ fd, readable: false, writable: true });
    return createWriteStream("", { fd, autoClose: false });
  };
  const terminal = spec.echo ? { stdout: terminalStream(1), stderr: terminalStream(2) } : undefined;

  try {
    supervisor = await Supervisor.start(spec, {
      env: process.env,
      ...(terminal ? { terminal } : {}),
      onWarning: (message) => process.stderr.write(`runctl: warning: ${message}\n`),
    });
  } catch (error) {
    fail(error);
  }
  report({ ok: true, runId: supervisor.runId, runDir: supervisor.runDir, pid: process.pid });
  if (requested) supervisor.stop(requested);
  const outcome = await supervisor.done;
  if (terminal) {
    await Promise.all([terminal.stdout, terminal.stderr].map((s) => new Promise((r) => s.end(r))));
  }
  process.exitCode = outcome.exitCode;
}
