/**
 * `@runctl/provider-runpod`: the `runpod` provider (RunPod pods over GraphQL) and its oclif
 * plugin. Most users get it through the CLI (`runctl runpod …`); programs build it from the
 * definition like any provider.
 */
export { runpodDefinition } from "./hooks/providers.ts";
export {
  API_KEY_ENV,
  CloudName,
  DEFAULT_API_URL,
  DEFAULT_IMAGE,
  RUNPOD_CAPABILITIES,
  RunpodConfig,
  type RunpodConfigInput,
  RunpodLaunchOptions,
} from "./runpod-options.ts";
export {
  describeStep,
  ENV_MANAGED,
  ENV_PROTECTED,
  ENV_TAGS,
  type LaunchStep,
  type LaunchStepEvent,
  MAX_LAUNCH_STEPS,
  PROVIDER_NAME,
  RunpodProvider,
  type RunpodProviderOptions,
} from "./runpod-provider.ts";
export { type RunpodTrainInput, type RunpodTrainResult, trainOnRunPod } from "./runpod-train.ts";
export { type DeployInput, RunPodApi, runpodError } from "./runpod-wire.ts";
export { stepPrinter, stepReport } from "./step-report.ts";
