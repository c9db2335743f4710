import type { ProviderCapabilities } from "@runctl/core";

/** What runctl may ask of this provider; `runctl providers` lists it without loading the provider. */
export const capabilities: ProviderCapabilities = {
  spot: true, // can launch interruptible capacity
  stopStart: true, // stop() and start() work
  gpuTypes: ["__NAME__-gpu"],
  regions: ["__NAME__-1"],
  interruptions: true, // interruptions() reports preemption notices
};
