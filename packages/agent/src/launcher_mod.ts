/**
 * `@runctl/agent/launcher`: what the launching side needs to start an agent
 * process (its entry, the status line it writes, the command resolution) and
 * to reach its ranks' process groups, without loading the supervisor, NATS
 * or the tracker. Also exported from the package's main entry.
 */
export {
  type AgentArtifact,
  AgentArtifactInfo,
  agentArtifact,
  agentArtifactKey,
} from "./agent-artifact.ts";
export { AGENT_MAIN, AGENT_STATUS_FD_VARIABLE, AgentStatus } from "./agent-status.ts";
export {
  findOnPath,
  type LaunchCommand,
  type LaunchKind,
  pythonFor,
  type ResolveLaunchOptions,
  resolveLaunchCommand,
} from "./launch-command.ts";
export { isProcessLiving, killGroup, livingMembers } from "./process-group.ts";
