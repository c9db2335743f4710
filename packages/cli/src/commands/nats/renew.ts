import { Flags } from "@oclif/core";
import { ConfigError } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";
import { parseDurationSeconds } from "../../queue.ts";

export default class NatsRenew extends RunctlCommand {
  static override summary = "Serve the credential renewals of every remote run, until stopped (Ctrl-C).";
  static override description =
    "A remote run's NATS credential and store POST policy last 24 h; its agent asks for fresh ones over NATS (<prefix>.tel.<run>.renew) when a third of their life is left. This answers those requests for every run under [nats] prefix, with credentials signed by the account seed in [nats] and, with --store, a fresh POST policy for the run's prefix in that store (whose host states also say which machine a run is on, so its renewed credential keeps that machine's inbox). Runs whose store copy says they ended are refused. `runctl logs -f` and `runctl <cloud> monitor -f` answer the renewals of the run they follow; run this for runs nobody follows. Prints each renewal; SIGINT/SIGTERM stop it.";
  static override examples = [
    "<%= config.bin %> nats renew --store s3://my-bucket/runctl",
    "<%= config.bin %> nats renew --ttl 12h --json",
  ];
  static override flags = {
    store: Flags.string({
      description: "Artifact store the runs sync to (s3://bucket/prefix): policies and host states.",
    }),
    ttl: Flags.string({
      description: "How long each renewed credential and policy lasts: 90, 30m, 2h, 1d.",
      default: "24h",
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(NatsRenew);
    const expiresInSeconds = Math.ceil(parseDurationSeconds(flags.ttl, "--ttl"));
    const { config } = await this.runctlConfig();
    const settings = await this.natsSettings(undefined);
    if (settings === undefined) {
      throw new ConfigError("No NATS server to serve renewals on", {
        code: "nats_missing",
        hint: "Set `[nats] url` (or RUNCTL_NATS_URL) to the server the runs' agents report to.",
      });
    }
    const [{ connectNats, loadAccountSeed, serveAllCredentialRenewals }, { hostOfRun, storedMeta }, tracker] =
      await Promise.all([import("@runctl/control"), import("@runctl/agent"), import("@runctl/tracker")]);
    const account = await loadAccountSeed(config.nats);
    const store = flags.store ? await (await this.registry()).openArtifactStore(flags.store) : undefined;
    const presign = store?.presignPost?.bind(store);
    if (store && !presign) {
      throw new ConfigError(`The store ${store.url} cannot presign POST policies`, {
        code: "store_cannot_presign",
        hint: "Give the s3:// store the runs sync to.",
      });
    }
    const source = store ? new tracker.StoreRunSource(store) : undefined;
    const { TERMINAL_STATUSES } = await import("@runctl/core");
    const nc = await connectNats(settings, { waitForServerMs: 10_000 });
    let renewals = 0;
    let refused = 0;
    const service = serveAllCredentialRenewals({
      connection: nc,
      account,
      prefix: config.nats.prefix,
      expiresInSeconds,
      ...(store
        ? {
            hostOf: (runId: string) => hostOfRun(store, runId),
            isActive: async (runId: string) => {
              const meta = source ? await storedMeta(source, runId) : undefined;
              const active = meta === undefined || !TERMINAL_STATUSES.has(meta.status);
              if (!active) {
                refused += 1;
                this.progress(`refused ${runId}: its store copy says it ended (${meta?.status})`);
              }
              return active;
            },
          }
        : {}),
      ...(presign
        ? {
            presignPost: (runId: string) =>
              presign(`runs/${runId}/`, { expiresInSeconds, maxBytes: 1024 ** 3 }),
          }
        : {}),
      onRenewal: (runId, minted) => {
        renewals += 1;
        this.progress(`renewed ${runId} until ${minted.expiresAt.toISOString()}`);
      },
      onError: (error, runId) =>
        this.progress(
          `renewal${runId ? ` of ${runId}` : ""} failed: ${(error as Error).message ?? String(error)}`,
        ),
    });
    await service.ready;
    // The handlers go in before the line that says we serve: a signal sent on reading it must
    // find them (without one, SIGINT kills the process before it prints its result; seen in CI).
    const stopped = new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    this.progress(
      `serving renewals for runs under ${config.nats.prefix}.tel.*.renew${store ? ` (policies from ${store.url})` : ""}; Ctrl-C stops`,
    );
    await stopped;
    await service.stop();
    await nc.close().catch(() => undefined);
    return { renewals, refused };
  }
}
