import { join } from "node:path";
import { Flags } from "@oclif/core";
import { confirmAction } from "@runctl/command";
import {
  ConfigError,
  findProjectConfig,
  hasErrorCode,
  PROJECT_CONFIG_NAME,
  setConfigValue,
  UserError,
} from "@runctl/core";
import { AwsCommand } from "../../aws-command.ts";
import { AwsConfig } from "../../aws-options.ts";
import { DEFAULT_ROLE_NAME, policyText } from "../../instance-policy.ts";

export default class AwsSetup extends AwsCommand {
  static override summary = "Create or check the instance profile runctl machines get (idempotent).";
  static override description =
    "Makes sure of an IAM role that only EC2 may assume, tagged CreatedBy=runctl, whose one inline policy lets a machine read and write only the store's runs/ and hosts/ prefixes; an instance profile holding it; and runctl's security group with no inbound rule. Each step says created, already right, or would change. A role that exists with another trust or policy is shown as a diff and changed only when confirmed (--yes); a role runctl did not make is never changed. No access key is created: machines get the role's short-lived credentials from EC2.";
  static override examples = [
    "<%= config.bin %> aws setup --store s3://my-bucket/runctl --dry-run",
    "<%= config.bin %> aws setup --store s3://my-bucket/runctl --save",
    "<%= config.bin %> aws setup --role-name runctl-team-a --yes --json",
  ];
  static override flags = {
    store: Flags.string({
      description: "The store machines write, s3://bucket/prefix (default: [aws] store).",
    }),
    "role-name": Flags.string({
      description: "Name of the role and of its instance profile.",
      default: DEFAULT_ROLE_NAME,
    }),
    "dry-run": Flags.boolean({ description: "Show what would be done; change nothing.", default: false }),
    yes: Flags.boolean({
      char: "y",
      description: "Replace a runctl role's differing trust or policy without asking.",
      default: false,
    }),
    save: Flags.boolean({
      description: "Write `[aws] iam_instance_profile` to the project's .runctl.toml.",
      default: false,
    }),
  };

  /** On a terminal, asks (showing the diff); without one, refuses with the diff on stderr and in the error. */
  async #confirm(question: string, plan: readonly string[]): Promise<void> {
    try {
      await confirmAction(question, plan);
    } catch (error) {
      if (!hasErrorCode(error, "confirmation_required")) throw error;
      for (const line of plan) this.progress(line);
      throw new UserError((error as UserError).message, {
        code: "confirmation_required",
        hint: "Review the diff above; rerun with --yes to apply it, or with --dry-run to see the whole plan.",
        details: { changes: [...plan] },
      });
    }
  }

  async run(): Promise<Record<string, unknown>> {
    const { flags } = await this.parse(AwsSetup);
    const loaded = await this.runctlConfig();
    const config = AwsConfig.parse((loaded.config as Record<string, unknown>).aws ?? {});
    const store = flags.store ?? config.store;
    if (store === undefined) {
      throw new ConfigError("No store to scope the machines' policy to", {
        code: "store_missing",
        hint: "Pass --store s3://bucket/prefix or set `[aws] store` in .runctl.toml.",
      });
    }
    const [{ AwsProvider, resolveRegion }, { setupInstanceProfile, setupStepLines }] = await Promise.all([
      import("../../aws-provider.ts"),
      import("../../instance-profile-setup.ts"),
    ]);
    const region = await resolveRegion(config, process.env);
    // Setup needs the provider's own methods (the security group), beyond the Provider contract.
    const provider = new AwsProvider({ config, env: process.env, region });
    let result: Awaited<ReturnType<typeof setupInstanceProfile>>;
    try {
      result = await setupInstanceProfile({
        config,
        env: process.env,
        region,
        store,
        roleName: flags["role-name"],
        dryRun: flags["dry-run"],
        confirm: flags.yes ? async () => {} : (question, plan) => this.#confirm(question, plan),
        securityGroup: provider,
      });
    } finally {
      provider.destroy();
    }
    for (const step of result.steps) for (const line of setupStepLines(step)) this.log(line);
    if (result.steps.some((s) => s.resource === "instance-profile" && s.status === "created")) {
      // IAM is eventually consistent: EC2 may not know a new profile for a few seconds.
      this.progress(
        "Note: EC2 may refuse a brand-new instance profile for about ten seconds; retry a launch refused meanwhile.",
      );
    }
    this.log(`\nThe role's policy (${result.policyName}):\n${policyText(result.policy)}`);
    const key = "aws.iam_instance_profile";
    const line = `iam_instance_profile = "${result.instanceProfile}"`;
    let saved: string | undefined;
    if (flags.save && !flags["dry-run"]) {
      const file = (await findProjectConfig(process.cwd())) ?? join(process.cwd(), PROJECT_CONFIG_NAME);
      await setConfigValue({
        file,
        key,
        value: result.instanceProfile,
        sections: (await this.registry()).configSections(),
      });
      saved = file;
      this.log(`\nSaved ${key} = "${result.instanceProfile}" in ${file}: launches now use the profile.`);
    } else if (config.iam_instance_profile === result.instanceProfile) {
      this.log(`\nLaunches use it already ([aws] ${line}).`);
    } else {
      this.log(`\nLaunches use it once .runctl.toml has (or rerun with --save):\n[aws]\n${line}`);
    }
    return { ...result, config: { key, value: result.instanceProfile, line }, ...(saved ? { saved } : {}) };
  }
}
