/**
 * What every publisher checks before a command joins a run's order, whatever
 * the channel: the draft's shape (`id` and `ts` filled in when missing), and
 * the size of its `commands.jsonl` line, which is what consumers read (on NATS
 * through the bridge).
 */
import { randomUUID } from "node:crypto";
import { type Command, CommandDraft, UserError } from "@runctl/core";
import { z } from "zod";
import { MAX_COMMAND_BYTES } from "./layout.ts";

/** The command a draft stands for. Throws UserError `invalid_command`. */
export function commandFromDraft(draft: CommandDraft): Command {
  const parsed = CommandDraft.safeParse(draft);
  if (!parsed.success) {
    throw new UserError(`invalid command: ${z.prettifyError(parsed.error)}`, {
      code: "invalid_command",
      hint: 'A command is {"path": string, "op"?: "set", "args"?: [...], "kwargs"?: {...}}.',
    });
  }
  return { ...parsed.data, id: parsed.data.id ?? randomUUID(), ts: parsed.data.ts ?? Date.now() / 1000 };
}

/** The command's line (without newline). Throws UserError `payload_too_large` past 64 KiB, newline included. */
export function commandLine(command: Command): string {
  const line = JSON.stringify(command);
  const bytes = Buffer.byteLength(line, "utf8") + 1;
  if (bytes > MAX_COMMAND_BYTES) {
    throw new UserError(
      `the command line for ${command.path} is ${bytes} bytes; the limit is ${MAX_COMMAND_BYTES} (64 KiB)`,
      {
        code: "payload_too_large",
        hint: "Send large values by reference: write them to a file and pass its path as the argument.",
        details: { bytes, limit: MAX_COMMAND_BYTES },
      },
    );
  }
  return line;
}
