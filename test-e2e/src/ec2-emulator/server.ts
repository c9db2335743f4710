/**
 * An EC2 Query-API emulator on loopback that the unmodified AWS SDK talks to: form-encoded
 * POSTs signed with SigV4 (service `ec2`), answered in EC2's XML with EC2's error codes and
 * statuses. Faults are injected in-process (`emulator.cloud`) or over HTTP under
 * `/__emulator/` (unsigned, loopback only), so a test driving a CLI process can use them too.
 *
 *   const ec2 = await startEc2Emulator();
 *   // AWS_ENDPOINT_URL_EC2=ec2.endpoint …
 *   ec2.cloud.refuseCapacity({ zone: "us-east-1a", market: "spot" });
 *   await ec2.stop();
 *
 * IAM answers on the same endpoint (requests signed for service `iam`, see ../iam-emulator):
 * the account's roles and instance profiles, which RunInstances checks `IamInstanceProfile`
 * against.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { IamAccount } from "../iam-emulator/iam-account.ts";
import { IamApi, signedService } from "../iam-emulator/iam-api.ts";
import {
  DEFAULT_CREDENTIAL,
  type EmulatorCredential,
  EmulatorCredentials,
} from "../s3-emulator/credentials.ts";
import { rawQueryPairs } from "../s3-emulator/sigv4.ts";
import { instanceType as findInstanceType, INSTANCE_TYPES, spotPrice, zonesOf } from "./catalog.ts";
import {
  CapacityFault,
  dryRunOk,
  Ec2Cloud,
  type InstanceRecord,
  type MachineHook,
  requestId as newRequestId,
  OWNER_ID,
  ThrottleFault,
} from "./cloud.ts";
import { authenticateEc2, CredentialBook } from "./ec2-auth.ts";
import { Ec2Failure, invalidParameterValue } from "./ec2-failure.ts";
import {
  errorDocument,
  imageXml,
  instanceState,
  items,
  reservationXml,
  responseDocument,
  securityGroupXml,
  tagSet,
} from "./ec2-xml.ts";
import { checkFilterNames, type FilterInput, isTagFilter, matchesFilters } from "./filters.ts";
import {
  ConsoleOutputParams,
  CreateSecurityGroupParams,
  CreateTagsParams,
  DescribeAvailabilityZonesParams,
  DescribeImagesParams,
  DescribeInstancesParams,
  DescribeInstanceTypesParams,
  DescribeSecurityGroupsParams,
  DescribeSpotPriceHistoryParams,
  DescribeTagsParams,
  formPairs,
  InstanceIdsParams,
  parseAction,
  RunInstancesParams,
  unflatten,
} from "./query-params.ts";

export interface Ec2EmulatorOptions {
  port?: number;
  host?: string;
  credentials?: readonly EmulatorCredential[];
  /** Delay of each lifecycle transition (pending→running, stopping→stopped, …); 0 = next tick. Default 10. */
  transitionMs?: number;
  /** Boots an instance's user-data; the default runs nothing. */
  machine?: MachineHook;
  /** New instance ids stay unknown to this many describe-by-id calls. Default 0. */
  eventualConsistency?: number;
}

export interface Ec2Emulator {
  /** `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_EC2`. */
  endpoint: string;
  port: number;
  cloud: Ec2Cloud;
  /** IAM of the same account, served on `endpoint` too (`AWS_ENDPOINT_URL_IAM`). */
  iam: IamAccount;
  stop(): Promise<void>;
}

const MAX_BODY = 512 * 1024;
const API_VERSION = "2016-11-15";

export async function startEc2Emulator(options: Ec2EmulatorOptions = {}): Promise<Ec2Emulator> {
  const credentials = EmulatorCredentials.parse(options.credentials ?? [DEFAULT_CREDENTIAL]);
  const iam = new IamAccount();
  const cloud = new Ec2Cloud({
    instanceProfiles: (ref) => iam.forLaunch(ref),
    ...(options.transitionMs !== undefined ? { transitionMs: options.transitionMs } : {}),
    ...(options.machine ? { machine: options.machine } : {}),
    ...(options.eventualConsistency !== undefined
      ? { eventualConsistency: options.eventualConsistency }
      : {}),
  });
  const book = new CredentialBook(credentials);
  const api = new QueryApi(cloud, book, new IamApi(iam, book));
  const server = createServer((req, res) => {
    api.handle(req, res).catch((error: unknown) => api.fail(res, error));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    cloud,
    iam,
    stop: async () => {
      await cloud.close();
      await closeServer(server);
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Ec2Failure(413, "RequestEntityTooLarge", "Request body is too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function paginate<T>(
  all: readonly T[],
  maxResults: number | undefined,
  nextToken: string | undefined,
  bounds: [number, number],
): { page: T[]; next: string | undefined } {
  let offset = 0;
  if (nextToken !== undefined) {
    const parsed = z
      .object({ o: z.number().int().nonnegative() })
      .safeParse(safeJson(Buffer.from(nextToken, "base64url").toString("utf8")));
    if (!parsed.success) throw invalidParameterValue(`The token '${nextToken}' is invalid.`);
    offset = parsed.data.o;
  }
  if (maxResults !== undefined && (maxResults < bounds[0] || maxResults > bounds[1])) {
    throw invalidParameterValue(
      `Value ( ${maxResults} ) for parameter maxResults is invalid. Expecting a value between ${bounds[0]} and ${bounds[1]}.`,
    );
  }
  const size = maxResults ?? all.length;
  const page = all.slice(offset, offset + size);
  const next =
    offset + size < all.length
      ? Buffer.from(JSON.stringify({ o: offset + size })).toString("base64url")
      : undefined;
  return { page, next };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function tagMap(
  specs: ReadonlyArray<{ ResourceType: string; Tag: Array<{ Key: string; Value: string }> }> | undefined,
  type: string,
): Map<string, string> {
  const tags = new Map<string, string>();
  for (const spec of specs ?? []) {
    if (spec.ResourceType !== type) {
      throw invalidParameterValue(
        `'${spec.ResourceType}' is not a valid taggable resource type for this operation.`,
      );
    }
    for (const t of spec.Tag) tags.set(t.Key, t.Value);
  }
  return tags;
}

const AdminFaults = z.strictObject({
  capacity: z.array(CapacityFault).optional(),
  throttle: ThrottleFault.optional(),
  deny: z.array(z.string()).optional(),
  clear: z.boolean().optional(),
  transitionMs: z.number().int().nonnegative().optional(),
});
const AdminInterrupt = z.strictObject({ reclaim: z.boolean().optional() });

class QueryApi {
  constructor(
    readonly cloud: Ec2Cloud,
    private readonly book: CredentialBook,
    private readonly iam: IamApi,
  ) {}

  fail(res: ServerResponse, error: unknown): void {
    const failure =
      error instanceof Ec2Failure
        ? error
        : new Ec2Failure(500, "InternalError", "An internal error has occurred");
    if (!(error instanceof Ec2Failure))
      process.stderr.write(`ec2-emulator: ${(error as Error)?.stack ?? error}\n`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.statusCode = failure.status;
    res.setHeader("Content-Type", "text/xml;charset=UTF-8");
    res.end(errorDocument(failure.code, failure.message, newRequestId()));
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const rawPath = q === -1 ? url : url.slice(0, q);
    if (rawPath.startsWith("/__emulator/")) return this.admin(req, res, rawPath);
    const body = await readBody(req);
    const queryPairs = rawQueryPairs(q === -1 ? "" : url.slice(q + 1));
    if (signedService(req) === "iam") return this.iam.handle(req, res, rawPath, queryPairs, body);
    const caller = authenticateEc2(req, rawPath, queryPairs, body, this.book);
    if (req.method !== "POST" && req.method !== "GET") {
      throw new Ec2Failure(405, "InvalidHttpRequest", `The HTTP method ${req.method} is not supported`);
    }
    const params = unflatten([...queryPairs, ...formPairs(body.toString("utf8"))]);
    const action = typeof params.Action === "string" ? params.Action : undefined;
    if (action === undefined)
      throw new Ec2Failure(400, "MissingAction", "The request must contain the parameter Action");
    if (params.Version === undefined)
      throw new Ec2Failure(400, "MissingParameter", "The request must contain the parameter Version");
    if (params.Version !== API_VERSION)
      throw new Ec2Failure(400, "InvalidParameterValue", `Invalid Version '${String(params.Version)}'`);
    const handler = this.actions[action];
    if (handler === undefined)
      throw new Ec2Failure(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
    this.cloud.admit(action, caller.region, caller.credential.accessKeyId);
    // Read-only actions have nothing to refuse but permission: a dry run of one succeeds here.
    if (action.startsWith("Describe") && params.DryRun === "true") throw dryRunOk();
    const requestId = newRequestId();
    const result = await handler(params, caller.region);
    res.statusCode = 200;
    res.setHeader("Content-Type", "text/xml;charset=UTF-8");
    res.setHeader("x-amzn-RequestId", requestId);
    res.end(responseDocument(action, requestId, result));
  }

  private readonly actions: Record<
    string,
    (
      params: Record<string, unknown>,
      region: string,
    ) => Promise<Parameters<typeof responseDocument>[2]> | Parameters<typeof responseDocument>[2]
  > = {
    RunInstances: async (raw, region) => {
      const p = parseAction(RunInstancesParams, raw);
      const { reservationId, instances } = await this.cloud.runInstances(p, region);
      return reservationXml(reservationId, instances);
    },
    DescribeInstances: (raw, region) => {
      const p = parseAction(DescribeInstancesParams, raw);
      if (p.InstanceId !== undefined && p.MaxResults !== undefined) {
        throw new Ec2Failure(
          400,
          "InvalidParameterCombination",
          "The parameter instancesSet cannot be used with the parameter maxResults",
        );
      }
      const found = this.cloud.describeInstances(region, p.InstanceId, p.Filter ?? []);
      const { page, next } = paginate(found, p.MaxResults, p.NextToken, [5, 1000]);
      const reservations = new Map<string, InstanceRecord[]>();
      for (const i of page)
        reservations.set(i.reservationId, [...(reservations.get(i.reservationId) ?? []), i]);
      return {
        reservationSet: items([...reservations].map(([id, list]) => reservationXml(id, list))),
        ...(next ? { nextToken: next } : {}),
      };
    },
    GetConsoleOutput: async (raw, region) => {
      const p = parseAction(ConsoleOutputParams, raw);
      const out = await this.cloud.consoleOutput(region, p.InstanceId);
      return { instanceId: out.instanceId, timestamp: out.timestamp, output: out.output };
    },
    TerminateInstances: (raw, region) => {
      const p = parseAction(InstanceIdsParams, raw);
      return { instancesSet: stateChanges(this.cloud.terminate(region, p.InstanceId, p.DryRun === true)) };
    },
    StopInstances: (raw, region) => {
      const p = parseAction(InstanceIdsParams, raw);
      return { instancesSet: stateChanges(this.cloud.stop(region, p.InstanceId, p.DryRun === true)) };
    },
    StartInstances: (raw, region) => {
      const p = parseAction(InstanceIdsParams, raw);
      return { instancesSet: stateChanges(this.cloud.start(region, p.InstanceId, p.DryRun === true)) };
    },
    DescribeImages: (raw) => {
      const p = parseAction(DescribeImagesParams, raw);
      const filters = p.Filter ?? [];
      checkFilterNames(filters, (n) =>
        [
          "name",
          "state",
          "architecture",
          "owner-alias",
          "owner-id",
          "image-id",
          "description",
          "is-public",
        ].includes(n),
      );
      const owners = p.Owner ?? [];
      if (p.ImageId) {
        for (const id of p.ImageId) {
          if (!this.cloud.images.some((i) => i.imageId === id))
            throw new Ec2Failure(400, "InvalidAMIID.NotFound", `The image id '[${id}]' does not exist`);
        }
      }
      const images = this.cloud.images.filter(
        (image) =>
          (p.ImageId === undefined || p.ImageId.includes(image.imageId)) &&
          (owners.length === 0 ||
            owners.some(
              (o) =>
                o === image.ownerId || o === image.ownerAlias || (o === "self" && image.ownerId === OWNER_ID),
            )) &&
          matchesFilters(filters, (name) => {
            switch (name) {
              case "name":
                return [image.name];
              case "state":
                return [image.state];
              case "architecture":
                return [image.architecture];
              case "owner-alias":
                return image.ownerAlias ? [image.ownerAlias] : [];
              case "owner-id":
                return [image.ownerId];
              case "image-id":
                return [image.imageId];
              case "description":
                return [image.description];
              case "is-public":
                return ["true"];
              default:
                return undefined;
            }
          }),
      );
      const { page, next } = paginate(images, p.MaxResults, p.NextToken, [5, 1000]);
      return { imagesSet: items(page.map(imageXml)), ...(next ? { nextToken: next } : {}) };
    },
    DescribeInstanceTypes: (raw) => {
      const p = parseAction(DescribeInstanceTypesParams, raw);
      const filters = p.Filter ?? [];
      checkFilterNames(filters, (n) => ["instance-type", "current-generation"].includes(n));
      const unknown = (p.InstanceType ?? []).filter((t) => !findInstanceType(t));
      if (unknown.length > 0) {
        throw new Ec2Failure(
          400,
          "InvalidInstanceType",
          `The following supplied instance types do not exist: [${unknown.join(", ")}]`,
        );
      }
      const types = INSTANCE_TYPES.filter(
        (t) =>
          (p.InstanceType === undefined || p.InstanceType.includes(t.name)) &&
          matchesFilters(
            filters,
            (name) => ({ "instance-type": [t.name], "current-generation": ["true"] })[name],
          ),
      );
      const { page, next } = paginate(types, p.MaxResults, p.NextToken, [5, 100]);
      return {
        instanceTypeSet: items(
          page.map((t) => ({
            instanceType: t.name,
            currentGeneration: true,
            supportedUsageClasses: { item: ["on-demand", "spot"] },
            vCpuInfo: { defaultVCpus: t.vcpus },
            memoryInfo: { sizeInMiB: t.vcpus * 4096 },
            ...(t.gpus > 0
              ? {
                  gpuInfo: {
                    gpus: items([
                      {
                        name: t.name.startsWith("g4dn") ? "T4" : t.name.startsWith("p3") ? "V100" : "A10G",
                        manufacturer: "NVIDIA",
                        count: t.gpus,
                        memoryInfo: { sizeInMiB: 24_576 },
                      },
                    ]),
                    totalGpuMemoryInMiB: 24_576 * t.gpus,
                  },
                }
              : {}),
          })),
        ),
        ...(next ? { nextToken: next } : {}),
      };
    },
    DescribeSpotPriceHistory: (raw, region) => {
      const p = parseAction(DescribeSpotPriceHistoryParams, raw);
      const filters: FilterInput[] = p.Filter ?? [];
      checkFilterNames(filters, (n) =>
        ["availability-zone", "instance-type", "product-description", "spot-price", "timestamp"].includes(n),
      );
      const types = p.InstanceType ?? INSTANCE_TYPES.map((t) => t.name);
      for (const t of types)
        if (!findInstanceType(t)) throw invalidParameterValue(`Invalid value '${t}' for InstanceType.`);
      const zones = zonesOf(region);
      if (p.AvailabilityZone !== undefined && !zones.includes(p.AvailabilityZone)) {
        throw invalidParameterValue(`Invalid availability zone: [${p.AvailabilityZone}]`);
      }
      const products = p.ProductDescription ?? ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"];
      // The price in effect at StartTime (default now) per zone: one entry, stamped at the last
      // hourly change, as EC2 answers when StartTime = EndTime = now.
      const at = p.StartTime ? new Date(p.StartTime) : new Date();
      if (Number.isNaN(at.getTime()))
        throw invalidParameterValue(`Invalid value '${p.StartTime}' for startTime`);
      const stamp = new Date(Math.floor(at.getTime() / 3_600_000) * 3_600_000).toISOString();
      const rows = [];
      for (const t of types) {
        const info = findInstanceType(t);
        if (!info) continue;
        for (const zone of zones) {
          if (p.AvailabilityZone !== undefined && zone !== p.AvailabilityZone) continue;
          for (const product of products.filter(
            (x) => x === "Linux/UNIX" || x === "Linux/UNIX (Amazon VPC)",
          )) {
            const row = {
              instanceType: t,
              productDescription: product,
              spotPrice: spotPrice(info, zone).toFixed(6),
              timestamp: stamp,
              availabilityZone: zone,
            };
            if (
              matchesFilters(
                filters,
                (name) =>
                  ({
                    "availability-zone": [zone],
                    "instance-type": [t],
                    "product-description": [product],
                    "spot-price": [row.spotPrice],
                    timestamp: [stamp],
                  })[name],
              )
            )
              rows.push(row);
          }
        }
      }
      const { page, next } = paginate(rows, p.MaxResults, p.NextToken, [1, 1000]);
      return { spotPriceHistorySet: items(page), nextToken: next ?? "" };
    },
    DescribeAvailabilityZones: (raw, region) => {
      const p = parseAction(DescribeAvailabilityZonesParams, raw);
      const filters = p.Filter ?? [];
      checkFilterNames(filters, (n) =>
        ["zone-name", "zone-id", "state", "region-name", "zone-type"].includes(n),
      );
      const zones = zonesOf(region).map((zoneName, i) => ({
        zoneName,
        zoneState: "available",
        regionName: region,
        zoneId: `${region.replace(/-/g, "").slice(0, 4)}-az${i + 1}`,
        zoneType: "availability-zone",
        optInStatus: "opt-in-not-required",
        groupName: region,
        networkBorderGroup: region,
        messageSet: "",
      }));
      for (const name of p.ZoneName ?? []) {
        if (!zones.some((z) => z.zoneName === name))
          throw invalidParameterValue(`The zone '${name}' does not exist.`);
      }
      return {
        availabilityZoneInfo: items(
          zones.filter(
            (z) =>
              (p.ZoneName === undefined || p.ZoneName.includes(z.zoneName)) &&
              (p.ZoneId === undefined || p.ZoneId.includes(z.zoneId)) &&
              matchesFilters(
                filters,
                (name) =>
                  ({
                    "zone-name": [z.zoneName],
                    "zone-id": [z.zoneId],
                    state: [z.zoneState],
                    "region-name": [region],
                    "zone-type": [z.zoneType],
                  })[name],
              ),
          ),
        ),
      };
    },
    CreateSecurityGroup: (raw, region) => {
      const p = parseAction(CreateSecurityGroupParams, raw);
      const g = this.cloud.createSecurityGroup(
        region,
        p.GroupName,
        p.GroupDescription,
        p.VpcId,
        tagMap(p.TagSpecification, "security-group"),
        p.DryRun === true,
      );
      return {
        return: true,
        groupId: g.groupId,
        tagSet: tagSet(g.tags),
        securityGroupArn: `arn:aws:ec2:${region}:${OWNER_ID}:security-group/${g.groupId}`,
      };
    },
    DescribeSecurityGroups: (raw, region) => {
      const p = parseAction(DescribeSecurityGroupsParams, raw);
      const groups = this.cloud.describeSecurityGroups(
        region,
        p.GroupId ?? [],
        p.GroupName ?? [],
        p.Filter ?? [],
      );
      const { page, next } = paginate(groups, p.MaxResults, p.NextToken, [5, 1000]);
      return { securityGroupInfo: items(page.map(securityGroupXml)), ...(next ? { nextToken: next } : {}) };
    },
    CreateTags: (raw, region) => {
      const p = parseAction(CreateTagsParams, raw);
      const targets = p.ResourceId.map((id) => this.cloud.tagsOf(region, id));
      for (const tag of p.Tag) {
        if (tag.Key.toLowerCase().startsWith("aws:"))
          throw invalidParameterValue("Tag keys starting with 'aws:' are reserved for internal use");
      }
      if (p.DryRun) throw dryRunOk();
      for (const { tags } of targets) for (const tag of p.Tag) tags.set(tag.Key, tag.Value);
      return { return: true };
    },
    DescribeTags: (raw, region) => {
      const p = parseAction(DescribeTagsParams, raw);
      const filters = p.Filter ?? [];
      checkFilterNames(
        filters,
        (n) => ["key", "value", "resource-id", "resource-type"].includes(n) || isTagFilter(n),
      );
      const rows = this.cloud.allTags(region).filter((t) =>
        matchesFilters(
          filters,
          (name) =>
            ({
              key: [t.key],
              value: [t.value],
              "resource-id": [t.resourceId],
              "resource-type": [t.resourceType],
            })[name] ?? (name.startsWith("tag:") ? (name.slice(4) === t.key ? [t.value] : []) : undefined),
        ),
      );
      const { page, next } = paginate(rows, p.MaxResults, p.NextToken, [5, 1000]);
      return { tagSet: items(page), ...(next ? { nextToken: next } : {}) };
    },
  };

  private async admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const json = (status: number, value: unknown) => {
      res.statusCode = status;
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(value));
    };
    const body = req.method === "POST" ? (await readBody(req)).toString("utf8") : "";
    const parse = <S extends z.ZodType>(schema: S): z.output<S> | undefined => {
      const parsed = schema.safeParse(body === "" ? {} : safeJson(body));
      if (!parsed.success) {
        json(400, { error: z.prettifyError(parsed.error) });
        return undefined;
      }
      return parsed.data;
    };
    if (path === "/__emulator/faults" && req.method === "POST") {
      const f = parse(AdminFaults);
      if (f === undefined) return;
      if (f.clear) this.cloud.clearFaults();
      for (const c of f.capacity ?? []) this.cloud.refuseCapacity(c);
      if (f.throttle) this.cloud.throttleNext(f.throttle);
      for (const a of f.deny ?? []) this.cloud.deny(a);
      if (f.transitionMs !== undefined) this.cloud.setTransitionMs(f.transitionMs);
      return json(200, { ok: true });
    }
    const interrupt = /^\/__emulator\/instances\/(i-[0-9a-f]+)\/interrupt$/.exec(path);
    if (interrupt && req.method === "POST") {
      const o = parse(AdminInterrupt);
      if (o === undefined) return;
      try {
        this.cloud.interruptSpot(interrupt[1] as string, o);
      } catch (error) {
        return json(404, { error: (error as Error).message });
      }
      return json(200, { ok: true });
    }
    if (path === "/__emulator/instances" && req.method === "GET") {
      return json(
        200,
        [...this.cloud.instances.values()].map((i) => ({
          instanceId: i.instanceId,
          state: i.state,
          instanceType: i.instanceType,
          zone: i.zone,
          market: i.spot ? "spot" : "on-demand",
          tags: Object.fromEntries(i.tags),
          securityGroupIds: i.securityGroupIds,
          imdsEndpoint: i.imds?.endpoint,
        })),
      );
    }
    if (path === "/__emulator/calls" && req.method === "GET") return json(200, this.cloud.calls);
    if (path === "/__emulator/iam" && req.method === "GET") return json(200, this.iam.account.snapshot());
    if (path === "/__emulator/iam/calls" && req.method === "GET") return json(200, this.iam.account.calls);
    return json(404, { error: `no such emulator endpoint: ${req.method} ${path}` });
  }
}

function stateChanges(changes: ReturnType<Ec2Cloud["terminate"]>) {
  return items(
    changes.map(({ instance, previous }) => ({
      instanceId: instance.instanceId,
      currentState: instanceState(instance.state),
      previousState: instanceState(previous),
    })),
  );
}
