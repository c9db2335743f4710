/**
 * The parts of EC2's answers runctl reads, checked with zod: the SDK's types say what EC2 may
 * send, these say what we rely on, so a surprising answer fails loudly at the boundary.
 */
import { z } from "zod";

export const Ec2StateName = z.enum([
  "pending",
  "running",
  "shutting-down",
  "terminated",
  "stopping",
  "stopped",
]);
export type Ec2StateName = z.infer<typeof Ec2StateName>;

const Tag = z.object({ Key: z.string(), Value: z.string().default("") });

export const Ec2Instance = z.object({
  InstanceId: z.string().min(1),
  InstanceType: z.string().min(1),
  State: z.object({ Name: Ec2StateName }),
  Placement: z.object({ AvailabilityZone: z.string().optional() }).optional(),
  LaunchTime: z.date().optional(),
  Tags: z.array(Tag).default([]),
  InstanceLifecycle: z.string().optional(),
  StateReason: z.object({ Code: z.string().optional(), Message: z.string().optional() }).optional(),
  StateTransitionReason: z.string().optional(),
  PrivateIpAddress: z.string().optional(),
  PublicIpAddress: z.string().optional(),
  ClientToken: z.string().optional(),
});
export type Ec2Instance = z.infer<typeof Ec2Instance>;

export const DescribeInstancesPage = z.object({
  Reservations: z.array(z.object({ Instances: z.array(Ec2Instance).default([]) })).default([]),
  NextToken: z.string().optional(),
});

export const RunInstancesAnswer = z.object({ Instances: z.array(Ec2Instance).min(1) });

export const ImagesAnswer = z.object({
  Images: z
    .array(
      z.object({
        ImageId: z.string().regex(/^ami-[0-9a-f]+$/),
        Name: z.string().optional(),
        CreationDate: z.string().optional(),
        RootDeviceName: z.string().optional(),
      }),
    )
    .default([]),
});

export const ZonesAnswer = z.object({
  AvailabilityZones: z.array(z.object({ ZoneName: z.string(), State: z.string().optional() })).default([]),
});

export const SpotPriceAnswer = z.object({
  SpotPriceHistory: z
    .array(
      z.object({
        AvailabilityZone: z.string(),
        InstanceType: z.string(),
        SpotPrice: z.string().regex(/^\d+(\.\d+)?$/),
        Timestamp: z.date().optional(),
      }),
    )
    .default([]),
  NextToken: z.string().optional(),
});

export const SecurityGroupsAnswer = z.object({
  SecurityGroups: z
    .array(
      z.object({
        GroupId: z.string().regex(/^sg-[0-9a-f]+$/),
        GroupName: z.string().optional(),
        /** Inbound rules; runctl's group has none. */
        IpPermissions: z.array(z.unknown()).default([]),
      }),
    )
    .default([]),
});

export const CreateSecurityGroupAnswer = z.object({ GroupId: z.string().regex(/^sg-[0-9a-f]+$/) });

export function tagsOf(instance: Ec2Instance): Record<string, string> {
  return Object.fromEntries(instance.Tags.map((t) => [t.Key, t.Value]));
}

export const InstanceTypesAnswer = z.object({
  InstanceTypes: z.array(z.object({ InstanceType: z.string() })).default([]),
});

/** GetConsoleOutput: the console's last 64 KiB, base64; no Output before the machine wrote any. */
export const Ec2ConsoleOutput = z.object({
  InstanceId: z.string().min(1).optional(),
  Output: z.string().optional(),
  Timestamp: z.date().optional(),
});
