/**
 * What the runpod provider is and takes, without the GraphQL client: the provider hook imports
 * this when the CLI starts, so it must stay light. `[runpod]` in `.runctl.toml` is
 * `RunpodConfig`; `LaunchSpec.providerOptions` is `RunpodLaunchOptions`.
 */
import type { ProviderCapabilities } from "@runctl/core";
import { z } from "zod";

export const RUNPOD_CAPABILITIES: ProviderCapabilities = {
  spot: true,
  stopStart: true,
  gpuTypes: ["NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA A100 80GB PCIe", "NVIDIA H100 80GB HBM3"],
  regions: [],
  // RunPod says nothing ahead of reclaiming an interruptible pod: it is found stopped.
  interruptions: false,
};

/** RunPod's PyTorch image, CUDA 12.4 on Ubuntu 22.04. */
export const DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04";
export const DEFAULT_API_URL = "https://api.runpod.io/graphql";
export const API_KEY_ENV = "RUNPOD_API_KEY";

export const CloudName = z.enum(["secure", "community"]);
export type CloudName = z.infer<typeof CloudName>;

export const RunpodConfig = z.strictObject({
  /** API key; RUNPOD_API_KEY overrides it. Shown as *** by `runctl config show`. */
  api_key: z.string().min(1).optional(),
  /** GraphQL endpoint (an emulator stands in here). */
  api_url: z.url().default(DEFAULT_API_URL),
  /** The cloud tried first. */
  cloud: CloudName.default("secure"),
  /** When the first cloud has no capacity, try the other one. */
  cloud_fallback: z.boolean().default(true),
  /** GPU types (ids or display names) tried, in order, after the launch's own type. */
  gpu_types: z.array(z.string().min(1)).max(8).default([]),
  image: z.string().min(1).default(DEFAULT_IMAGE),
  container_disk_gb: z.number().int().min(1).max(65_536).default(50),
  /** Pod volume (kept across stop/start, gone on terminate) in GiB; 0: none. */
  volume_gb: z.number().int().min(0).max(65_536).default(0),
  /** Every pod runctl creates is named with this prefix (half of how runctl knows its pods). */
  name_prefix: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,30}$/, "lower-case letters, digits and dashes")
    .default("runctl-"),
  /** Artifact store of `runctl runpod train` and `runpod create` (s3://bucket/prefix): the code, the agent, the run's copy. */
  store: z
    .string()
    .regex(/^s3:\/\/[^/]+/, "an s3:// URL (s3://bucket/prefix)")
    .optional(),
  /** Where the pod downloads Node from (the layout of nodejs.org/dist). */
  node_mirror: z.url().default("https://nodejs.org/dist"),
});
export type RunpodConfig = z.output<typeof RunpodConfig>;
export type RunpodConfigInput = z.input<typeof RunpodConfig>;

/** `LaunchSpec.providerOptions` for runpod: what `runctl runpod create` says besides type, count and market. */
export const RunpodLaunchOptions = z.strictObject({
  /** Other GPU types to fall back to, in order, after the spec's type was refused in every cloud. */
  gpuTypes: z.array(z.string().min(1)).max(8).default([]),
  cloud: CloudName.optional(),
  cloudFallback: z.boolean().optional(),
  /** Interruptible bid per GPU in USD/hour; default: the spec's max price per GPU, else the minimum bid. */
  bidPerGpu: z.number().positive().optional(),
  volumeGb: z.number().int().min(0).max(65_536).optional(),
  /** The pod's name (the configured prefix is added when missing). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "letters, digits, '.', '_' and '-'")
    .optional(),
});
export type RunpodLaunchOptions = z.output<typeof RunpodLaunchOptions>;
