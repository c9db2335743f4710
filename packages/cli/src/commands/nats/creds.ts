import { Flags } from "@oclif/core";
import { RunctlCommand } from "../../command.ts";
import { parseDurationSeconds } from "../../queue.ts";

export default class NatsCreds extends RunctlCommand {
  static override summary = "Print NATS credentials for one run: a .creds file that expires (a secret).";
  static override description =
    "Mints a user JWT signed with the account seed in [nats] (account_seed, account_seed_file or RUNCTL_NATS_ACCOUNT_SEED) that may publish and subscribe only on the run's subjects (and the machine's, with --host) and expires after --ttl; the .creds text goes to stdout. It is what a remote run's machine receives; use it to debug or to wire another tool to one run. Connect with the printed inbox prefix. See docs/protocol.md, \"Security\", for what it allows.";
  static override examples = [
    "<%= config.bin %> nats creds --run 20261122-210037-a1b2c3 > run.creds",
    "<%= config.bin %> nats creds --run 20261122-210037-a1b2c3 --host i-0abc --ttl 30m --json",
  ];
  static override flags = {
    run: Flags.string({ description: "The run id.", required: true }),
    host: Flags.string({ description: "Also allow the machine's subjects (<prefix>.host.<host>.>)." }),
    ttl: Flags.string({ description: "How long they are valid: 90, 30m, 2h, 1d.", default: "1h" }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(NatsCreds);
    const expiresInSeconds = Math.ceil(parseDurationSeconds(flags.ttl, "--ttl"));
    const { config } = await this.runctlConfig();
    const { loadAccountSeed, mintRunCredentials } = await import("@runctl/control");
    const minted = await mintRunCredentials({
      account: await loadAccountSeed(config.nats),
      prefix: config.nats.prefix,
      runId: flags.run,
      ...(flags.host !== undefined ? { hostId: flags.host } : {}),
      expiresInSeconds,
    });
    this.progress(
      `Secret: whoever holds these credentials acts as run ${flags.run} until ${minted.expiresAt.toISOString()}. Connect with inbox prefix ${minted.inboxPrefix}.`,
    );
    this.log(minted.creds.trimEnd());
    return {
      creds: minted.creds,
      user: minted.userPublicKey,
      expiresAt: minted.expiresAt.toISOString(),
      inboxPrefix: minted.inboxPrefix,
      permissions: minted.permissions,
    };
  }
}
