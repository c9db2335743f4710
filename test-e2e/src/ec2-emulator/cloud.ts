/**
 * The emulated EC2 account: instances with EC2's lifecycle, security groups, tags, client-token
 * idempotency, and the faults a test injects (capacity refused per zone/type/market, throttling,
 * denied actions, spot interruptions). State changes are events: a transition happens after
 * `transitionMs` (0 = next tick), and tests await `waitForState` instead of sleeping.
 *
 * Virtual machines: when an instance reaches `running` its user-data goes to the `machine` hook,
 * whose handle is stopped when the instance stops or terminates. The default hook does nothing;
 * remote runs plug in the bare-host harness here so the bootstrap really runs.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { z } from "zod";
import {
  type ImageRecord,
  INSTANCE_TYPES,
  instanceType,
  SEEDED_IMAGES,
  spotPrice,
  zonesOf,
} from "./catalog.ts";
import {
  Ec2Failure,
  instanceMalformed,
  instanceNotFound,
  insufficientCapacity,
  invalidParameterValue,
  requestLimitExceeded,
} from "./ec2-failure.ts";
import {
  checkFilterNames,
  type FilterInput,
  isTagFilter,
  matchesFilters,
  tagFilterValues,
} from "./filters.ts";
import { type Imds, type ImdsView, startImds } from "./imds.ts";
import type { RunInstancesParams } from "./query-params.ts";

export type InstanceStateName =
  | "pending"
  | "running"
  | "shutting-down"
  | "terminated"
  | "stopping"
  | "stopped";

export const STATE_CODES: Readonly<Record<InstanceStateName, number>> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export const OWNER_ID = "123456789012";
export const VPC_ID = "vpc-0e1a2b3c4d5e6f708";
const MAX_USER_DATA = 16 * 1024;

export interface SpotDetails {
  requestId: string;
  type: "one-time" | "persistent";
  behavior: "terminate" | "stop" | "hibernate";
  maxPrice: string | undefined;
}

export interface InstanceRecord {
  instanceId: string;
  reservationId: string;
  region: string;
  imageId: string;
  instanceType: string;
  zone: string;
  state: InstanceStateName;
  stateReason: { code: string; message: string } | undefined;
  stateTransitionReason: string;
  launchTime: Date;
  spot: SpotDetails | undefined;
  clientToken: string | undefined;
  tags: Map<string, string>;
  securityGroupIds: string[];
  userData: string | undefined;
  rootDevice: { deviceName: string; volumeId: string; sizeGb: number; volumeType: string };
  iamInstanceProfile: { arn: string; id: string } | undefined;
  metadata: { httpTokens: "optional" | "required"; hopLimit: number; instanceMetadataTags: boolean };
  shutdownBehavior: "stop" | "terminate";
  privateIp: string;
  keyName: string | undefined;
  instanceAction: ImdsView["instanceAction"];
  imds: Imds | undefined;
  /** Describe-by-id calls that still answer NotFound (eventual consistency). */
  hiddenFor: number;
  /** The machine booted for the current run of the instance; a promise, so a stop during boot still stops it. */
  machine: Promise<VirtualMachineHandle | undefined> | undefined;
  machineError: string | undefined;
  /** What the console showed when the machine last went off (EC2 keeps it after a stop). */
  lastConsole: string | undefined;
}

export interface SecurityGroupRecord {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  region: string;
  tags: Map<string, string>;
}

/** What the machine hook gets when an instance boots. */
export interface VirtualMachineContext {
  instanceId: string;
  instanceType: string;
  zone: string;
  region: string;
  /** The instance's own IMDSv2 endpoint: hand it to the machine as AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  imdsEndpoint: string;
  /** Decoded user-data (the bootstrap); undefined when none was given. */
  userData: string | undefined;
  /** The instance's tags when it booted (`runctl:run-id` names the run it is for). */
  tags: Readonly<Record<string, string>>;
  /** `shutdown -h now` from inside: stops or terminates per InstanceInitiatedShutdownBehavior. */
  shutdown(): void;
}

export interface VirtualMachineHandle {
  stop(): void | Promise<void>;
  /** The machine's serial console so far (cloud-init's output on EC2): GetConsoleOutput's text. */
  console?(): Promise<string>;
}

/** GetConsoleOutput returns the last 64 KiB of the console. */
const CONSOLE_BYTES = 64 * 1024;

export type MachineHook = (
  machine: VirtualMachineContext,
) => VirtualMachineHandle | Promise<VirtualMachineHandle>;

export const noMachine: MachineHook = () => ({ stop: () => {} });

export const CapacityFault = z.strictObject({
  zone: z.string().optional(),
  instanceType: z.string().optional(),
  market: z.enum(["spot", "on-demand"]).optional(),
  /** Refusals left; unset refuses until cleared. Also applies to StartInstances. */
  times: z.number().int().positive().optional(),
});
export type CapacityFault = z.infer<typeof CapacityFault>;

export const ThrottleFault = z.strictObject({
  /** The next N calls (of `actions`, or any) are RequestLimitExceeded. */
  calls: z.number().int().positive(),
  actions: z.array(z.string()).optional(),
});
export type ThrottleFault = z.infer<typeof ThrottleFault>;

export interface CallRecord {
  action: string;
  region: string;
  accessKeyId: string;
  outcome: string;
}

export interface CloudOptions {
  transitionMs?: number;
  machine?: MachineHook;
  /** New instances stay unknown to this many describe-by-id calls, as EC2's eventual consistency has it. */
  eventualConsistency?: number;
  /** The account's instance profiles (the IAM emulator): RunInstances refuses one it lacks. Unset: any name goes. */
  instanceProfiles?: InstanceProfileLookup;
}

/** An `IamInstanceProfile` of RunInstances resolved, or which of its fields names nothing. */
export type InstanceProfileLookup = (ref: {
  Name?: string | undefined;
  Arn?: string | undefined;
}) => { arn: string; id: string } | { invalid: "name" | "arn"; value: string };

function hexId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

export class Ec2Cloud extends EventEmitter {
  readonly instances = new Map<string, InstanceRecord>();
  readonly securityGroups = new Map<string, SecurityGroupRecord>();
  readonly images: ImageRecord[] = [...SEEDED_IMAGES];
  readonly calls: CallRecord[] = [];
  private readonly tokens = new Map<string, { fingerprint: string; reservationId: string; ids: string[] }>();
  private capacity: CapacityFault[] = [];
  private throttle: ThrottleFault | undefined;
  private profileHidden = 0;
  private readonly denied = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private transitionMs: number;
  machine: MachineHook;
  /** New instances stay unknown to this many describe-by-id calls (settable between launches). */
  eventualConsistency: number;
  private readonly instanceProfiles: InstanceProfileLookup | undefined;
  private closed = false;

  constructor(options: CloudOptions = {}) {
    super();
    this.transitionMs = options.transitionMs ?? 10;
    this.machine = options.machine ?? noMachine;
    this.eventualConsistency = options.eventualConsistency ?? 0;
    this.instanceProfiles = options.instanceProfiles;
  }

  // ---- fault injection -------------------------------------------------------------------

  refuseCapacity(fault: CapacityFault): void {
    this.capacity.push(CapacityFault.parse(fault));
  }

  throttleNext(fault: ThrottleFault): void {
    this.throttle = ThrottleFault.parse(fault);
  }

  deny(action: string): void {
    this.denied.add(action);
  }

  /** The next `times` RunInstances naming an instance profile are refused as if IAM had not propagated it yet. */
  hideInstanceProfiles(times: number): void {
    this.profileHidden = times;
  }

  clearFaults(): void {
    this.capacity = [];
    this.throttle = undefined;
    this.profileHidden = 0;
    this.denied.clear();
  }

  /**
   * A spot interruption notice: IMDS `spot/instance-action` answers from now on, and unless
   * `reclaim` is false the instance is reclaimed after `transitionMs` (EC2 gives two minutes).
   */
  interruptSpot(instanceId: string, options: { reclaim?: boolean } = {}): void {
    const instance = this.instances.get(instanceId);
    if (!instance?.spot) throw new Error(`${instanceId} is not a spot instance of this emulator`);
    const action = instance.spot.behavior;
    instance.instanceAction = {
      action,
      time: new Date(Date.now() + 120_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    };
    this.emit("interruption", { instanceId, action });
    if (options.reclaim !== false) this.later(() => this.reclaimSpot(instanceId));
  }

  reclaimSpot(instanceId: string): void {
    const instance = this.instances.get(instanceId);
    if (!instance || instance.state === "terminated" || instance.state === "shutting-down") return;
    const stop = instance.spot?.behavior !== "terminate";
    const reason = stop
      ? {
          code: "Server.SpotInstanceShutdown",
          message: "Server.SpotInstanceShutdown: Spot instance shutdown",
        }
      : {
          code: "Server.SpotInstanceTermination",
          message: "Server.SpotInstanceTermination: Spot instance termination",
        };
    if (stop) this.beginStop(instance, reason);
    else this.beginTerminate(instance, reason);
  }

  setTransitionMs(ms: number): void {
    this.transitionMs = ms;
  }

  // ---- bookkeeping shared by every action -------------------------------------------------

  /** Throttling and denial apply before the action runs, as EC2's front door does. */
  admit(action: string, region: string, accessKeyId: string): void {
    const record: CallRecord = { action, region, accessKeyId, outcome: "ok" };
    this.calls.push(record);
    if (this.denied.has(action)) {
      record.outcome = "UnauthorizedOperation";
      throw new Ec2Failure(
        403,
        "UnauthorizedOperation",
        `You are not authorized to perform this operation. User: arn:aws:iam::${OWNER_ID}:user/${accessKeyId} is not authorized to perform: ec2:${action} because no identity-based policy allows the ec2:${action} action`,
      );
    }
    const t = this.throttle;
    if (t && (t.actions === undefined || t.actions.includes(action))) {
      t.calls -= 1;
      if (t.calls <= 0) this.throttle = undefined;
      record.outcome = "RequestLimitExceeded";
      throw requestLimitExceeded();
    }
  }

  callCount(action?: string): number {
    return this.calls.filter((c) => action === undefined || c.action === action).length;
  }

  waitForState(instanceId: string, state: InstanceStateName): Promise<InstanceRecord> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const instance = this.instances.get(instanceId);
        if (instance?.state === state) {
          this.off("state", check);
          resolve(instance);
          return true;
        }
        return false;
      };
      if (!check()) this.on("state", check);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all(
      [...this.instances.values()].map(async (i) => {
        await this.stopMachine(i);
        await i.imds?.close();
      }),
    );
  }

  private later(fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, this.transitionMs);
    this.timers.add(t);
  }

  private transition(instance: InstanceRecord, state: InstanceStateName): void {
    instance.state = state;
    this.emit("state", { instanceId: instance.instanceId, state });
    if (state === "running") this.bootMachine(instance);
    if (state === "terminated") void instance.imds?.close();
  }

  private bootMachine(instance: InstanceRecord): void {
    const context: VirtualMachineContext = {
      instanceId: instance.instanceId,
      instanceType: instance.instanceType,
      zone: instance.zone,
      region: instance.region,
      imdsEndpoint: instance.imds?.endpoint ?? "",
      tags: Object.fromEntries(instance.tags),
      userData:
        instance.userData === undefined
          ? undefined
          : Buffer.from(instance.userData, "base64").toString("utf8"),
      shutdown: () => {
        if (instance.state !== "running") return;
        const reason = {
          code: "Client.InstanceInitiatedShutdown",
          message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
        };
        if (instance.shutdownBehavior === "terminate") this.beginTerminate(instance, reason);
        else this.beginStop(instance, reason);
      },
    };
    instance.machine = (async () => {
      try {
        return await this.machine(context);
      } catch (error) {
        instance.machineError = (error as Error)?.message ?? String(error);
        return undefined;
      }
    })();
  }

  /** GetConsoleOutput: the console's last 64 KiB, base64 (empty before anything was written). */
  async consoleOutput(
    region: string,
    id: string,
  ): Promise<{ instanceId: string; timestamp: string; output: string }> {
    const [instance] = this.lookup(region, [id]);
    if (!instance) throw new Error(`lookup returned no instance for ${id}`);
    // A machine still booting has written nothing yet: the console is not waited for.
    const machine = await Promise.race([instance.machine, Promise.resolve(undefined)]);
    const text = (machine?.console ? await machine.console() : undefined) ?? instance.lastConsole ?? "";
    const bytes = Buffer.from(text, "utf8");
    const tail = bytes.subarray(Math.max(0, bytes.byteLength - CONSOLE_BYTES));
    return { instanceId: id, timestamp: new Date().toISOString(), output: tail.toString("base64") };
  }

  private async stopMachine(instance: InstanceRecord): Promise<void> {
    const booting = instance.machine;
    instance.machine = undefined;
    try {
      const machine = await booting;
      if (machine?.console) instance.lastConsole = await machine.console().catch(() => instance.lastConsole);
      await machine?.stop();
    } catch (error) {
      instance.machineError = (error as Error)?.message ?? String(error);
    }
  }

  private beginStop(instance: InstanceRecord, reason: { code: string; message: string }): void {
    instance.stateReason = reason;
    instance.stateTransitionReason = transitionReason(reason.code);
    this.transition(instance, "stopping");
    void this.stopMachine(instance).then(() => this.later(() => this.transition(instance, "stopped")));
  }

  private beginTerminate(instance: InstanceRecord, reason: { code: string; message: string }): void {
    instance.stateReason = reason;
    instance.stateTransitionReason = transitionReason(reason.code);
    this.transition(instance, "shutting-down");
    void this.stopMachine(instance).then(() => this.later(() => this.transition(instance, "terminated")));
  }

  // ---- actions --------------------------------------------------------------------------

  async runInstances(
    p: RunInstancesParams,
    region: string,
  ): Promise<{ reservationId: string; instances: InstanceRecord[] }> {
    if (p.MinCount < 1 || p.MaxCount < p.MinCount) {
      throw invalidParameterValue(
        `Invalid value '${p.MinCount}' for minCount. Must be between 1 and maxCount.`,
      );
    }
    if (p.MaxCount > 20) {
      throw new Ec2Failure(
        400,
        "InstanceLimitExceeded",
        "You have requested more instances (" +
          p.MaxCount +
          ") than your current instance limit of 20 allows for the specified instance type.",
      );
    }
    const fingerprint = stableJson({
      ...p,
      Action: undefined,
      Version: undefined,
      ClientToken: undefined,
      DryRun: undefined,
    });
    if (p.ClientToken !== undefined) {
      const known = this.tokens.get(`${region}/${p.ClientToken}`);
      if (known) {
        if (known.fingerprint !== fingerprint) {
          throw new Ec2Failure(
            400,
            "IdempotentParameterMismatch",
            "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
          );
        }
        return {
          reservationId: known.reservationId,
          instances: known.ids.map((id) => this.instances.get(id) as InstanceRecord),
        };
      }
    }
    if (!/^ami-[0-9a-f]{8,17}$/.test(p.ImageId)) {
      throw new Ec2Failure(400, "InvalidAMIID.Malformed", `Invalid id: "${p.ImageId}" (expecting "ami-...")`);
    }
    const image = this.images.find((i) => i.imageId === p.ImageId);
    if (!image)
      throw new Ec2Failure(400, "InvalidAMIID.NotFound", `The image id '[${p.ImageId}]' does not exist`);
    const type = instanceType(p.InstanceType);
    if (!type) throw invalidParameterValue(`Invalid value '${p.InstanceType}' for InstanceType.`);
    const zones = zonesOf(region);
    const wanted = p.Placement?.AvailabilityZone;
    if (wanted !== undefined && !zones.includes(wanted)) {
      throw invalidParameterValue(`Invalid availability zone: [${wanted}]`);
    }
    let userData: string | undefined;
    if (p.UserData !== undefined) {
      const decoded = Buffer.from(p.UserData, "base64");
      if (decoded.toString("base64").replace(/=+$/, "") !== p.UserData.replace(/=+$/, "")) {
        throw invalidParameterValue("Invalid BASE64 encoding of user data.");
      }
      if (decoded.length > MAX_USER_DATA) throw invalidParameterValue("User data is limited to 16384 bytes");
      userData = p.UserData;
    }
    const groupIds = [...(p.SecurityGroupId ?? [])];
    for (const id of groupIds) {
      const group = this.securityGroups.get(id);
      if (!group || group.region !== region) {
        throw new Ec2Failure(400, "InvalidGroup.NotFound", `The security group '${id}' does not exist`);
      }
    }
    for (const name of p.SecurityGroup ?? []) {
      const group = [...this.securityGroups.values()].find(
        (g) => g.groupName === name && g.region === region,
      );
      if (!group) {
        throw new Ec2Failure(
          400,
          "InvalidGroup.NotFound",
          `The security group '${name}' does not exist in default VPC '${VPC_ID}'`,
        );
      }
      groupIds.push(group.groupId);
    }
    let spot: SpotDetails | undefined;
    const market = p.InstanceMarketOptions;
    if (market !== undefined) {
      if (market.MarketType !== "spot")
        throw invalidParameterValue(`Unsupported market type ${market.MarketType}`);
      const options = market.SpotOptions ?? {};
      const kind = options.SpotInstanceType ?? "one-time";
      const behavior = options.InstanceInterruptionBehavior ?? "terminate";
      if (kind === "one-time" && behavior !== "terminate") {
        throw new Ec2Failure(
          400,
          "InvalidParameterCombination",
          `The instance interruption behavior '${behavior}' is supported only for persistent Spot Instance requests.`,
        );
      }
      spot = { requestId: hexId("sir").slice(0, 12), type: kind, behavior, maxPrice: options.MaxPrice };
    }
    const tagsByType = new Map<string, Map<string, string>>();
    for (const spec of p.TagSpecification ?? []) {
      const tags = tagsByType.get(spec.ResourceType) ?? new Map<string, string>();
      for (const tag of spec.Tag) {
        if (tag.Key.toLowerCase().startsWith("aws:")) {
          throw invalidParameterValue("Tag keys starting with 'aws:' are reserved for internal use");
        }
        tags.set(tag.Key, tag.Value);
      }
      tagsByType.set(spec.ResourceType, tags);
    }
    for (const type of tagsByType.keys()) {
      if (!["instance", "volume", "network-interface", "spot-instances-request"].includes(type)) {
        throw invalidParameterValue(`'${type}' is not a valid taggable resource type for this operation.`);
      }
    }
    const root = (p.BlockDeviceMapping ?? []).find(
      (b) => b.DeviceName === "/dev/sda1" || b.DeviceName === "/dev/xvda",
    );
    const sizeGb = root?.Ebs?.VolumeSize ?? 8;
    if (sizeGb < 8 || sizeGb > 65_536) {
      throw new Ec2Failure(
        400,
        "InvalidBlockDeviceMapping",
        `Volume of size ${sizeGb}GB is smaller than snapshot, expect size >= 8GB`,
      );
    }
    const hopLimit = p.MetadataOptions?.HttpPutResponseHopLimit ?? 1;
    if (hopLimit < 1 || hopLimit > 64)
      throw invalidParameterValue(`Invalid value '${hopLimit}' for HttpPutResponseHopLimit`);
    let profile: InstanceRecord["iamInstanceProfile"];
    if (p.IamInstanceProfile?.Name !== undefined || p.IamInstanceProfile?.Arn !== undefined) {
      const hidden = this.profileHidden > 0;
      if (hidden) this.profileHidden -= 1;
      const found = hidden
        ? { invalid: "name" as const, value: p.IamInstanceProfile.Name ?? p.IamInstanceProfile.Arn ?? "" }
        : this.instanceProfiles?.(p.IamInstanceProfile);
      if (found !== undefined && "invalid" in found) {
        throw invalidParameterValue(
          found.invalid === "name"
            ? `Value (${found.value}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`
            : `Value (${found.value}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`,
        );
      }
      const name = p.IamInstanceProfile.Name ?? p.IamInstanceProfile.Arn?.split("/").pop() ?? "";
      profile = found ?? {
        arn: p.IamInstanceProfile.Arn ?? `arn:aws:iam::${OWNER_ID}:instance-profile/${name}`,
        id: `AIPA${createHash("sha256").update(name).digest("hex").slice(0, 17).toUpperCase()}`,
      };
    }
    // Placement last: every refusal above is the caller's fault, capacity is the cloud's.
    const marketName = spot ? "spot" : "on-demand";
    const candidates = wanted !== undefined ? [wanted] : zones;
    const zone = candidates.find((z) => this.capacityRefusal(z, type.name, marketName, false) === undefined);
    if (zone === undefined) {
      this.capacityRefusal(candidates[0] as string, type.name, marketName, true);
      throw insufficientCapacity(type.name, candidates[0] as string, spot !== undefined);
    }
    if (spot?.maxPrice !== undefined) {
      const floor = spotPrice(type, zone);
      if (Number(spot.maxPrice) < floor) {
        throw new Ec2Failure(
          400,
          "SpotMaxPriceTooLow",
          `Your Spot request price of ${spot.maxPrice} is lower than the minimum required Spot request fulfillment price of ${floor}.`,
        );
      }
    }
    if (p.DryRun) throw dryRunOk();
    this.capacityRefusal(zone, type.name, marketName, true);
    const reservationId = hexId("r");
    const created: InstanceRecord[] = [];
    for (let n = 0; n < p.MaxCount; n++) {
      const instance: InstanceRecord = {
        instanceId: hexId("i"),
        reservationId,
        region,
        imageId: image.imageId,
        instanceType: type.name,
        zone,
        state: "pending",
        stateReason: { code: "pending", message: "pending" },
        stateTransitionReason: "",
        launchTime: new Date(Math.floor(Date.now() / 1000) * 1000),
        spot: spot ? { ...spot, requestId: `sir-${randomBytes(4).toString("hex")}` } : undefined,
        clientToken: p.ClientToken,
        tags: new Map(tagsByType.get("instance") ?? []),
        securityGroupIds: groupIds,
        userData,
        rootDevice: {
          deviceName: root?.DeviceName ?? "/dev/sda1",
          volumeId: hexId("vol"),
          sizeGb,
          volumeType: root?.Ebs?.VolumeType ?? "gp3",
        },
        iamInstanceProfile: profile,
        metadata: {
          httpTokens: p.MetadataOptions?.HttpTokens ?? "optional",
          hopLimit,
          instanceMetadataTags: p.MetadataOptions?.InstanceMetadataTags === "enabled",
        },
        shutdownBehavior: p.InstanceInitiatedShutdownBehavior ?? "stop",
        privateIp: `172.31.${Math.floor(Math.random() * 250) + 1}.${Math.floor(Math.random() * 250) + 1}`,
        keyName: p.KeyName,
        instanceAction: undefined,
        imds: undefined,
        hiddenFor: this.eventualConsistency,
        machine: undefined,
        machineError: undefined,
        lastConsole: undefined,
      };
      this.instances.set(instance.instanceId, instance);
      created.push(instance);
    }
    // The token is taken before anything awaits: a second request with it, arriving while this
    // one is still starting IMDS, gets this reservation instead of making another.
    if (p.ClientToken !== undefined) {
      this.tokens.set(`${region}/${p.ClientToken}`, {
        fingerprint,
        reservationId,
        ids: created.map((i) => i.instanceId),
      });
    }
    await Promise.all(
      created.map(async (instance) => {
        instance.imds = await startImds(() => imdsView(instance));
        if (instance.state === "terminated") await instance.imds.close();
        this.emit("state", { instanceId: instance.instanceId, state: "pending" });
        this.later(() => {
          if (instance.state === "pending") {
            instance.stateReason = undefined;
            this.transition(instance, "running");
          }
        });
      }),
    );
    return { reservationId, instances: created };
  }

  /** Finds the first rule refusing this placement; `consume` counts a refusal against `times`. */
  private capacityRefusal(
    zone: string,
    type: string,
    market: "spot" | "on-demand",
    consume: boolean,
  ): CapacityFault | undefined {
    const rule = this.capacity.find(
      (r) =>
        (r.zone === undefined || r.zone === zone) &&
        (r.instanceType === undefined || r.instanceType === type) &&
        (r.market === undefined || r.market === market),
    );
    if (rule && consume && rule.times !== undefined) {
      rule.times -= 1;
      if (rule.times <= 0) this.capacity = this.capacity.filter((r) => r !== rule);
    }
    return rule;
  }

  describeInstances(
    region: string,
    ids: readonly string[] | undefined,
    filters: readonly FilterInput[],
  ): InstanceRecord[] {
    checkFilterNames(filters, (name) => INSTANCE_FILTERS.has(name) || isTagFilter(name));
    let found: InstanceRecord[];
    if (ids !== undefined && ids.length > 0) {
      found = this.lookup(region, ids);
    } else {
      found = [...this.instances.values()].filter((i) => i.region === region);
    }
    return found.filter((i) => matchesFilters(filters, (name) => instanceFilterValues(i, name)));
  }

  /** Instances by id in a region: malformed ids and unknown ones are refused, all at once. */
  lookup(region: string, ids: readonly string[]): InstanceRecord[] {
    for (const id of ids) if (!INSTANCE_ID.test(id)) throw instanceMalformed(id);
    const missing: string[] = [];
    const found: InstanceRecord[] = [];
    for (const id of ids) {
      const instance = this.instances.get(id);
      if (!instance || instance.region !== region || instance.hiddenFor > 0) {
        if (instance && instance.hiddenFor > 0) instance.hiddenFor -= 1;
        missing.push(id);
      } else found.push(instance);
    }
    if (missing.length > 0) throw instanceNotFound(missing);
    return found;
  }

  terminate(
    region: string,
    ids: readonly string[],
    dryRun: boolean,
  ): Array<{ instance: InstanceRecord; previous: InstanceStateName }> {
    const found = this.lookup(region, ids);
    if (dryRun) throw dryRunOk();
    return found.map((instance) => {
      const previous = instance.state;
      if (previous !== "terminated" && previous !== "shutting-down") {
        this.beginTerminate(instance, {
          code: "Client.UserInitiatedShutdown",
          message: "Client.UserInitiatedShutdown: User initiated shutdown",
        });
      }
      return { instance, previous };
    });
  }

  stop(
    region: string,
    ids: readonly string[],
    dryRun: boolean,
  ): Array<{ instance: InstanceRecord; previous: InstanceStateName }> {
    const found = this.lookup(region, ids);
    for (const instance of found) {
      if (instance.spot?.type === "one-time") {
        throw new Ec2Failure(
          400,
          "UnsupportedOperation",
          `You can't stop the Spot Instance '${instance.instanceId}' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.`,
        );
      }
      if (instance.state === "terminated" || instance.state === "shutting-down") {
        throw new Ec2Failure(
          400,
          "IncorrectInstanceState",
          `This instance '${instance.instanceId}' is not in a state from which it can be stopped.`,
        );
      }
    }
    if (dryRun) throw dryRunOk();
    return found.map((instance) => {
      const previous = instance.state;
      if (previous === "running" || previous === "pending") {
        this.beginStop(instance, {
          code: "Client.UserInitiatedShutdown",
          message: "Client.UserInitiatedShutdown: User initiated shutdown",
        });
      }
      return { instance, previous };
    });
  }

  start(
    region: string,
    ids: readonly string[],
    dryRun: boolean,
  ): Array<{ instance: InstanceRecord; previous: InstanceStateName }> {
    const found = this.lookup(region, ids);
    for (const instance of found) {
      if (
        instance.state === "terminated" ||
        instance.state === "shutting-down" ||
        instance.state === "stopping"
      ) {
        throw new Ec2Failure(
          400,
          "IncorrectInstanceState",
          `The instance '${instance.instanceId}' is not in a state from which it can be started.`,
        );
      }
    }
    if (dryRun) throw dryRunOk();
    for (const instance of found) {
      if (instance.state === "stopped") {
        const market = instance.spot ? "spot" : "on-demand";
        if (this.capacityRefusal(instance.zone, instance.instanceType, market, true)) {
          throw insufficientCapacity(instance.instanceType, instance.zone, instance.spot !== undefined);
        }
      }
    }
    return found.map((instance) => {
      const previous = instance.state;
      if (previous === "stopped") {
        instance.stateReason = { code: "pending", message: "pending" };
        instance.instanceAction = undefined;
        this.transition(instance, "pending");
        this.later(() => {
          if (instance.state === "pending") {
            instance.stateReason = undefined;
            instance.stateTransitionReason = "";
            this.transition(instance, "running");
          }
        });
      }
      return { instance, previous };
    });
  }

  createSecurityGroup(
    region: string,
    name: string,
    description: string,
    vpcId: string | undefined,
    tags: Map<string, string>,
    dryRun: boolean,
  ): SecurityGroupRecord {
    const vpc = vpcId ?? VPC_ID;
    if (vpc !== VPC_ID)
      throw new Ec2Failure(400, "InvalidVpcID.NotFound", `The vpc ID '${vpc}' does not exist`);
    if (name.toLowerCase().startsWith("sg-"))
      throw invalidParameterValue("Group names may not be in the format sg-*");
    if ([...this.securityGroups.values()].some((g) => g.region === region && g.groupName === name)) {
      throw new Ec2Failure(
        400,
        "InvalidGroup.Duplicate",
        `The security group '${name}' already exists for VPC '${vpc}'`,
      );
    }
    if (dryRun) throw dryRunOk();
    const group: SecurityGroupRecord = {
      groupId: hexId("sg"),
      groupName: name,
      description,
      vpcId: vpc,
      region,
      tags,
    };
    this.securityGroups.set(group.groupId, group);
    return group;
  }

  describeSecurityGroups(
    region: string,
    ids: readonly string[],
    names: readonly string[],
    filters: readonly FilterInput[],
  ): SecurityGroupRecord[] {
    checkFilterNames(
      filters,
      (name) => ["group-id", "group-name", "vpc-id", "description"].includes(name) || isTagFilter(name),
    );
    const inRegion = [...this.securityGroups.values()].filter((g) => g.region === region);
    for (const id of ids) {
      if (!inRegion.some((g) => g.groupId === id))
        throw new Ec2Failure(400, "InvalidGroup.NotFound", `The security group '${id}' does not exist`);
    }
    for (const name of names) {
      if (!inRegion.some((g) => g.groupName === name)) {
        throw new Ec2Failure(
          400,
          "InvalidGroup.NotFound",
          `The security group '${name}' does not exist in default VPC '${VPC_ID}'`,
        );
      }
    }
    return inRegion.filter(
      (g) =>
        (ids.length === 0 || ids.includes(g.groupId)) &&
        (names.length === 0 || names.includes(g.groupName)) &&
        matchesFilters(filters, (name) => {
          switch (name) {
            case "group-id":
              return [g.groupId];
            case "group-name":
              return [g.groupName];
            case "vpc-id":
              return [g.vpcId];
            case "description":
              return [g.description];
            default:
              return tagFilterValues(name, g.tags);
          }
        }),
    );
  }

  /** The tags of a taggable resource, or a NotFound in EC2's words. */
  tagsOf(region: string, resourceId: string): { tags: Map<string, string>; type: string } {
    if (resourceId.startsWith("i-")) {
      const [instance] = this.lookup(region, [resourceId]);
      return { tags: (instance as InstanceRecord).tags, type: "instance" };
    }
    if (resourceId.startsWith("sg-")) {
      const group = this.securityGroups.get(resourceId);
      if (!group || group.region !== region)
        throw new Ec2Failure(
          400,
          "InvalidGroup.NotFound",
          `The security group '${resourceId}' does not exist`,
        );
      return { tags: group.tags, type: "security-group" };
    }
    throw new Ec2Failure(400, "InvalidID", `The ID '${resourceId}' is not valid`);
  }

  allTags(region: string): Array<{ resourceId: string; resourceType: string; key: string; value: string }> {
    const out: Array<{ resourceId: string; resourceType: string; key: string; value: string }> = [];
    for (const i of this.instances.values()) {
      if (i.region !== region) continue;
      for (const [key, value] of i.tags)
        out.push({ resourceId: i.instanceId, resourceType: "instance", key, value });
    }
    for (const g of this.securityGroups.values()) {
      if (g.region !== region) continue;
      for (const [key, value] of g.tags)
        out.push({ resourceId: g.groupId, resourceType: "security-group", key, value });
    }
    return out;
  }
}

/** EC2's wording: `User initiated (…)` for the owner's calls and shutdowns, `Service initiated (…)` for its own. */
function transitionReason(code: string): string {
  const at = new Date().toISOString().replace("T", " ").slice(0, 19);
  return `${code.startsWith("Server.") ? "Service" : "User"} initiated (${at} GMT)`;
}

export function dryRunOk(): Ec2Failure {
  return new Ec2Failure(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
}

const INSTANCE_FILTERS = new Set([
  "instance-id",
  "instance-state-name",
  "instance-state-code",
  "instance-type",
  "availability-zone",
  "image-id",
  "client-token",
  "instance-lifecycle",
  "reservation-id",
  "spot-instance-request-id",
  "instance.group-id",
  "iam-instance-profile.arn",
  "state-reason-code",
]);

function instanceFilterValues(i: InstanceRecord, name: string): readonly string[] | undefined {
  switch (name) {
    case "instance-id":
      return [i.instanceId];
    case "instance-state-name":
      return [i.state];
    case "instance-state-code":
      return [String(STATE_CODES[i.state])];
    case "instance-type":
      return [i.instanceType];
    case "availability-zone":
      return [i.zone];
    case "image-id":
      return [i.imageId];
    case "client-token":
      return i.clientToken === undefined ? [] : [i.clientToken];
    case "instance-lifecycle":
      return i.spot ? ["spot"] : [];
    case "reservation-id":
      return [i.reservationId];
    case "spot-instance-request-id":
      return i.spot ? [i.spot.requestId] : [];
    case "instance.group-id":
      return i.securityGroupIds;
    case "iam-instance-profile.arn":
      return i.iamInstanceProfile ? [i.iamInstanceProfile.arn] : [];
    case "state-reason-code":
      return i.stateReason ? [i.stateReason.code] : [];
    default:
      return tagFilterValues(name, i.tags);
  }
}

function imdsView(i: InstanceRecord): ImdsView {
  return {
    instanceId: i.instanceId,
    instanceType: i.instanceType,
    imageId: i.imageId,
    zone: i.zone,
    region: i.region,
    privateIp: i.privateIp,
    lifecycle: i.spot ? "spot" : "on-demand",
    httpTokens: i.metadata.httpTokens,
    userData: i.userData,
    tags: i.tags,
    instanceMetadataTags: i.metadata.instanceMetadataTags,
    instanceAction: i.instanceAction,
    launchTime: i.launchTime,
  };
}

export function requestId(): string {
  return randomUUID();
}

export { INSTANCE_TYPES, spotPrice, zonesOf };
