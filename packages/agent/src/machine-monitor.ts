/**
 * `runctl <cloud> monitor <machine>`, `logs` and `processes`, for any provider: which run a
 * machine is on, and that run read from its store copy (or followed live, as `runctl logs -f`
 * follows it). A machine says which run it is on in two places: the HostState its agent keeps in
 * the store (machines that take runs on their inbox, tagged `runctl:host`), and the run-id
 * tag or label it was launched with (`runctl <cloud> train <script>`). The first wins: it
 * follows the machine from run to run.
 */
import type { NatsSettings } from "@runctl/control";
import {
  type ArtifactStore,
  HostState,
  hostStateKey,
  type NatsConfig,
  type Provider,
  type Resource,
  type RunMeta,
  TAG_HOST,
  TAG_RUN_ID,
  TERMINAL_STATUSES,
  UserError,
} from "@runctl/core";
import type { RunSource } from "@runctl/tracker";
import type { FollowEnd, FollowRenewal } from "./remote-follow.ts";

/** How a machine's run was found. */
export type MachineRunBasis = "host_state" | "tag";

export interface MachineRun {
  resource: Resource;
  /** The run the machine is on (or ran last); undefined when it names none. */
  runId: string | undefined;
  basis: MachineRunBasis | undefined;
  /** What the machine's agent last said about itself, when it keeps a HostState. */
  host?: HostState;
}

/** The machine (as its provider reports it) and the run it is on, from its HostState or its tags. */
export async function findMachineRun(
  provider: Provider,
  machineId: string,
  store: ArtifactStore,
): Promise<MachineRun> {
  const resource = await provider.status(machineId);
  const hostId = resource.tags[TAG_HOST];
  if (hostId !== undefined) {
    const host = await readHostState(store, hostId);
    if (host?.run !== undefined) return { resource, runId: host.run, basis: "host_state", host };
  }
  const tagged = resource.tags[TAG_RUN_ID];
  if (tagged !== undefined) return { resource, runId: tagged, basis: "tag" };
  return { resource, runId: undefined, basis: undefined };
}

async function readHostState(store: ArtifactStore, hostId: string): Promise<HostState | undefined> {
  const key = hostStateKey(hostId);
  if ((await store.head(key)) === null) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of await store.getStream(key)) chunks.push(Buffer.from(chunk as Uint8Array));
  const { parseAt } = await import("@runctl/core");
  return parseAt(HostState, JSON.parse(Buffer.concat(chunks).toString("utf8")), {
    what: `${store.url}/${key}`,
    kind: "provider",
    code: "bad_host_state",
  });
}

/** Seconds as `1h02m`, `3m05s`, `42s`. */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Seconds since the machine was launched, or null when the provider does not say. */
export function uptimeSeconds(resource: Resource, now = new Date()): number | null {
  if (resource.launchedAt === null) return null;
  return Math.max(0, (now.getTime() - Date.parse(resource.launchedAt)) / 1000);
}

/** The machine's line: id, state, type, market, $/h and uptime. */
export function machineStateLine(resource: Resource, now = new Date()): string {
  const uptime = uptimeSeconds(resource, now);
  const live = resource.state === "running" || resource.state === "pending";
  return [
    `${resource.id}  ${resource.state}  ${resource.instanceType}  ${resource.market}`,
    resource.pricePerHour === null ? "$?/h" : `$${resource.pricePerHour.toFixed(4)}/h`,
    uptime === null || !live ? "" : `up ${formatUptime(uptime)}`,
  ]
    .filter((part) => part !== "")
    .join("  ");
}

/** A machine that no longer runs anything: what follows it stops waiting. */
export function machineGone(resource: Resource): boolean {
  return resource.state === "stopped" || resource.state === "terminated" || resource.state === "stopping";
}

/** The run's summary as `--json` gives it. */
export function runSummary(meta: RunMeta) {
  return {
    id: meta.id,
    status: meta.status,
    exitCode: meta.exit_code ?? null,
    startedAt: meta.started_at ?? null,
    finishedAt: meta.finished_at ?? null,
    costUsd: meta.cost_usd ?? null,
    ...(meta.error ? { error: meta.error } : {}),
  };
}

/** meta.json of the run from its store copy (bootstrap failures read as failed), or undefined before it has one. */
export async function storedMeta(source: RunSource, runId: string): Promise<RunMeta | undefined> {
  const { sourceMeta, withEffectiveStatus } = await import("@runctl/tracker");
  return sourceMeta(source, runId).then(withEffectiveStatus, (error: unknown) => {
    if ((error as { code?: unknown }).code === "run_not_found") return undefined;
    throw error;
  });
}

/** The refusal when a machine names no run. */
export function noRunError(resource: Resource, command: string): UserError {
  return new UserError(`${resource.id} names no run: no ${TAG_RUN_ID} tag and no host state in the store`, {
    code: "no_run",
    hint: `Only machines that runctl started a run on have one (\`${command} train\`); see \`${command} status ${resource.id}\`.`,
  });
}

export interface FollowMachineOptions {
  provider: Provider;
  machine: MachineRun & { runId: string };
  source: RunSource;
  nats?: NatsSettings | undefined;
  renew?: FollowRenewal | undefined;
  write: (bytes: Uint8Array) => void;
  note: (message: string) => void;
  /** How often the provider is asked whether the machine is still there; default 30 s. */
  machinePollMs?: number;
}

export interface FollowMachineEnd {
  status: FollowEnd;
  /** The run's exit code (the store copy's), 1 when the run did not end by itself. */
  exitCode: number;
  meta?: RunMeta;
  /** The machine's last state, when it went away before its run ended. */
  machineState?: Resource["state"];
}

/**
 * Follows the machine's run until it ends or the machine goes away (stopped, terminated: asked
 * of the provider every `machinePollMs`), over NATS when `nats` is given, else by polling the
 * store copy.
 */
export async function followMachine(options: FollowMachineOptions): Promise<FollowMachineEnd> {
  const { provider, machine, source, write, note } = options;
  const runId = machine.runId;
  const { followRemote, followStore } = await import("./remote-follow.ts");
  const gone = new AbortController();
  let lastState: Resource["state"] = machine.resource.state;
  const poll = setInterval(() => {
    void provider.status(machine.resource.id).then(
      (r) => {
        lastState = r.state;
        if (machineGone(r)) gone.abort();
      },
      (error: unknown) => {
        if ((error as { code?: unknown }).code === "not_found") {
          lastState = "terminated";
          gone.abort();
        }
      },
    );
  }, options.machinePollMs ?? 30_000);
  let status: FollowEnd;
  try {
    // A machine already gone: one last read of what its run left, then the end.
    if (machineGone(machine.resource)) gone.abort();
    status = options.nats
      ? await followRemote({
          runId,
          settings: options.nats,
          source,
          write,
          note,
          signal: gone.signal,
          ...(options.renew ? { renew: options.renew } : {}),
        })
      : await followStore({ runId, source, write, signal: gone.signal });
  } finally {
    clearInterval(poll);
  }
  let meta = await storedMeta(source, runId);
  // Telemetry says the run ended as soon as its meta.json does, before the agent's last store
  // sync: the store copy (and its exit code) is waited for, within the store's sync interval.
  for (let wait = 0; status !== "lost" && !ended(meta) && wait < STORE_CATCH_UP_TRIES; wait += 1) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    meta = await storedMeta(source, runId);
  }
  if (status === "lost" && meta && ended(meta)) status = meta.status;
  const exitCode = meta && ended(meta) ? exitCodeOf(meta) : status === "completed" ? 0 : 1;
  return {
    status,
    exitCode,
    ...(meta ? { meta } : {}),
    ...(status === "lost" ? { machineState: lastState } : {}),
  };
}

export interface MonitorMachineInput {
  provider: Provider;
  machineId: string;
  store: ArtifactStore;
  follow: boolean;
  /** `[nats]`: telemetry when it names a server, renewals when it holds the account seed. */
  natsConfig: NatsConfig;
  /** The provider's command, for hints: `runctl aws`. */
  command: string;
  /** Output bytes (the run's output); with --json they are collected instead. */
  write: (bytes: Uint8Array) => void;
  /** People-facing lines (stderr when following, stdout otherwise: the caller decides). */
  say: (line: string) => void;
  note: (line: string) => void;
  /** Only the last N lines of what the store copy holds (not following). */
  tailLines?: number | undefined;
}

export interface MonitorMachineResult {
  machine: Resource & { uptimeSeconds: number | null };
  run:
    | (ReturnType<typeof runSummary> & { basis: MachineRunBasis })
    | { id: string; status: "pending"; basis: MachineRunBasis };
  /** The exit code the command ends with: the run's, once it ended; 0 while it runs. */
  exitCode: number;
  /** When following stopped because the machine went away first. */
  machineGone?: boolean;
}

/** `runctl <cloud> monitor <machine> [--follow]`: the machine's line, then its run's output. */
export async function monitorMachine(input: MonitorMachineInput): Promise<MonitorMachineResult> {
  const { provider, store, write, say, note } = input;
  const found = await findMachineRun(provider, input.machineId, store);
  const { resource } = found;
  say(machineStateLine(resource));
  if (found.runId === undefined || found.basis === undefined) throw noRunError(resource, input.command);
  const runId = found.runId;
  const basis = found.basis;
  const { StoreRunSource } = await import("@runctl/tracker");
  const source = new StoreRunSource(store);
  const machine = { ...resource, uptimeSeconds: uptimeSeconds(resource) };
  say(
    `run ${runId} (${basis === "host_state" ? "from the machine's host state" : `from its ${TAG_RUN_ID} tag`})`,
  );
  if (!input.follow) {
    const meta = await storedMeta(source, runId);
    if (meta === undefined) {
      say(`run ${runId} has no store copy yet in ${source.location} (the machine may still be booting)`);
      return { machine, run: { id: runId, status: "pending", basis }, exitCode: 0 };
    }
    const output = (await source.readFile(runId, "output.log")) ?? Buffer.alloc(0);
    write(input.tailLines === undefined ? output : lastLines(output, input.tailLines));
    const ended = TERMINAL_STATUSES.has(meta.status);
    say(endLine(meta, resource));
    return {
      machine,
      run: { ...runSummary(meta), basis },
      exitCode: ended ? exitCodeOf(meta) : 0,
    };
  }
  const { natsSettingsFromConfig } = await import("@runctl/control");
  const settings = input.natsConfig.url ? natsSettingsFromConfig(input.natsConfig) : undefined;
  const { followRenewalFrom } = await import("./remote-follow.ts");
  const hostId = found.host?.hostId ?? resource.tags[TAG_HOST];
  const renew = settings ? await followRenewalFrom(input.natsConfig, store, runId, note, hostId) : undefined;
  const end = await followMachine({
    provider,
    machine: { ...found, runId },
    source,
    nats: settings,
    renew,
    write,
    note,
  });
  if (end.status === "lost") {
    say(`${resource.id} is ${end.machineState ?? "gone"} and run ${runId} did not say it ended`);
  } else if (end.meta) {
    say(endLine(end.meta, resource));
  }
  return {
    machine,
    run: end.meta ? { ...runSummary(end.meta), basis } : { id: runId, status: "pending", basis },
    exitCode: end.exitCode,
    ...(end.status === "lost" ? { machineGone: true } : {}),
  };
}

/** 60 s of half-second looks: the agent syncs every 2 s and retries a store that is down. */
const STORE_CATCH_UP_TRIES = 120;

function ended(meta: RunMeta | undefined): meta is RunMeta {
  return meta !== undefined && TERMINAL_STATUSES.has(meta.status);
}

function exitCodeOf(meta: RunMeta): number {
  if (meta.status === "completed") return meta.exit_code ?? 0;
  return meta.exit_code || 1;
}

function endLine(meta: RunMeta, resource: Resource): string {
  const cost = meta.cost_usd == null ? "" : `, cost so far $${meta.cost_usd.toFixed(4)}`;
  if (!TERMINAL_STATUSES.has(meta.status)) {
    return `run ${meta.id} is ${meta.status}${cost}${machineGone(resource) ? ` but ${resource.id} is ${resource.state}` : ""}`;
  }
  const exit = meta.exit_code == null ? "" : ` (exit ${meta.exit_code})`;
  return `run ${meta.id} ended: ${meta.status}${exit}${cost}`;
}

/** The last `n` lines of `bytes`. */
export function lastLines(bytes: Buffer, n: number): Buffer {
  const lines = bytes.toString("utf8").split(/(?<=\n)/);
  return Buffer.from(lines.slice(-n).join(""), "utf8");
}

export async function hostOfRun(store: ArtifactStore, runId: string): Promise<string | undefined> {
  const states = (await store.list("hosts/")).filter((o) => o.key.endsWith("/state.json"));
  states.sort((a, b) => b.modified.localeCompare(a.modified));
  for (const object of states) {
    const hostId = object.key.split("/")[1];
    if (hostId === undefined) continue;
    const state = await readHostState(store, hostId).catch(() => undefined);
    if (state && (state.run === runId || state.runs.includes(runId))) return state.hostId;
  }
  return undefined;
}
