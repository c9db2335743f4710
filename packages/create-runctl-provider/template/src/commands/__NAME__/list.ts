import { RunctlCommand } from "@runctl/command";
import type { Resource } from "@runctl/core";

export default class List extends RunctlCommand<{ resources: Resource[] }> {
  static override summary = "List the __NAME__ machines runctl launched.";
  static override examples = ["<%= config.bin %> __NAME__ list", "<%= config.bin %> __NAME__ list --json"];

  async run(): Promise<{ resources: Resource[] }> {
    await this.parse(List);
    // The provider as runctl's registry hands it out (configured from [__NAME__] in .runctl.toml,
    // every answer checked against the contract). For methods beyond the Provider contract, build
    // your own: `new __CLASS__Provider(config, context)`.
    const resources = await (await this.provider("__NAME__")).list({ managedOnly: false });
    if (resources.length === 0) this.progress("No __NAME__ machines.");
    for (const r of resources) this.log(`${r.id}  ${r.state}  ${r.instanceType}  ${r.region ?? ""}`);
    return { resources };
  }
}
