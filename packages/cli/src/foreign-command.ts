/**
 * runctl's envelope around commands that come from oclif's own plugins
 * (@oclif/plugin-plugins, @oclif/plugin-autocomplete). Those print raw arrays
 * or plain text for `--json`, or have no `--json` at all; a command of the
 * CLI with the same id takes precedence over a core plugin's, so each of them
 * is re-exported here through `wrapForeign`, which runs the original without
 * `--json` and answers with `{"success": true, …}` (or the error envelope).
 *
 * With `--json`, what the original writes to stdout is captured (ANSI codes
 * removed) and returned as `output`, so stdout stays one JSON document.
 */
import { stripVTControlCharacters } from "node:util";
import type { Command, Config, Interfaces } from "@oclif/core";
import { RunctlCommand } from "./command.ts";

export interface ForeignCommandClass {
  summary?: string;
  description?: string;
  examples?: Command.Example[];
  flags?: Interfaces.FlagInput;
  args?: Interfaces.ArgInput;
  strict?: boolean;
  hidden?: boolean;
  run(argv: string[], config: Config): Promise<unknown>;
}

/** Runs `original` with `argv` (never `--json`), capturing its stdout when `capture` is set. */
export async function runForeign(
  original: ForeignCommandClass,
  argv: string[],
  config: Config,
  capture: boolean,
): Promise<{ result: unknown; output: string }> {
  const args = argv.filter((a) => a !== "--json");
  if (!capture) return { result: await original.run(args, config), output: "" };
  const write = process.stdout.write;
  let output = "";
  process.stdout.write = ((chunk: string | Uint8Array) => {
    output += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stdout.write;
  try {
    const result = await original.run(args, config);
    return { result, output: stripVTControlCharacters(output) };
  } finally {
    process.stdout.write = write;
  }
}

/** Runs command `foreignId` of the core plugin `foreignPlugin`; see `wrapForeign`. */
export class ForeignCommand extends RunctlCommand {
  static foreignPlugin = "";
  static foreignId = "";

  async run(): Promise<Record<string, unknown>> {
    const ctor = this.constructor as typeof ForeignCommand;
    const original = await loadForeign(this.config, ctor.foreignPlugin, ctor.foreignId);
    const { output } = await runForeign(original, this.argv, this.config, this.jsonEnabled());
    return output.trim() === "" ? {} : { output: output.trimEnd() };
  }
}

/**
 * A runctl command with the summary, flags and args of `shape`, that runs
 * command `id` of the core plugin `plugin` (loaded through oclif, so the
 * original runs exactly as it would on its own).
 */
export function wrapForeign(plugin: string, id: string, shapeOf: unknown): typeof ForeignCommand {
  const shape = shapeOf as ForeignCommandClass;
  return class extends ForeignCommand {
    static override foreignPlugin = plugin;
    static override foreignId = id;
    static override summary = shape.summary;
    static override description = shape.description;
    static override examples = shape.examples ?? [];
    static override flags = shape.flags ?? {};
    static override args = shape.args ?? {};
    static override strict = shape.strict ?? true;
    static override hidden = shape.hidden ?? false;
  };
}

export async function loadForeign(config: Config, plugin: string, id: string): Promise<ForeignCommandClass> {
  const owner = config.plugins.get(plugin);
  if (!owner) throw new Error(`${plugin} is not installed`);
  return (await owner.findCommand(id, { must: true })) as unknown as ForeignCommandClass;
}
