/**
 * Preemption on a machine runctl started (docs/protocol.md, "Preemption"): how the agent hears
 * that the machine is being reclaimed, and what it does with the run before it goes.
 *
 * - EC2 spot: IMDSv2 `spot/instance-action` is polled every 5 s (a session token from
 *   `PUT /latest/api/token`, then a GET carrying it); it answers 404 until EC2 sends the
 *   two-minute notice, then `{"action": "terminate"|"stop"|"hibernate", "time": "…Z"}`.
 *   Two plain HTTP calls: the agent bundle carries no AWS SDK.
 * - RunPod interruptible pods: the container gets SIGTERM and a few seconds before SIGKILL, as
 *   `docker stop` does it; the agent's SIGTERM is the notice.
 *
 * On a notice the run's ranks get `checkpoint.save` and the agent waits for every rank's ack
 * within a budget (EC2: until 20 s before the notice's time, at most 90 s; SIGTERM: 3 s), syncs
 * the run directory to the store once more, and stops the ranks: the run ends `preempted` with
 * `preempted_at` and the reason in meta.json, and is not run again.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { RunWriter } from "@runctl/tracker";
import { z } from "zod";
import type { Preemption, Supervisor } from "./supervisor.ts";

/** Where IMDS is when AWS_EC2_METADATA_SERVICE_ENDPOINT does not say otherwise. */
export const DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254";
/** How often `spot/instance-action` is asked (AWS recommends every 5 s). */
export const IMDS_POLL_MS = 5_000;
/** Kept between the checkpoint and the notice's time: the final sync and the ranks' stop. */
export const EC2_MARGIN_MS = 20_000;
/** The longest the ranks are given to checkpoint, whatever the notice says. */
export const MAX_CHECKPOINT_MS = 90_000;
/** The ranks' time to checkpoint after a SIGTERM (RunPod sends SIGKILL some seconds later). */
export const SIGTERM_CHECKPOINT_MS = 3_000;
const TOKEN_TTL_S = 21_600;
const REQUEST_MS = 2_000;

/** EC2's interruption notice, as IMDS serves it. */
export const InstanceAction = z.object({
  action: z.enum(["terminate", "stop", "hibernate"]),
  time: z.iso.datetime({ offset: true }),
});
export type InstanceAction = z.infer<typeof InstanceAction>;

/** A notice, or why the body is not one (logged and ignored: the next poll asks again). */
export function parseInstanceAction(
  body: string,
): { notice: InstanceAction; error?: undefined } | { notice?: undefined; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { error: `not JSON: ${JSON.stringify(body.slice(0, 120))}` };
  }
  const parsed = InstanceAction.safeParse(json);
  if (!parsed.success) return { error: z.prettifyError(parsed.error).replaceAll("\n", "; ") };
  return { notice: parsed.data };
}

/** The endpoint the instance's IMDS answers on, from the standard variable. */
export function imdsEndpoint(env: Readonly<Record<string, string | undefined>>): string {
  return (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, "");
}

/**
 * What EC2 says the instance is (IMDSv2 `instance-life-cycle`: `spot`, `on-demand`, `scheduled`),
 * or undefined when IMDS does not answer. A spot launch that fell back to on-demand
 * (`--spot-fallback`) has no notices to watch, and its shutdown stops it.
 */
export async function instanceLifeCycle(endpoint: string): Promise<string | undefined> {
  try {
    const token = await fetch(`${endpoint}/latest/api/token`, {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": "60" },
      signal: AbortSignal.timeout(REQUEST_MS),
    });
    if (!token.ok) return undefined;
    const res = await fetch(`${endpoint}/latest/meta-data/instance-life-cycle`, {
      headers: { "X-aws-ec2-metadata-token": (await token.text()).trim() },
      signal: AbortSignal.timeout(REQUEST_MS),
    });
    const text = (await res.text()).trim();
    return res.ok && /^[a-z-]{1,32}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

export interface SpotNoticeWatcher {
  stop(): void;
}

/**
 * Polls IMDSv2 for a spot interruption notice and calls `onNotice` once with the first valid
 * one. A failed request or a body that is not a notice is logged (once until it changes) and
 * the next poll asks again: nothing here ends the agent.
 */
export function watchSpotNotice(options: {
  endpoint: string;
  onNotice: (notice: InstanceAction) => void;
  log: (line: string) => void;
  intervalMs?: number;
}): SpotNoticeWatcher {
  const { endpoint, log } = options;
  let token: { value: string; until: number } | undefined;
  let stopped = false;
  let lastProblem = "";
  let timer: NodeJS.Timeout | undefined;
  const problem = (text: string) => {
    if (text !== lastProblem) log(`spot notice: ${text}`);
    lastProblem = text;
  };
  const session = async (): Promise<string> => {
    if (token && token.until > Date.now() + 60_000) return token.value;
    const res = await fetch(`${endpoint}/latest/api/token`, {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(TOKEN_TTL_S) },
      signal: AbortSignal.timeout(REQUEST_MS),
    });
    if (!res.ok) throw new Error(`IMDS token: HTTP ${res.status}`);
    token = { value: (await res.text()).trim(), until: Date.now() + TOKEN_TTL_S * 1000 };
    return token.value;
  };
  const poll = async (): Promise<InstanceAction | undefined> => {
    const res = await fetch(`${endpoint}/latest/meta-data/spot/instance-action`, {
      headers: { "X-aws-ec2-metadata-token": await session() },
      signal: AbortSignal.timeout(REQUEST_MS),
    });
    const body = await res.text();
    if (res.status === 404) {
      lastProblem = "";
      return undefined;
    }
    if (res.status === 401) {
      // The token expired or IMDS restarted: a new session next time.
      token = undefined;
      throw new Error("IMDS refused the session token (HTTP 401)");
    }
    if (!res.ok) throw new Error(`IMDS: HTTP ${res.status}`);
    const parsed = parseInstanceAction(body);
    if (parsed.error !== undefined) {
      problem(`ignored a spot/instance-action that is not a notice (${parsed.error})`);
      return undefined;
    }
    return parsed.notice;
  };
  const tick = async () => {
    let notice: InstanceAction | undefined;
    try {
      notice = await poll();
    } catch (error) {
      problem(error instanceof Error ? error.message : String(error));
    }
    if (stopped) return;
    if (notice) {
      stopped = true;
      options.onNotice(notice);
      return;
    }
    timer = setTimeout(() => void tick(), options.intervalMs ?? IMDS_POLL_MS);
    timer.unref();
  };
  void tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** How long the ranks get to checkpoint for an EC2 notice: until 20 s before its time, at most 90 s. */
export function ec2CheckpointBudgetMs(notice: InstanceAction, now = Date.now()): number {
  return Math.max(0, Math.min(MAX_CHECKPOINT_MS, Date.parse(notice.time) - EC2_MARGIN_MS - now));
}

/**
 * The run's end on a preempted machine: `checkpoint.save` to every rank, their acks awaited
 * within `budgetMs`, the run directory synced once more (`syncNow`), then the ranks are stopped
 * and the run ends `preempted`. Failures are logged: the ranks are stopped whatever happens.
 */
export async function preemptRun(
  supervisor: Supervisor,
  input: { reason: string; budgetMs: number; syncNow: () => Promise<void>; log: (line: string) => void },
): Promise<void> {
  const { log } = input;
  const at = new Date().toISOString();
  const deadline = Date.now() + input.budgetMs;
  const preemption: Preemption = { at, reason: input.reason };
  supervisor.markPreempted(preemption);
  log(`run ${supervisor.runId}: ${input.reason}; asking the ranks to checkpoint (${input.budgetMs} ms)`);
  let acked: number[] = [];
  let saved: number[] = [];
  try {
    const signal = AbortSignal.timeout(Math.max(1, input.budgetMs));
    const id = await supervisor.control(
      { path: "checkpoint.save", op: "set" },
      Math.max(1, Math.min(5_000, deadline - Date.now())),
    );
    const acks = await supervisor.acks(id, signal);
    acked = acks.flatMap((a) => (a.rank === undefined ? [] : [a.rank]));
    saved = acks.flatMap((a) => (a.status === "applied" && a.rank !== undefined ? [a.rank] : []));
    const missing = supervisor.worldSize - acks.length;
    log(
      `run ${supervisor.runId}: checkpoint.save applied by ${saved.length} of ${supervisor.worldSize} rank(s)${missing > 0 ? `, ${missing} did not answer in time` : ""}`,
    );
  } catch (error) {
    log(
      `run ${supervisor.runId}: checkpoint.save: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  preemption.detail = {
    checkpoint: {
      applied_ranks: saved,
      answered_ranks: acked,
      world_size: supervisor.worldSize,
    },
  };
  try {
    await input.syncNow();
  } catch (error) {
    log(
      `run ${supervisor.runId}: sync before stopping: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  supervisor.stop("SIGTERM");
}

/**
 * A run whose agent died while preempting it (meta.json has `preempted_at`, no end): it is
 * recorded `preempted` now, and not run again. Returns whether it was such a run.
 */
export async function recordUnfinishedPreemption(runDir: string): Promise<boolean> {
  let meta: { preempted_at?: unknown };
  try {
    meta = JSON.parse(await readFile(join(runDir, "meta.json"), "utf8")) as { preempted_at?: unknown };
  } catch {
    return false;
  }
  if (typeof meta.preempted_at !== "string") return false;
  RunWriter.open(runDir).finish("preempted", { error: null });
  return true;
}
