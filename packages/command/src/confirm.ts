/**
 * The question asked before a command stops, terminates or deletes something. Without a
 * terminal nobody can answer, so it refuses and names --yes and --dry-run; the plan and the
 * question go to stderr, keeping stdout for --json.
 */
import { createInterface } from "node:readline/promises";
import { UserError } from "@runctl/core";
import { note } from "./output.ts";

/** Resolves when the person at the terminal says yes; throws `confirmation_required` or `cancelled` otherwise. */
export async function confirmAction(question: string, plan: readonly string[]): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new UserError(`Refusing to ${question} without confirmation: stdin is not a terminal`, {
      code: "confirmation_required",
      hint: "Pass --yes to go ahead, or --dry-run to see what would be done.",
    });
  }
  for (const line of plan) note(line);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const unanswered = new AbortController();
  rl.on("SIGINT", () => unanswered.abort());
  rl.on("close", () => unanswered.abort());
  let yes = false;
  try {
    yes = /^y(es)?$/i.test((await rl.question(`${question}? [y/N] `, { signal: unanswered.signal })).trim());
  } catch (error) {
    if (!unanswered.signal.aborted) throw error;
  } finally {
    rl.close();
  }
  if (!yes) {
    throw new UserError("Cancelled; nothing was changed", {
      code: "cancelled",
      hint: "Rerun with --dry-run to review, or with --yes to go ahead without the question.",
    });
  }
}
