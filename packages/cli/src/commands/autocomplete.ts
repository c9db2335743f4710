import { Args, Flags } from "@oclif/core";
import { wrapForeign } from "../foreign-command.ts";

/**
 * `runctl autocomplete` from @oclif/plugin-autocomplete, answering `--json`
 * with runctl's envelope (the instructions as `output`).
 */
export default wrapForeign("@oclif/plugin-autocomplete", "autocomplete", {
  summary: "Display autocomplete installation instructions (bash, zsh, powershell).",
  examples: [
    "<%= config.bin %> autocomplete",
    "<%= config.bin %> autocomplete bash",
    "<%= config.bin %> autocomplete --refresh-cache",
  ],
  args: {
    shell: Args.string({
      description: "Shell type",
      options: ["zsh", "bash", "powershell"],
      required: false,
    }),
  },
  flags: {
    "refresh-cache": Flags.boolean({
      char: "r",
      description: "Refresh cache (ignores displaying instructions)",
    }),
  },
});
