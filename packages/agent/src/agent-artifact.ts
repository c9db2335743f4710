/**
 * The agent artifact: dist/agent.bundle.mjs, the agent and the Python client in one file,
 * named by its sha256 so a provider uploads it once per content (`agents/<sha256>.mjs`) and a
 * bootstrap keeps it content-addressed on the machine.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { InternalError } from "@runctl/core";
import { z } from "zod";
import { AGENT_MAIN } from "./agent-status.ts";

/** dist/agent.bundle.json, written by the build next to the artifact. */
export const AgentArtifactInfo = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().positive(),
  version: z.string(),
  pythonClientSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AgentArtifactInfo = z.infer<typeof AgentArtifactInfo>;

export interface AgentArtifact extends AgentArtifactInfo {
  /** The artifact file on this machine. */
  path: string;
  /** The store key to upload it under: `agents/<sha256>.mjs`. */
  key: string;
}

export function agentArtifactKey(sha256: string): string {
  return `agents/${sha256}.mjs`;
}

let cached: AgentArtifact | undefined;

/**
 * The built artifact and its sha256. The file is hashed here and compared with the build's
 * record, so a stale or edited bundle is an error instead of a bootstrap that refuses it.
 */
export function agentArtifact(): AgentArtifact {
  if (cached !== undefined) return cached;
  const infoPath = join(AGENT_MAIN, "..", "agent.bundle.json");
  let info: AgentArtifactInfo;
  let bytes: Buffer;
  try {
    info = AgentArtifactInfo.parse(JSON.parse(readFileSync(infoPath, "utf8")));
    bytes = readFileSync(AGENT_MAIN);
  } catch (error) {
    throw new InternalError(`The agent artifact is not built or unreadable (${infoPath})`, {
      code: "agent_artifact_missing",
      hint: "Build it: `npm run build -w @runctl/agent` (or reinstall @runctl/agent).",
      cause: error,
    });
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (sha256 !== info.sha256 || bytes.length !== info.bytes) {
    throw new InternalError(`${AGENT_MAIN} does not match ${infoPath} (sha256 ${sha256})`, {
      code: "agent_artifact_stale",
      hint: "Rebuild it: `npm run build -w @runctl/agent` (or reinstall @runctl/agent).",
    });
  }
  cached = { ...info, path: AGENT_MAIN, key: agentArtifactKey(sha256) };
  return cached;
}
