/**
 * `runctl server` and `runctl worker` as real processes, for the queue's
 * end-to-end tests and the queue benchmark:
 *
 *   const server = await startJobServer(ws, dataDir);   // port chosen by the kernel
 *   server.kill("SIGKILL"); await server.start();       // same port, same data dir
 *   const worker = startWorker(ws, server.url, workerDir, ["--max-jobs", "2"]);
 */
import type { ChildProcess } from "node:child_process";
import { type CliResult, startRunctl, type Workspace, waitFor } from "./runctl-cli.ts";

export interface JobServerProcess {
  url: string;
  port: number;
  readonly child: ChildProcess;
  /** Everything the server wrote on stderr, across restarts. */
  readonly log: () => string;
  start(): Promise<void>;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

export async function startJobServer(
  ws: Workspace,
  dataDir: string,
  extraArgs: readonly string[] = [],
): Promise<JobServerProcess> {
  let port = 0;
  let log = "";
  let current: { child: ChildProcess; result: Promise<CliResult> } | undefined;
  const start = async () => {
    const started = startRunctl(["server", "--port", String(port), "--data-dir", dataDir, ...extraArgs], ws);
    current = started;
    let stderr = "";
    started.child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
      log += d.toString();
    });
    let exited = false;
    void started.result.then(() => {
      exited = true;
    });
    await waitFor(() => {
      if (exited) throw new Error(`runctl server exited:\n${stderr}`);
      return /listening on http:\/\/[^:]+:(\d+)/.test(stderr);
    }, `runctl server to listen:\n${stderr}`);
    port = Number(/listening on http:\/\/[^:]+:(\d+)/.exec(stderr)?.[1]);
  };
  await start();
  const server: JobServerProcess = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get child() {
      return (current as { child: ChildProcess }).child;
    },
    log: () => log,
    start,
    async stop(signal = "SIGTERM") {
      const running = current as { child: ChildProcess; result: Promise<CliResult> };
      running.child.kill(signal);
      return running.result;
    },
  };
  return server;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly result: Promise<CliResult>;
  /** stderr so far. */
  readonly log: () => string;
}

export function startWorker(
  ws: Workspace,
  serverUrl: string,
  dataDir: string,
  extraArgs: readonly string[] = [],
): WorkerProcess {
  const started = startRunctl(["worker", "--server", serverUrl, "--data-dir", dataDir, ...extraArgs], ws);
  let log = "";
  started.child.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  return { child: started.child, result: started.result, log: () => log };
}
