/**
 * The one line an agent started by a launcher writes on its status pipe: the
 * run started (its directory exists and its ranks are spawned), or the error
 * that kept it from starting, with the code and hint the CLI shows.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** Names the inherited file descriptor the status line goes to. */
export const AGENT_STATUS_FD_VARIABLE = "RUNCTL_AGENT_STATUS_FD";

export const AgentStatus = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), runId: z.string(), runDir: z.string(), pid: z.number().int() }),
  z.strictObject({
    ok: z.literal(false),
    error: z.object({
      kind: z.enum(["user", "provider", "config", "internal"]),
      code: z.string(),
      message: z.string(),
      hint: z.string().optional(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  }),
]);
export type AgentStatus = z.infer<typeof AgentStatus>;

/**
 * The agent's entry as one bundled file (scripts/bundle.mjs): launchers start
 * this. Tests that import the sources still start the built bundle. Code of
 * this package bundled into another's file (the CLI's `runctl local` fast
 * path) finds it through the package itself.
 */
export const AGENT_MAIN = agentMain();

function agentMain(): string {
  const beside = fileURLToPath(
    new URL(
      import.meta.url.endsWith(".ts") ? "../dist/agent.bundle.mjs" : "./agent.bundle.mjs",
      import.meta.url,
    ),
  );
  if (existsSync(beside)) return beside;
  try {
    const pjson = createRequire(import.meta.url).resolve("@runctl/agent/package.json");
    return join(dirname(pjson), "dist", "agent.bundle.mjs");
  } catch {
    return beside;
  }
}
