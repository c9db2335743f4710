/**
 * The RunPod emulator's account: GPU types with prices, pods with RunPod's lifecycle
 * (`desiredStatus` RUNNING with `runtime` null while the container starts, EXITED when stopped,
 * gone once terminated, as the real API forgets terminated pods), and the faults a test injects.
 * Every refusal uses RunPod's own GraphQL error messages.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";

/** RunPod's answer when a type has no machine left in the cloud asked for. */
export const NO_INSTANCES_MESSAGE =
  "There are no longer any instances available with the requested specifications. Please refresh and try again.";
/** RunPod's answer when a stopped pod's host has no free GPU to resume on. */
export const NO_FREE_GPUS_MESSAGE = "There are not enough free GPUs on the host machine to start this pod.";
export const BID_TOO_LOW_MESSAGE =
  "There are no longer any instances available with enough bid price. Please refresh and try again.";

export type CloudType = "SECURE" | "COMMUNITY";

export interface GpuTypeRecord {
  id: string;
  displayName: string;
  memoryInGb: number;
  securePrice: number;
  communityPrice: number;
  secureSpotPrice: number;
  communitySpotPrice: number;
}

export const GPU_TYPES: readonly GpuTypeRecord[] = [
  {
    id: "NVIDIA RTX A6000",
    displayName: "RTX A6000",
    memoryInGb: 48,
    securePrice: 0.79,
    communityPrice: 0.49,
    secureSpotPrice: 0.45,
    communitySpotPrice: 0.25,
  },
  {
    id: "NVIDIA GeForce RTX 4090",
    displayName: "RTX 4090",
    memoryInGb: 24,
    securePrice: 0.69,
    communityPrice: 0.44,
    secureSpotPrice: 0.35,
    communitySpotPrice: 0.2,
  },
  {
    id: "NVIDIA A100 80GB PCIe",
    displayName: "A100 80GB PCIe",
    memoryInGb: 80,
    securePrice: 1.64,
    communityPrice: 1.19,
    secureSpotPrice: 0.82,
    communitySpotPrice: 0.6,
  },
  {
    id: "NVIDIA H100 80GB HBM3",
    displayName: "H100 SXM",
    memoryInGb: 80,
    securePrice: 2.99,
    communityPrice: 2.69,
    secureSpotPrice: 1.75,
    communitySpotPrice: 1.5,
  },
];

export const CapacityFault = z.strictObject({
  /** GPU type id; unset: every type. */
  gpuTypeId: z.string().optional(),
  cloud: z.enum(["SECURE", "COMMUNITY"]).optional(),
  market: z.enum(["spot", "on-demand"]).optional(),
  /** Refusals left; unset refuses until cleared. */
  times: z.number().int().positive().optional(),
});
export type CapacityFault = z.infer<typeof CapacityFault>;

export const ErrorFault = z.strictObject({
  /** Root field (`podFindAndDeployOnDemand`, `myself`, …); unset: every operation. */
  field: z.string().optional(),
  message: z.string().default("Something went wrong. Please try again later or contact support."),
  /** HTTP status of the answer; 200 is a GraphQL error in a 200 answer, as RunPod sends most. */
  status: z.number().int().min(200).max(599).default(200),
  times: z.number().int().positive().default(1),
});
export type ErrorFault = z.input<typeof ErrorFault>;

export interface PodRecord {
  id: string;
  name: string;
  gpuTypeId: string;
  gpuCount: number;
  cloud: CloudType;
  podType: "INTERRUPTABLE" | "RESERVED";
  bidPerGpu: number | undefined;
  costPerHr: number;
  imageName: string;
  dockerArgs: string;
  env: Record<string, string>;
  containerDiskInGb: number;
  volumeInGb: number;
  desiredStatus: "RUNNING" | "EXITED";
  /** The container is up: `runtime` is non-null. */
  ready: boolean;
  startedAt: number;
  machineId: string;
  /** The pod-scoped API key RunPod puts in the pod's env (RUNPOD_API_KEY): good for this pod only. */
  podKey: string;
  handle: Promise<PodMachineHandle | undefined> | undefined;
}

/** What the `machine` hook gets when a pod's container starts. */
export interface PodMachineContext {
  podId: string;
  gpuTypeId: string;
  gpuCount: number;
  imageName: string;
  /** The container's start command (runctl passes the bootstrap here). */
  dockerArgs: string;
  /** The pod's env with what RunPod adds: RUNPOD_POD_ID and a pod-scoped RUNPOD_API_KEY. */
  env: Readonly<Record<string, string>>;
  /** The emulator's GraphQL URL (what runpodctl on the machine talks to), once it listens. */
  apiUrl: string | undefined;
  /**
   * The container's command ended (the machine shut itself down): the pod stops, EXITED, as a
   * `podStop` leaves it. Ignored once the pod was stopped, resumed or terminated since.
   */
  exited(): void;
}

export interface PodMachineHandle {
  /** The container stops, as `docker stop` stops one: SIGTERM to its command, SIGKILL after a grace period. */
  stop(): void | Promise<void>;
}

export type PodMachineHook = (pod: PodMachineContext) => PodMachineHandle | Promise<PodMachineHandle>;

export const noPodMachine: PodMachineHook = () => ({ stop: () => {} });

/** A GraphQL error with RunPod's message; `status` other than 200 answers with that HTTP status. */
export class RunPodFailure extends Error {
  constructor(
    message: string,
    readonly status = 200,
  ) {
    super(message);
  }
}

export interface LaunchInput {
  gpuTypeId: string;
  gpuCount: number;
  cloudType: "SECURE" | "COMMUNITY" | "ALL";
  name: string;
  imageName: string;
  dockerArgs: string;
  containerDiskInGb: number;
  volumeInGb: number;
  env: Record<string, string>;
  bidPerGpu?: number;
}

export class RunPodCloud {
  readonly pods = new Map<string, PodRecord>();
  readonly gpuTypes: GpuTypeRecord[] = GPU_TYPES.map((g) => ({ ...g }));
  /** Every root field called, with its variables, in order. */
  readonly calls: {
    field: string;
    query: string;
    variables: Record<string, unknown>;
    /** The pod whose pod-scoped key made the call; undefined: the account's key. */
    podKeyOf?: string;
  }[] = [];
  capacityFaults: CapacityFault[] = [];
  errorFaults: z.output<typeof ErrorFault>[] = [];
  transitionMs: number;
  machine: PodMachineHook;
  /** Set by the server once it listens: pods' runpodctl talks to it. */
  apiUrl: string | undefined;
  private timers = new Set<NodeJS.Timeout>();

  constructor(options: { transitionMs?: number; machine?: PodMachineHook } = {}) {
    this.transitionMs = options.transitionMs ?? 10;
    this.machine = options.machine ?? noPodMachine;
  }

  refuseCapacity(fault: CapacityFault = {}): void {
    this.capacityFaults.push(CapacityFault.parse(fault));
  }

  failNext(fault: ErrorFault = {}): void {
    this.errorFaults.push(ErrorFault.parse(fault));
  }

  clearFaults(): void {
    this.capacityFaults = [];
    this.errorFaults = [];
  }

  /** An injected error for this root field, consumed. */
  takeError(field: string): RunPodFailure | undefined {
    const i = this.errorFaults.findIndex((f) => f.field === undefined || f.field === field);
    if (i < 0) return undefined;
    const fault = this.errorFaults[i] as z.output<typeof ErrorFault>;
    fault.times -= 1;
    if (fault.times <= 0) this.errorFaults.splice(i, 1);
    return new RunPodFailure(fault.message, fault.status);
  }

  private refusal(gpuTypeId: string, cloud: CloudType, market: "spot" | "on-demand", consume: boolean) {
    const i = this.capacityFaults.findIndex(
      (f) =>
        (f.gpuTypeId === undefined || f.gpuTypeId === gpuTypeId) &&
        (f.cloud === undefined || f.cloud === cloud) &&
        (f.market === undefined || f.market === market),
    );
    if (i < 0) return false;
    const fault = this.capacityFaults[i] as CapacityFault;
    if (consume && fault.times !== undefined) {
      fault.times -= 1;
      if (fault.times <= 0) this.capacityFaults.splice(i, 1);
    }
    return true;
  }

  /** Whether a type has capacity in a cloud, without consuming a fault (for `lowestPrice`). */
  available(gpuTypeId: string, cloud: CloudType, market: "spot" | "on-demand"): boolean {
    return !this.refusal(gpuTypeId, cloud, market, false);
  }

  gpuType(id: string): GpuTypeRecord | undefined {
    return this.gpuTypes.find((g) => g.id === id);
  }

  launch(input: LaunchInput): PodRecord {
    const type = this.gpuType(input.gpuTypeId);
    if (type === undefined) throw new RunPodFailure(`GPU type ${JSON.stringify(input.gpuTypeId)} not found`);
    if (!(input.gpuCount >= 1 && input.gpuCount <= 8))
      throw new RunPodFailure("gpuCount must be between 1 and 8");
    const market = input.bidPerGpu === undefined ? "on-demand" : "spot";
    const clouds: CloudType[] = input.cloudType === "ALL" ? ["SECURE", "COMMUNITY"] : [input.cloudType];
    const cloud = clouds.find((c) => !this.refusal(type.id, c, market, true));
    if (cloud === undefined) throw new RunPodFailure(NO_INSTANCES_MESSAGE);
    if (input.bidPerGpu !== undefined) {
      const min = cloud === "SECURE" ? type.secureSpotPrice : type.communitySpotPrice;
      if (input.bidPerGpu < min) throw new RunPodFailure(BID_TOO_LOW_MESSAGE);
    }
    const perGpu = input.bidPerGpu ?? (cloud === "SECURE" ? type.securePrice : type.communityPrice);
    const pod: PodRecord = {
      id: randomBytes(7)
        .toString("base64url")
        .toLowerCase()
        .replace(/[^a-z0-9]/g, "x")
        .slice(0, 14),
      name: input.name,
      gpuTypeId: type.id,
      gpuCount: input.gpuCount,
      cloud,
      podType: input.bidPerGpu === undefined ? "RESERVED" : "INTERRUPTABLE",
      bidPerGpu: input.bidPerGpu,
      costPerHr: Math.round(perGpu * input.gpuCount * 1e6) / 1e6,
      imageName: input.imageName,
      dockerArgs: input.dockerArgs,
      env: input.env,
      containerDiskInGb: input.containerDiskInGb,
      volumeInGb: input.volumeInGb,
      desiredStatus: "RUNNING",
      ready: false,
      startedAt: Date.now(),
      machineId: randomBytes(6).toString("hex"),
      podKey: `rpa_POD${randomBytes(16).toString("hex").toUpperCase()}`,
      handle: undefined,
    };
    this.pods.set(pod.id, pod);
    this.boot(pod);
    return pod;
  }

  /** `runtime` stays null for `transitionMs`, then the container starts (the machine hook). */
  private boot(pod: PodRecord): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.pods.get(pod.id) !== pod || pod.desiredStatus !== "RUNNING") return;
      pod.ready = true;
      pod.startedAt = Date.now();
      const handle: Promise<PodMachineHandle | undefined> = Promise.resolve(
        this.machine({
          podId: pod.id,
          gpuTypeId: pod.gpuTypeId,
          gpuCount: pod.gpuCount,
          imageName: pod.imageName,
          dockerArgs: pod.dockerArgs,
          env: { ...pod.env, RUNPOD_POD_ID: pod.id, RUNPOD_API_KEY: pod.podKey },
          apiUrl: this.apiUrl,
          exited: () => {
            if (this.pods.get(pod.id) !== pod || pod.handle !== handle) return;
            pod.desiredStatus = "EXITED";
            this.halt(pod);
          },
        }),
      ).catch(() => undefined);
      pod.handle = handle;
    }, this.transitionMs);
    this.timers.add(timer);
  }

  private halt(pod: PodRecord): void {
    const handle = pod.handle;
    pod.handle = undefined;
    pod.ready = false;
    void handle?.then((h) => h?.stop());
  }

  pod(id: string): PodRecord {
    const pod = this.pods.get(id);
    if (pod === undefined) throw new RunPodFailure(`pod ${JSON.stringify(id)} not found`);
    return pod;
  }

  stop(id: string): PodRecord {
    const pod = this.pod(id);
    pod.desiredStatus = "EXITED";
    this.halt(pod);
    return pod;
  }

  resume(id: string, gpuCount: number, bidPerGpu?: number): PodRecord {
    const pod = this.pod(id);
    if (pod.desiredStatus === "RUNNING") return pod;
    if ((bidPerGpu === undefined) !== (pod.podType === "RESERVED")) {
      throw new RunPodFailure(
        pod.podType === "RESERVED"
          ? "This pod is not an interruptible pod; resume it with podResume."
          : "This pod is interruptible; resume it with podBidResume and a bid.",
      );
    }
    const market = pod.podType === "RESERVED" ? "on-demand" : "spot";
    if (this.refusal(pod.gpuTypeId, pod.cloud, market, true)) throw new RunPodFailure(NO_FREE_GPUS_MESSAGE);
    pod.gpuCount = gpuCount;
    if (bidPerGpu !== undefined) {
      pod.bidPerGpu = bidPerGpu;
      pod.costPerHr = Math.round(bidPerGpu * gpuCount * 1e6) / 1e6;
    }
    pod.desiredStatus = "RUNNING";
    this.boot(pod);
    return pod;
  }

  terminate(id: string): void {
    const pod = this.pod(id);
    this.pods.delete(id);
    this.halt(pod);
  }

  /** The pod a pod-scoped key belongs to. */
  podOfKey(key: string): PodRecord | undefined {
    return [...this.pods.values()].find((p) => p.podKey === key);
  }

  /**
   * A spot pod reclaimed by the market, as RunPod does it: the pod is stopped (EXITED), its
   * container as `docker stop` stops one (SIGTERM, then SIGKILL after a grace period).
   */
  interrupt(id: string): PodRecord {
    const pod = this.pod(id);
    pod.desiredStatus = "EXITED";
    this.halt(pod);
    return pod;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all([...this.pods.values()].map(async (p) => (await p.handle)?.stop()));
  }
}
