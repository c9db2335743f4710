/**
 * What every publisher checks before a command joins a run's order, whatever
 * the channel: the draft's shape (`id` and `ts` filled in when missing), and
 * the size of its `commands.jsonl` line, which is what consumers read (on NATS
 * through the bridge).
 */
import { randomUUID } from "node:crypto";
import { type Command, CommandDraft, jsonDepth, MAX_JSON_DEPTH, UserError } from "@runctl/core";
import { z } from "zod";
import { MAX_COMMAND_BYTES } from "./layout.ts";

/** The command a draft stands for. Throws UserError `invalid_command`. */
export function commandFromDraft(draft: CommandDraft): Command {
  // Before zod and JSON.stringify walk it: a hostile depth would exhaust their stack.
  const issue = jsonIssue(draft);
  if (issue !== undefined) {
    throw new UserError(`invalid command: ${issue}`, {
      code: "invalid_command",
      hint: `Arguments must be JSON values: finite numbers, at most ${MAX_JSON_DEPTH} levels of nesting.`,
    });
  }
  const parsed = CommandDraft.safeParse(draft);
  if (!parsed.success) {
    throw new UserError(`invalid command: ${z.prettifyError(parsed.error)}`, {
      code: "invalid_command",
      hint: 'A command is {"path": string, "op"?: "set", "args"?: [...], "kwargs"?: {...}}.',
    });
  }
  // args and kwargs as given, not zod's copies: a copy drops a `__proto__` key.
  return {
    ...parsed.data,
    args: draft.args ?? [],
    kwargs: draft.kwargs ?? {},
    id: parsed.data.id ?? randomUUID(),
    ts: parsed.data.ts ?? Date.now() / 1000,
  };
}

/**
 * Why `value` cannot travel as the JSON it claims to be, or undefined: nesting
 * deeper than MAX_JSON_DEPTH, or a number JSON cannot write (NaN and ±Infinity
 * would silently become null).
 */
export function jsonIssue(value: unknown): string | undefined {
  if (jsonDepth(value) > MAX_JSON_DEPTH) return `nested more than ${MAX_JSON_DEPTH} levels deep`;
  const stack: unknown[] = [value];
  for (let v = stack.pop(); stack.length > 0 || v !== undefined; v = stack.pop()) {
    if (typeof v === "number" && !Number.isFinite(v)) return `${v} is not a JSON number`;
    if (typeof v === "bigint") return "BigInt values are not JSON";
    if (typeof v === "object" && v !== null) stack.push(...(Array.isArray(v) ? v : Object.values(v)));
  }
  return undefined;
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
