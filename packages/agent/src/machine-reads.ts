/**
 * What `runctl <cloud> logs` and `processes` read of a machine's run when nothing on the machine
 * answers: its store copy (output.log, a failed bootstrap's report, meta.json's rank process
 * groups and heartbeat, the last system sample). The run is found as `monitor` finds it.
 */
import {
  type ArtifactStore,
  BOOTSTRAP_ERROR_FILE,
  BootstrapReport,
  type Provider,
  type RunMeta,
  TERMINAL_STATUSES,
} from "@runctl/core";
import {
  findMachineRun,
  lastLines,
  type MachineRunBasis,
  noRunError,
  storedMeta,
} from "./machine-monitor.ts";

export interface MachineStoreLogs {
  runId: string;
  basis: MachineRunBasis;
  /** The run's output.log from its store copy (its last `tailLines` lines), empty before it synced. */
  output: string;
  /** Why the machine's bootstrap failed, when it uploaded its report. */
  bootstrapError?: { code: string; reason: string; at: string };
}

/**
 * A machine's logs where its provider has no log API (RunPod): its run's output from the store,
 * and the report a failed bootstrap uploads there.
 */
export async function machineStoreLogs(
  provider: Provider,
  machineId: string,
  store: ArtifactStore,
  command: string,
  tailLines?: number,
): Promise<MachineStoreLogs> {
  const found = await findMachineRun(provider, machineId, store);
  if (found.runId === undefined || found.basis === undefined) throw noRunError(found.resource, command);
  const { StoreRunSource } = await import("@runctl/tracker");
  const source = new StoreRunSource(store);
  const [output, report] = await Promise.all([
    source.readFile(found.runId, "output.log").catch(() => null),
    source.readFile(found.runId, BOOTSTRAP_ERROR_FILE).catch(() => null),
  ]);
  const text = (output ?? Buffer.alloc(0)).toString("utf8");
  const parsed = report === null ? undefined : BootstrapReport.safeParse(jsonOrNull(report));
  return {
    runId: found.runId,
    basis: found.basis,
    output: tailLines === undefined ? text : lastLines(Buffer.from(text), tailLines).toString("utf8"),
    ...(parsed?.success
      ? { bootstrapError: { code: parsed.data.code, reason: parsed.data.reason, at: parsed.data.at } }
      : {}),
  };
}

function jsonOrNull(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return null;
  }
}

export interface MachineProcesses {
  runId: string;
  basis: MachineRunBasis;
  /** What the table is built from: the store copy, synced every couple of seconds. */
  from: string;
  status: RunMeta["status"] | "pending";
  /** The run's last heartbeat (its agent's, every 10 s while it runs). */
  heartbeatAt: string | null;
  /** One row per rank: its process group (the rank's pid) as the agent started it. */
  ranks: { rank: number; pid: number | null; state: string }[];
  /** The agent's last system sample (the whole run's processes, the machine's memory), if any. */
  system: Record<string, unknown> | null;
}

/**
 * The ranks of a machine's current run, from its store copy (meta.json's rank process groups
 * and heartbeat, the last line of system.jsonl): no provider runs a command on the machine.
 */
export async function machineProcesses(
  provider: Provider,
  machineId: string,
  store: ArtifactStore,
  command: string,
): Promise<MachineProcesses> {
  const found = await findMachineRun(provider, machineId, store);
  if (found.runId === undefined || found.basis === undefined) throw noRunError(found.resource, command);
  const { StoreRunSource } = await import("@runctl/tracker");
  const source = new StoreRunSource(store);
  const meta = await storedMeta(source, found.runId);
  const raw = meta as (RunMeta & { rank_pgids?: unknown }) | undefined;
  const pgids = Array.isArray(raw?.rank_pgids) ? raw.rank_pgids.filter((p) => typeof p === "number") : [];
  const world = meta?.world_size ?? pgids.length;
  const ended = meta !== undefined && TERMINAL_STATUSES.has(meta.status);
  const state = meta === undefined ? "pending" : ended ? "exited" : meta.status;
  const system = await source.readFile(found.runId, "system.jsonl").catch(() => null);
  const last = system
    ?.toString("utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .at(-1);
  const parsedLast = last === undefined ? null : jsonOrNull(Buffer.from(last));
  return {
    runId: found.runId,
    basis: found.basis,
    from: `${source.location}/${found.runId}`,
    status: meta?.status ?? "pending",
    heartbeatAt: meta?.heartbeat_at ?? null,
    ranks: Array.from({ length: world }, (_, rank) => ({ rank, pid: pgids[rank] ?? null, state })),
    system:
      parsedLast !== null && typeof parsedLast === "object" && !Array.isArray(parsedLast)
        ? (parsedLast as Record<string, unknown>)
        : null,
  };
}
