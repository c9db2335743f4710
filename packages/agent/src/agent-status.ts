/**
 * The one line an agent started by a launcher writes on its status pipe: the
 * run started (its directory exists and its ranks are spawned), or the error
 * that kept it from starting, with the code and hint the CLI shows.
 */
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
 * this. Tests that import the sources still start the built bundle.
 */
export const AGENT_MAIN = fileURLToPath(
  new URL(
    import.meta.url.endsWith(".ts") ? "../dist/agent.bundle.mjs" : "./agent.bundle.mjs",
    import.meta.url,
  ),
);
