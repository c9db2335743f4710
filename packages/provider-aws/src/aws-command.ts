/** What every `runctl aws …` command shares (CloudCommand), for EC2 instances. */
import { CloudCommand, confirmFlags as cloudConfirmFlags } from "@runctl/command";
import type { Provider } from "@runctl/core";

export const confirmFlags = cloudConfirmFlags("Include machines tagged runctl:protected.");

export abstract class AwsCommand extends CloudCommand {
  protected readonly cloudName = "aws";
  protected readonly resourceNoun = { one: "instance", many: "machines" };

  protected aws(): Promise<Provider> {
    return this.cloud();
  }
}
