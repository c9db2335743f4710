import { access, mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { starterConfig, UserError, userConfigPath } from "@runctl/core";
import { RunctlCommand } from "../command.ts";

interface InitResult {
  [key: string]: unknown;
  path: string;
  created: boolean;
}

export default class Init extends RunctlCommand<InitResult> {
  static override summary = "Write a commented starter .runctl.toml.";
  static override description =
    "Every key is listed with its default and what it does; uncomment what you need. Provider sections are validated by the provider plugins that own them.";
  static override examples = [
    "<%= config.bin %> init",
    "<%= config.bin %> init --user",
    "<%= config.bin %> init --dir ../project --force",
  ];
  static override flags = {
    dir: Flags.directory({ description: "Directory to write .runctl.toml into.", default: "." }),
    user: Flags.boolean({
      description: "Write the user config file (XDG config dir) instead.",
      default: false,
    }),
    force: Flags.boolean({ description: "Overwrite an existing file.", default: false }),
  };

  async run(): Promise<InitResult> {
    const { flags } = await this.parse(Init);
    const path = flags.user
      ? userConfigPath(process.env, homedir())
      : join(resolve(flags.dir), ".runctl.toml");
    const exists = await access(path).then(
      () => true,
      () => false,
    );
    if (exists && !flags.force) {
      throw new UserError(`${path} already exists`, {
        code: "config_exists",
        hint: "Edit it, inspect it with `runctl config show`, or pass --force to replace it.",
      });
    }
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, starterConfig(), { mode: 0o644 });
    this.log(`Wrote ${path}`);
    return { path, created: true };
  }
}
