import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { userDataDir } from "@runctl/core";
import { startQueueServer } from "@runctl/queue-server";
import { RunctlCommand } from "../command.ts";

export default class Server extends RunctlCommand {
  static override summary = "Run the job server: the queue and HTTP API that workers and clients use.";
  static override description =
    `Listens on --host:--port (server.host, server.port; default 127.0.0.1:8080) and keeps its SQLite database and the runs workers upload in --data-dir (server.data_dir, else $XDG_DATA_HOME/runctl/server). The API is in docs/job-queue.md.

A token is required when it listens beyond loopback: --token, or better server.token / RUNCTL_SERVER_TOKEN (a flag can end up in shell history and process lists); clients send it as a bearer token. SIGINT/SIGTERM stop it; queued and running jobs stay in the database, and running jobs' leases are extended on the next start so their workers can carry on.

The listening URL is printed on stderr once it accepts requests; --json prints {url, data_dir} when it stops.`;
  static override examples = [
    "<%= config.bin %> server",
    "<%= config.bin %> server --port 9000 --data-dir ./queue",
    "RUNCTL_SERVER_TOKEN=$(openssl rand -hex 16) <%= config.bin %> server --host 0.0.0.0",
  ];
  static override flags = {
    host: Flags.string({ description: "Address to listen on (default: server.host, 127.0.0.1)." }),
    port: Flags.integer({
      description: "Port (0 picks a free one; default: server.port, 8080).",
      min: 0,
      max: 65_535,
    }),
    "data-dir": Flags.string({ description: "Database and uploaded runs (default: server.data_dir)." }),
    token: Flags.string({
      description: "Bearer token clients must send (prefer server.token / RUNCTL_SERVER_TOKEN).",
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(Server);
    const loaded = await this.runctlConfig();
    const { server } = loaded.config;
    const projectRoot = loaded.projectFile ? dirname(loaded.projectFile) : process.cwd();
    const dataDir = flags["data-dir"]
      ? resolve(flags["data-dir"])
      : server.data_dir
        ? resolve(projectRoot, server.data_dir)
        : join(userDataDir(process.env, homedir()), "server");
    const token = flags.token ?? server.token;
    // Handlers first: a signal while the database opens must still close it cleanly.
    let stopRequested: () => void = () => undefined;
    const stopped = new Promise<void>((resolveStop) => {
      stopRequested = resolveStop;
    });
    process.once("SIGINT", stopRequested);
    process.once("SIGTERM", stopRequested);
    const queue = await startQueueServer({
      dataDir,
      host: flags.host ?? server.host,
      port: flags.port ?? server.port,
      ...(token ? { token } : {}),
      log: (line) => this.progress(line),
    });
    this.progress(
      `runctl server listening on ${queue.url} (data: ${dataDir}${token ? ", token required" : ""})`,
    );
    await stopped;
    this.progress("Stopping the server…");
    await queue.close();
    return { url: queue.url, data_dir: dataDir };
  }
}
