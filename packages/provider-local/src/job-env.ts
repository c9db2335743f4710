/**
 * What a queued job may inherit from its worker's environment. The worker
 * holds runctl's own secrets (the server token above all: it lets anyone
 * submit commands to every worker); a job runs code from whoever submitted it
 * and must not be handed them. The job's own variables (HF_TOKEN, WANDB_API_KEY,
 * …) are not runctl's and pass through.
 */

/** runctl's secret variables: RUNCTL_SERVER_TOKEN, and any RUNCTL_… token, secret, password or key. */
const RUNCTL_SECRET = /^(RUNCTL|WHIRR)_\w*(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|CREDS|CREDENTIALS)\w*$/i;

export function isRunctlSecret(name: string): boolean {
  return RUNCTL_SECRET.test(name);
}

/** `env` without runctl's secrets. */
export function jobEnvFrom(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) if (!isRunctlSecret(name)) out[name] = value;
  return out;
}
