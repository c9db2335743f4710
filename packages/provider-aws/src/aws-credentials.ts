/**
 * Where an AWS client's credentials come from, in words an error can name: the key in the
 * environment (read from the env the provider was given, not process.env, so a program can pass
 * its own), else a profile, else the SDK's default chain. EC2 and IAM clients share this, so a
 * wrong key is reported the same way whichever service refused it.
 */
export interface AwsKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface AwsClientCredentials {
  /** Explicit credentials for the client; undefined: the SDK resolves them (profile, chain). */
  credentials: AwsKey | undefined;
  profile: string | undefined;
  /** For auth errors: "access key AKID… from environment variables …", "profile "x" …". */
  source: string;
}

export function awsClientCredentials(
  env: Readonly<Record<string, string | undefined>>,
  configProfile: string | undefined,
): AwsClientCredentials {
  const profile = env.AWS_PROFILE ?? configProfile;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return {
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
      },
      profile,
      source: `access key ${env.AWS_ACCESS_KEY_ID} from environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`,
    };
  }
  return {
    credentials: undefined,
    profile,
    source: profile
      ? `profile "${profile}" (~/.aws/credentials or ~/.aws/config)`
      : "the AWS SDK's default credential chain (no AWS_ACCESS_KEY_ID, no profile set)",
  };
}
