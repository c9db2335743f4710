import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { userDataDir } from "@runctl/core";
import { QueueWorker, type WorkerEvent } from "@runctl/provider-local";
import { type QueueClient, QueueUnreachableError } from "@runctl/tracker";
import { RunctlCommand } from "../command.ts";
import { checkGpuList } from "../flag-values.ts";
import { parseDurationSeconds, serverFlag } from "../queue.ts";

export default class Worker extends RunctlCommand {
  static override summary = "Run jobs from the job server on this machine.";
  static override description =
    `Registers with the server (--server, else server.url / RUNCTL_SERVER_URL; token from server.token / RUNCTL_SERVER_TOKEN) under a unique id, claims jobs while it has free slots (--max-jobs) and GPUs (--gpus), and runs each under the supervisor, as \`runctl local\` would, in --data-dir/runs/<run>, uploading the run directory to the server as it goes. A job it lost the lease of (it was frozen or cut off too long) is stopped at once, never reported.

First SIGINT/SIGTERM: stop claiming, let the running jobs finish, unregister, exit 0. A second one: stop the jobs (SIGTERM, SIGKILL after --grace) and hand them back to the queue (they run again elsewhere, without using up a retry).

Progress (one line per claimed, finished, cancelled or lost job) goes to stderr; --json prints {worker_id, data_dir, finished, failed, cancelled, lease_lost} when it exits.`;
  static override examples = [
    "<%= config.bin %> worker",
    "<%= config.bin %> worker --server http://10.0.0.5:8080 --gpus 0,1 --max-jobs 2",
  ];
  static override flags = {
    ...serverFlag,
    gpus: Flags.string({ description: "GPU indices this worker hands out to jobs, e.g. 0,1." }),
    "max-jobs": Flags.integer({ description: "Jobs at once.", default: 1, min: 1, max: 256 }),
    lease: Flags.integer({
      description: "Lease in seconds (default: server.lease_seconds, 60).",
      min: 1,
      max: 3600,
    }),
    poll: Flags.string({
      description: "Wait between claims when the queue is empty: seconds or 500ms.",
      default: "1",
    }),
    grace: Flags.integer({
      description: "Seconds between SIGTERM and SIGKILL when a job is stopped.",
      default: 10,
      min: 0,
    }),
    "data-dir": Flags.string({
      description: "Runs and checkpoints (default: $XDG_DATA_HOME/runctl/worker).",
    }),
    "exit-when-idle": Flags.boolean({
      description: "Exit once the queue has nothing for this worker and its jobs are done.",
      default: false,
    }),
    echo: Flags.boolean({ description: "Echo the jobs' output here too.", default: false }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Worker);
    const gpus = flags.gpus === undefined ? undefined : checkGpuList(flags.gpus).split(",").map(Number);
    const { config } = await this.runctlConfig();
    const client = await this.queue(flags.server);
    const dataDir = flags["data-dir"]
      ? resolve(flags["data-dir"])
      : join(userDataDir(process.env, homedir()), "worker");
    const counts = { finished: 0, failed: 0, cancelled: 0, lease_lost: 0 };
    const onEvent = (event: WorkerEvent) => {
      if (event.type === "finished") {
        if (event.exitCode === 0) counts.finished++;
        else counts.failed++;
      } else if (event.type === "cancelled") counts.cancelled++;
      else if (event.type === "lease_lost") counts.lease_lost++;
      this.progress(`[${new Date().toISOString()}] ${event.message}`);
    };
    const worker = new QueueWorker({
      client,
      dataDir,
      ...(gpus === undefined ? {} : { gpus }),
      maxJobs: flags["max-jobs"],
      leaseSeconds: flags.lease ?? config.server.lease_seconds,
      pollMs: pollMs(flags.poll),
      graceMs: flags.grace * 1000,
      exitWhenIdle: flags["exit-when-idle"],
      ...(flags.echo ? { terminal: { stdout: process.stdout, stderr: process.stderr } } : {}),
      onEvent,
      // Runner tasks run in warm processes of the configured interpreter, reading the runner's store.
      runner: {
        python: config.local.python ?? "python3",
        openStore: async (url) => (await this.registry()).openArtifactStore(url),
      },
    });
    // Handlers before start(): a signal during registration must not kill jobs unannounced.
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        this.progress(`${signal}: finishing the running jobs, then exiting (again to stop them now).`);
        void worker.drain();
      } else {
        this.progress(`${signal}: stopping the running jobs and handing them back.`);
        void worker.stop();
      }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      await this.#waitForServer(client, () => signals > 0);
      if (signals > 0) return { worker_id: worker.id, data_dir: dataDir, ...counts };
      await worker.start();
      await worker.done;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    return { worker_id: worker.id, data_dir: dataDir, ...counts };
  }

  /** A worker started before its server (both at boot, or the server restarting) waits for it. */
  async #waitForServer(client: QueueClient, cancelled: () => boolean): Promise<void> {
    for (let delayMs = 500; !cancelled(); delayMs = Math.min(delayMs * 2, 5000)) {
      try {
        await client.health({ retries: 0 });
        return;
      } catch (error) {
        if (!(error instanceof QueueUnreachableError)) throw error;
        this.progress(`${error.message}; trying again in ${delayMs / 1000} s (Ctrl-C to give up).`);
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }
}

/** `1` / `0.2` (seconds) or `500ms`. */
function pollMs(text: string): number {
  const ms = /^(\d+)ms$/.exec(text.trim());
  if (ms) return Number(ms[1]);
  return parseDurationSeconds(text, "--poll") * 1000;
}
