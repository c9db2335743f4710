/**
 * A foreground `runctl local`: the launch spec its flags make, and the run
 * followed to its end (signals forwarded, the exit code the script's). The
 * command and the binary's fast path (local-fast-path.ts) both run it, so the
 * two cannot drift apart.
 */
import type { LaunchSpec, Provider } from "@runctl/core";
import type { LocalLaunchOptions } from "@runctl/provider-local";
import { attachedRun } from "@runctl/provider-local/foreground";
import { runDirOf } from "@runctl/tracker";
import { RunEndedError } from "./run-errors.ts";
import { type RunEnd, RunFollower } from "./run-follow.ts";

/** What `runctl local` was told, its flags already checked. */
export interface LocalRequest {
  target: string;
  scriptArgs: string[];
  cwd: string;
  nprocPerNode: number;
  gpus?: string | undefined;
  python?: string | undefined;
  raw: boolean;
  name?: string | undefined;
  tags: string[];
  config?: Record<string, unknown> | undefined;
  resume?: { from: string; passArg: boolean } | undefined;
  checkpointDir: string;
  /** An existing run to add an attempt to (`--run`). */
  continueRun?: string | undefined;
  runId?: string | undefined;
  graceSeconds: number;
  nats?: LocalLaunchOptions["nats"];
  detach: boolean;
  quiet: boolean;
  json: boolean;
}

export function localLaunchSpec(r: LocalRequest): LaunchSpec {
  const options: LocalLaunchOptions = {
    cwd: r.cwd,
    nprocPerNode: r.nprocPerNode,
    ...(r.gpus !== undefined ? { gpus: r.gpus } : {}),
    ...(r.python ? { python: r.python } : {}),
    raw: r.raw,
    ...(r.name ? { name: r.name } : {}),
    runTags: r.tags,
    ...(r.config ? { config: r.config } : {}),
    ...(r.resume ? { resume: r.resume } : {}),
    checkpointDir: r.checkpointDir,
    continueRun: r.continueRun !== undefined,
    graceMs: r.graceSeconds * 1000,
    ...(r.nats ? { nats: r.nats } : {}),
    // With --json, stdout is for the one JSON document: the run's output goes to stderr.
    ...(r.detach ? {} : { attach: r.quiet ? "quiet" : r.json ? "stderr" : "stdout" }),
  };
  return {
    instanceType: "local",
    command: [r.target, ...r.scriptArgs],
    ...(r.continueRun ? { runId: r.continueRun } : r.runId ? { runId: r.runId } : {}),
    providerOptions: options,
  };
}

/**
 * Launches `spec` in the foreground and waits for the run's end; a run that
 * did not complete is thrown as a RunEndedError carrying the script's exit code.
 */
export async function runInForeground(
  provider: Provider,
  spec: LaunchSpec,
  runsDir: string,
  options: { quiet: boolean; progress: (message: string) => void },
): Promise<{ run: Record<string, unknown> }> {
  // Handlers go in before the run exists: a Ctrl-C while it starts is forwarded once it has.
  const follower = new RunFollower();
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map(
    (s) => [s, () => follower.forward(s === "SIGHUP" ? "SIGTERM" : s)] as const,
  );
  for (const [signal, handler] of handlers) process.on(signal, handler);
  let ended: RunEnd;
  try {
    const placement = await provider.launch(spec);
    const runDir = runDirOf(runsDir, placement.resourceId);
    if (!options.quiet) options.progress(`runctl: run ${placement.resourceId} (${runDir})`);
    // The local provider supervises a foreground run in this process; another agent is followed by pid.
    const here = attachedRun(placement.resourceId);
    ended = here ? await follower.followHere(here) : await follower.follow(runDir);
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
  const run = { id: ended.runId, dir: ended.runDir, status: ended.status, exit_code: ended.exitCode };
  if (ended.status !== "completed") {
    throw new RunEndedError(`Run ${ended.runId} ${ended.status} (exit code ${ended.exitCode})`, {
      code: `run_${ended.status}`,
      hint: `See its output with \`runctl logs ${ended.runId}\` and its record with \`runctl show ${ended.runId}\`.`,
      exitCode: ended.exitCode,
      details: { run },
    });
  }
  if (!options.quiet) options.progress(`runctl: run ${ended.runId} completed`);
  return { run };
}
