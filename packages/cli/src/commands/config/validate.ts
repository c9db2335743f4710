import { RunctlCommand } from "../../command.ts";

export default class ConfigValidate extends RunctlCommand {
  static override summary =
    "Check every configuration source; exit 3 naming the file, key and line of the first problem.";
  static override examples = [
    "<%= config.bin %> config validate",
    "<%= config.bin %> config validate --json",
  ];

  async run(): Promise<Record<string, unknown>> {
    await this.parse(ConfigValidate);
    const loaded = await this.runctlConfig();
    const files = loaded.sources.flatMap((s) => (s.path ? [s.path] : []));
    this.log(
      files.length > 0 ? `Valid: ${files.join(", ")}` : "Valid (defaults only; no config files found).",
    );
    return { valid: true, files };
  }
}
