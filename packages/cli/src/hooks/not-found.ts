/**
 * `command_not_found` hook: an unknown command is a user error with runctl's
 * envelope (so `--json` still gets one JSON document) and, when a command or
 * topic is close to what was typed, a "did you mean" hint. Nothing is run in
 * its place: guessing is fine for a hint, not for launching a training run.
 */
import type { Hook } from "@oclif/core";
import { UserError } from "@runctl/core";
import { suggestCommand } from "../did-you-mean.ts";

const hook: Hook.CommandNotFound = async function (options) {
  const known = [
    ...this.config.commands.filter((c) => !c.hidden).map((c) => c.id),
    ...this.config.topics.filter((t) => !t.hidden).map((t) => t.name),
  ];
  const separator = this.config.topicSeparator;
  const { unknown, suggestion } = suggestCommand(options.id, known);
  const shown = (id: string) => id.replaceAll(":", separator);
  const error = new UserError(`Unknown command: ${this.config.bin} ${shown(unknown)}`, {
    code: "unknown_command",
    hint: suggestion
      ? `Did you mean \`${this.config.bin} ${shown(suggestion)}\`? Run \`${this.config.bin} --help\` to list commands.`
      : `Run \`${this.config.bin} --help\` to list commands.`,
  });
  throw Object.assign(error, { oclif: { exit: error.exitCode } });
};

export default hook;
