/**
 * `@runctl/provider-aws`: the `aws` provider (EC2) and its oclif plugin. Most users get it
 * through the CLI (`runctl aws …`); programs build it from the definition like any provider.
 */
export {
  AWS_CAPABILITIES,
  AwsConfig,
  type AwsConfigInput,
  AwsLaunchOptions,
  DEFAULT_AMI_NAME,
} from "./aws-options.ts";
export {
  AwsProvider,
  type AwsProviderOptions,
  type LaunchStepEvent,
  PROVIDER_NAME,
  resolveRegion,
} from "./aws-provider.ts";
export {
  type AwsTrainInput,
  type AwsTrainResult,
  DEFAULT_NODE_MIRROR,
  NODE_VERSION,
  trainOnAws,
} from "./aws-train.ts";
export { type BackoffPolicy, backoffDelay, withRetries } from "./backoff.ts";
export { ec2Error } from "./ec2-errors.ts";
export { awsDefinition } from "./hooks/providers.ts";
export { iamError } from "./iam-errors.ts";
export {
  canonicalPolicy,
  DEFAULT_ROLE_NAME,
  decodePolicy,
  escapePolicyText,
  PolicyDocument,
  partitionOf,
  STORE_POLICY_NAME,
  type StoreLocation,
  samePolicy,
  storeLocation,
  storePolicy,
  trustPolicy,
} from "./instance-policy.ts";
export {
  type InstanceProfileSetupOptions,
  type InstanceProfileSetupResult,
  policyDiff,
  type SecurityGroupKeeper,
  type SetupResource,
  type SetupStatus,
  type SetupStep,
  setupInstanceProfile,
  setupStepLines,
} from "./instance-profile-setup.ts";
export { clientToken, describeStep, type LaunchStep, launchPlan, MAX_LAUNCH_STEPS } from "./launch-plan.ts";
export { onDemandPrice, PriceTable, shippedPriceTable } from "./price-table.ts";
export { stepPrinter, stepReport } from "./step-report.ts";
