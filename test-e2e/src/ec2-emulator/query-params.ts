/**
 * The EC2 Query protocol's parameters: a form body of flat names (`TagSpecification.1.Tag.2.Key`)
 * turned into nested values (lists for 1-based indices), then checked per action with zod so a
 * malformed request is refused with EC2's codes, never half-applied.
 */
import { z } from "zod";
import { Ec2Failure } from "./ec2-failure.ts";

type Nested = string | Nested[] | { [key: string]: Nested };

export function formPairs(body: string): Array<[string, string]> {
  return [...new URLSearchParams(body)];
}

/** `A.1.B=x&A.2.B=y` → `{ A: [{ B: "x" }, { B: "y" }] }`; indices are 1-based and may be sparse. */
export function unflatten(pairs: Array<[string, string]>): Record<string, Nested> {
  const root: Record<string, unknown> = {};
  for (const [name, value] of pairs) {
    const parts = name.split(".");
    if (parts.some((p) => p === "")) throw invalidParameter(name);
    let node = root;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      const existing = node[part];
      if (last) {
        if (existing !== undefined) throw invalidParameter(name);
        node[part] = value;
        return;
      }
      if (existing === undefined) node[part] = {};
      else if (typeof existing === "string") throw invalidParameter(name);
      node = node[part] as Record<string, unknown>;
    });
  }
  return listify(root) as Record<string, Nested>;
}

function listify(node: unknown): unknown {
  if (typeof node === "string") return node;
  const entries = Object.entries(node as Record<string, unknown>);
  if (entries.length > 0 && entries.every(([k]) => /^[1-9]\d*$/.test(k))) {
    return entries.sort((a, b) => Number(a[0]) - Number(b[0])).map(([, v]) => listify(v));
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, listify(v)]));
}

function invalidParameter(name: string): Ec2Failure {
  return new Ec2Failure(400, "InvalidParameter", `The parameter ${name} is not recognized or is repeated`);
}

/** Parses an action's parameters; the first issue becomes the error EC2 would give for it. */
export function parseAction<S extends z.ZodType>(schema: S, params: Record<string, unknown>): z.output<S> {
  const parsed = schema.safeParse(params);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path.join(".") ?? "";
  if (issue?.code === "invalid_type" && issue.input === undefined) {
    throw new Ec2Failure(400, "MissingParameter", `The request must contain the parameter ${path}`);
  }
  if (issue?.code === "unrecognized_keys") {
    throw new Ec2Failure(400, "UnknownParameter", `The parameter ${issue.keys.join(", ")} is not recognized`);
  }
  throw new Ec2Failure(
    400,
    "InvalidParameterValue",
    `Invalid value for ${path || "the request"}: ${issue?.message}`,
  );
}

const bool = z.enum(["true", "false"]).transform((v) => v === "true");
const int = z
  .string()
  .regex(/^-?\d+$/, "must be an integer")
  .transform(Number);
const list = <T extends z.ZodType>(item: T) => z.array(item);

export const Tag = z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256).default("") });
export const Filter = z.object({ Name: z.string().min(1), Value: list(z.string()).default([]) });
const TagSpecification = z.object({
  ResourceType: z.enum([
    "instance",
    "volume",
    "security-group",
    "network-interface",
    "spot-instances-request",
  ]),
  Tag: list(Tag).default([]),
});

const Common = {
  Action: z.string(),
  Version: z.string(),
  DryRun: bool.optional(),
};

export const RunInstancesParams = z.strictObject({
  ...Common,
  ImageId: z.string().min(1),
  InstanceType: z.string().min(1).default("m1.small"),
  MinCount: int,
  MaxCount: int,
  ClientToken: z.string().max(64).optional(),
  UserData: z.string().optional(),
  SecurityGroupId: list(z.string()).optional(),
  SecurityGroup: list(z.string()).optional(),
  SubnetId: z.string().optional(),
  KeyName: z.string().optional(),
  EbsOptimized: bool.optional(),
  InstanceInitiatedShutdownBehavior: z.enum(["stop", "terminate"]).optional(),
  Placement: z.object({ AvailabilityZone: z.string().optional(), Tenancy: z.string().optional() }).optional(),
  IamInstanceProfile: z.object({ Name: z.string().optional(), Arn: z.string().optional() }).optional(),
  MetadataOptions: z
    .object({
      HttpTokens: z.enum(["optional", "required"]).optional(),
      HttpPutResponseHopLimit: int.optional(),
      HttpEndpoint: z.enum(["enabled", "disabled"]).optional(),
      InstanceMetadataTags: z.enum(["enabled", "disabled"]).optional(),
    })
    .optional(),
  InstanceMarketOptions: z
    .object({
      MarketType: z.enum(["spot", "capacity-block"]),
      SpotOptions: z
        .object({
          MaxPrice: z
            .string()
            .regex(/^\d+(\.\d+)?$/, "must be a price")
            .optional(),
          SpotInstanceType: z.enum(["one-time", "persistent"]).optional(),
          InstanceInterruptionBehavior: z.enum(["hibernate", "stop", "terminate"]).optional(),
          BlockDurationMinutes: int.optional(),
          ValidUntil: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  BlockDeviceMapping: list(
    z.object({
      DeviceName: z.string(),
      Ebs: z
        .object({
          VolumeSize: int.optional(),
          VolumeType: z.string().optional(),
          DeleteOnTermination: bool.optional(),
          Encrypted: bool.optional(),
          Iops: int.optional(),
          Throughput: int.optional(),
        })
        .optional(),
    }),
  ).optional(),
  TagSpecification: list(TagSpecification).optional(),
});
export type RunInstancesParams = z.output<typeof RunInstancesParams>;

export const DescribeInstancesParams = z.strictObject({
  ...Common,
  InstanceId: list(z.string()).optional(),
  Filter: list(Filter).optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});

export const ConsoleOutputParams = z.strictObject({
  ...Common,
  InstanceId: z.string().min(1),
  Latest: bool.optional(),
});

export const InstanceIdsParams = z.strictObject({
  ...Common,
  InstanceId: list(z.string()).min(1),
  Force: bool.optional(),
  Hibernate: bool.optional(),
  SkipOsShutdown: bool.optional(),
  AdditionalInfo: z.string().optional(),
});

export const DescribeImagesParams = z.strictObject({
  ...Common,
  ImageId: list(z.string()).optional(),
  Owner: list(z.string()).optional(),
  ExecutableBy: list(z.string()).optional(),
  Filter: list(Filter).optional(),
  IncludeDeprecated: bool.optional(),
  IncludeDisabled: bool.optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});

export const DescribeSpotPriceHistoryParams = z.strictObject({
  ...Common,
  InstanceType: list(z.string()).optional(),
  ProductDescription: list(z.string()).optional(),
  AvailabilityZone: z.string().optional(),
  StartTime: z.string().optional(),
  EndTime: z.string().optional(),
  Filter: list(Filter).optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});

export const DescribeAvailabilityZonesParams = z.strictObject({
  ...Common,
  ZoneName: list(z.string()).optional(),
  ZoneId: list(z.string()).optional(),
  AllAvailabilityZones: bool.optional(),
  Filter: list(Filter).optional(),
});

export const CreateSecurityGroupParams = z.strictObject({
  ...Common,
  GroupName: z.string().min(1).max(255),
  GroupDescription: z.string().min(1).max(255),
  VpcId: z.string().optional(),
  TagSpecification: list(TagSpecification).optional(),
});

export const DescribeSecurityGroupsParams = z.strictObject({
  ...Common,
  GroupId: list(z.string()).optional(),
  GroupName: list(z.string()).optional(),
  Filter: list(Filter).optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});

export const CreateTagsParams = z.strictObject({
  ...Common,
  ResourceId: list(z.string()).min(1),
  Tag: list(Tag).min(1),
});

export const DescribeTagsParams = z.strictObject({
  ...Common,
  Filter: list(Filter).optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});

export const DescribeInstanceTypesParams = z.strictObject({
  ...Common,
  InstanceType: list(z.string()).optional(),
  Filter: list(Filter).optional(),
  MaxResults: int.optional(),
  NextToken: z.string().optional(),
});
