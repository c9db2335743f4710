/**
 * What the aws provider is and takes, without the SDK: the provider hook imports this when the
 * CLI starts, so it must stay light. `[aws]` in `.runctl.toml` is `AwsConfig`;
 * `LaunchSpec.providerOptions` is `AwsLaunchOptions`.
 */
import type { ProviderCapabilities } from "@runctl/core";
import { z } from "zod";

export const AWS_CAPABILITIES: ProviderCapabilities = {
  spot: true,
  stopStart: true,
  gpuTypes: [
    "g4dn.xlarge",
    "g5.xlarge",
    "g5.2xlarge",
    "g5.12xlarge",
    "g6.xlarge",
    "g6e.xlarge",
    "p3.2xlarge",
    "p4d.24xlarge",
    "p5.48xlarge",
  ],
  regions: ["us-east-1", "us-west-2", "eu-west-1"],
  interruptions: true,
};

/** Deep Learning AMIs with PyTorch on Ubuntu 22.04, which `DescribeImages` narrows to the newest. */
export const DEFAULT_AMI_NAME = "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *";

export const AwsConfig = z.strictObject({
  /** Region; unset: AWS_REGION, the profile's region, else us-east-1. */
  region: z.string().min(1).optional(),
  /** AWS profile for credentials and region; AWS_PROFILE overrides it. */
  profile: z.string().min(1).optional(),
  /** EC2 endpoint (an emulator, a VPC endpoint); AWS_ENDPOINT_URL_EC2 overrides it. */
  endpoint: z.url().optional(),
  /** IAM endpoint for `runctl aws setup` (an emulator); AWS_ENDPOINT_URL_IAM overrides it. */
  iam_endpoint: z.url().optional(),
  /** Zones to launch in, in order of preference; unset: every zone of the region. */
  zones: z.array(z.string().min(1)).optional(),
  /** Image name pattern (`*` wildcards) looked up among `ami_owner`'s images; the newest wins. */
  ami_name: z.string().min(1).default(DEFAULT_AMI_NAME),
  /** Owner of the images: `amazon`, an account id, or `self`. */
  ami_owner: z.string().min(1).default("amazon"),
  /** Name of the security group runctl creates (no inbound rule) and launches into. */
  security_group: z.string().min(1).default("runctl"),
  subnet: z.string().min(1).optional(),
  /** Instance profile the machine gets (`runctl aws setup` creates a run-scoped one). */
  iam_instance_profile: z.string().min(1).optional(),
  /** Root disk size in GiB when the launch does not say. */
  disk_gb: z.number().int().min(8).max(65_536).default(100),
  /** Throttled calls are retried this many times with full-jitter backoff. */
  retry_attempts: z.number().int().min(0).max(20).default(6),
  retry_base_ms: z.number().int().min(0).max(60_000).default(200),
  retry_cap_ms: z.number().int().min(0).max(300_000).default(10_000),
  /** Artifact store of `runctl aws train` and `aws create` (s3://bucket/prefix): the code, the agent, the run's copy. */
  store: z
    .string()
    .regex(/^s3:\/\/[^/]+/, "an s3:// URL (s3://bucket/prefix)")
    .optional(),
  /** Where the machine downloads Node from (the layout of nodejs.org/dist). */
  node_mirror: z.url().default("https://nodejs.org/dist"),
});
export type AwsConfig = z.output<typeof AwsConfig>;
export type AwsConfigInput = z.input<typeof AwsConfig>;

/** `LaunchSpec.providerOptions` for aws: what `runctl aws create` says besides type, market and zone. */
export const AwsLaunchOptions = z.strictObject({
  /** Other instance types to fall back to, in order, after every zone refused the spec's type. */
  instanceTypes: z.array(z.string().min(1)).max(8).default([]),
  /** Spot price cap in USD/hour (EC2's MaxPrice); default: the on-demand price. */
  maxPrice: z.number().positive().optional(),
  /** Security group id to launch into instead of runctl's own. */
  securityGroup: z
    .string()
    .regex(/^sg-[0-9a-f]+$/, "a security group id (sg-…)")
    .optional(),
  subnet: z
    .string()
    .regex(/^subnet-[0-9a-f]+$/, "a subnet id (subnet-…)")
    .optional(),
  iamInstanceProfile: z.string().min(1).optional(),
  /** What EC2 does to a spot instance it reclaims; `stop` makes the request persistent. */
  interruptionBehavior: z.enum(["terminate", "stop"]).default("terminate"),
  /** The resource's Name tag. */
  name: z.string().min(1).max(255).optional(),
  /** Names this launch when there is no run id: the same key never makes a second machine. */
  idempotencyKey: z.string().min(1).max(200).optional(),
});
export type AwsLaunchOptions = z.output<typeof AwsLaunchOptions>;
