/**
 * Every detail of RunPod's GraphQL API runctl depends on, and nothing else: the documents (all
 * values travel as variables, never spliced into a query string), the zod schemas of the
 * answers, and how RunPod's errors read in runctl's codes. The provider sees only `RunPodApi`,
 * so the REST API RunPod announced as GraphQL's successor can replace this one module.
 */
import { ProviderError } from "@runctl/core";
import { ClientError, GraphQLClient } from "graphql-request";
import { z } from "zod";
import { API_KEY_ENV } from "./runpod-options.ts";

export type CloudType = "SECURE" | "COMMUNITY";

const POD_FIELDS = /* GraphQL */ `
  id
  name
  desiredStatus
  podType
  imageName
  env
  gpuCount
  costPerHr
  containerDiskInGb
  volumeInGb
  runtime {
    uptimeInSeconds
  }
  machine {
    gpuDisplayName
  }
`;

const MYSELF_PODS = /* GraphQL */ `
  query RunctlPods {
    myself {
      pods {
        ${POD_FIELDS}
      }
    }
  }
`;

const POD = /* GraphQL */ `
  query RunctlPod($podId: String!) {
    pod(input: { podId: $podId }) {
      ${POD_FIELDS}
    }
  }
`;

const GPU_TYPES = /* GraphQL */ `
  query RunctlGpuTypes($gpuCount: Int!) {
    gpuTypes {
      id
      displayName
      memoryInGb
      securePrice
      communityPrice
      secure: lowestPrice(input: { gpuCount: $gpuCount, secureCloud: true }) {
        minimumBidPrice
        uninterruptablePrice
      }
      community: lowestPrice(input: { gpuCount: $gpuCount, secureCloud: false }) {
        minimumBidPrice
        uninterruptablePrice
      }
    }
  }
`;

const DEPLOY_ON_DEMAND = /* GraphQL */ `
  mutation RunctlDeployOnDemand($input: PodFindAndDeployOnDemandInput!) {
    podFindAndDeployOnDemand(input: $input) {
      ${POD_FIELDS}
    }
  }
`;

const RENT_INTERRUPTABLE = /* GraphQL */ `
  mutation RunctlRentInterruptable($input: PodRentInterruptableInput!) {
    podRentInterruptable(input: $input) {
      ${POD_FIELDS}
    }
  }
`;

const STOP = /* GraphQL */ `
  mutation RunctlStop($podId: String!) {
    podStop(input: { podId: $podId }) {
      ${POD_FIELDS}
    }
  }
`;

const RESUME = /* GraphQL */ `
  mutation RunctlResume($podId: String!, $gpuCount: Int!) {
    podResume(input: { podId: $podId, gpuCount: $gpuCount }) {
      ${POD_FIELDS}
    }
  }
`;

const BID_RESUME = /* GraphQL */ `
  mutation RunctlBidResume($podId: String!, $gpuCount: Int!, $bidPerGpu: Float!) {
    podBidResume(input: { podId: $podId, gpuCount: $gpuCount, bidPerGpu: $bidPerGpu }) {
      ${POD_FIELDS}
    }
  }
`;

const TERMINATE = /* GraphQL */ `
  mutation RunctlTerminate($podId: String!) {
    podTerminate(input: { podId: $podId })
  }
`;

export const Pod = z.object({
  id: z.string().min(1),
  name: z.string().nullish(),
  /** RUNNING (runtime null while the container starts), EXITED (stopped), TERMINATED, … */
  desiredStatus: z.string().nullish(),
  /** INTERRUPTABLE (spot) or RESERVED (on-demand). */
  podType: z.string().nullish(),
  imageName: z.string().nullish(),
  /** `KEY=value` strings. */
  env: z.array(z.string()).nullish(),
  gpuCount: z.number().int().nullish(),
  costPerHr: z.number().nullish(),
  containerDiskInGb: z.number().nullish(),
  volumeInGb: z.number().nullish(),
  runtime: z.object({ uptimeInSeconds: z.number().nullish() }).nullish(),
  machine: z.object({ gpuDisplayName: z.string().nullish() }).nullish(),
});
export type Pod = z.infer<typeof Pod>;

const LowestPrice = z
  .object({ minimumBidPrice: z.number().nullish(), uninterruptablePrice: z.number().nullish() })
  .nullish();

export const GpuType = z.object({
  id: z.string().min(1),
  displayName: z.string(),
  memoryInGb: z.number().nullish(),
  securePrice: z.number().nullish(),
  communityPrice: z.number().nullish(),
  secure: LowestPrice,
  community: LowestPrice,
});
export type GpuType = z.infer<typeof GpuType>;

const PodsAnswer = z.object({ myself: z.object({ pods: z.array(Pod).nullish() }).nullish() });
const PodAnswer = z.object({ pod: Pod.nullish() });
const GpuTypesAnswer = z.object({ gpuTypes: z.array(GpuType).nullish() });

/** What a pod is created with, in RunPod's terms. */
export interface DeployInput {
  gpuTypeId: string;
  gpuCount: number;
  cloudType: CloudType;
  name: string;
  imageName: string;
  /** The container's start command. */
  dockerArgs: string;
  containerDiskInGb: number;
  volumeInGb: number;
  env: Record<string, string>;
  /** Set: an interruptible pod at this bid per GPU. */
  bidPerGpu?: number;
}

// RunPod words "no capacity" several ways; each is a refusal fallback may route around.
const CAPACITY =
  /no longer any instances available|not enough free gpus|no (gpu )?instances? (are )?available|no available (gpus|machines)|out of stock|could not find any pods with required specifications/i;
const AUTH = /unauthori[sz]ed|api key|forbidden|not authenticated/i;
const THROTTLE = /rate limit|too many requests/i;

/** A RunPod failure in runctl's codes (capacity, auth, throttled, not_found, invalid_spec). */
export function runpodError(error: unknown, doing: string, apiUrl: string): ProviderError {
  if (error instanceof ProviderError) return error;
  if (error instanceof ClientError) {
    const status = error.response.status;
    const messages = (error.response.errors ?? []).map((e) => e.message);
    const message = messages.join("; ") || `HTTP ${status}`;
    if (status === 401 || status === 403 || AUTH.test(message)) {
      return new ProviderError(`RunPod refused the API key while ${doing} (HTTP ${status}: ${message})`, {
        code: "auth",
        hint: `Set ${API_KEY_ENV} or \`[runpod] api_key\` in .runctl.toml to a valid key (RunPod console → Settings → API Keys).`,
      });
    }
    if (status === 429 || THROTTLE.test(message)) {
      return new ProviderError(`RunPod throttled ${doing}: ${message}`, {
        code: "throttled",
        hint: "Wait a little and try again.",
      });
    }
    if (CAPACITY.test(message)) {
      return new ProviderError(`RunPod has no capacity for ${doing}: ${message}`, {
        code: "capacity",
        hint: "Try another GPU type (--gpu, repeatable), the other cloud (--cloud), or later.",
      });
    }
    if (status === 400) {
      return new ProviderError(`RunPod refused the request while ${doing}: ${message}`, {
        code: "invalid_spec",
        hint: "This request does not fit RunPod's API; check the GPU type, image and sizes.",
      });
    }
    return new ProviderError(`RunPod failed while ${doing} (HTTP ${status}): ${message}`, {
      code: status >= 500 ? "runpod_unavailable" : "runpod_error",
      hint: "Try again; if it persists, check https://uptime.runpod.io.",
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(`RunPod's API at ${apiUrl} did not answer while ${doing}: ${message}`, {
    code: "runpod_unreachable",
    hint: "Check the network, or `[runpod] api_url` in .runctl.toml.",
    cause: error,
  });
}

/** Was this failure transient, so a read may be asked again? */
function transient(error: unknown): boolean {
  return error instanceof ClientError && (error.response.status >= 500 || error.response.status === 429);
}

/** RunPod's GraphQL API, one method per call runctl makes. */
export class RunPodApi {
  readonly #client: GraphQLClient;
  readonly #url: string;
  readonly #readAttempts: number;

  constructor(options: { url: string; apiKey: string; readAttempts?: number }) {
    this.#url = options.url;
    this.#readAttempts = options.readAttempts ?? 3;
    // The key goes in a header, never in the URL, so it cannot end up in a logged address.
    this.#client = new GraphQLClient(options.url, {
      headers: { authorization: `Bearer ${options.apiKey}` },
    });
  }

  async #call<T>(
    doing: string,
    document: string,
    variables: Record<string, unknown>,
    answer: z.ZodType<T>,
    read: boolean,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const data = await this.#client.request<unknown>(document, variables);
        const parsed = answer.safeParse(data);
        if (!parsed.success) {
          throw new ProviderError(
            `RunPod answered ${doing} with an unexpected shape: ${parsed.error.message}`,
            {
              code: "runpod_error",
              hint: "RunPod's API may have changed; report it with this message.",
            },
          );
        }
        return parsed.data;
      } catch (error) {
        // Reads are asked again on a 5xx or 429; a mutation never is, as it may have happened.
        if (read && attempt < this.#readAttempts && transient(error)) {
          await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
          continue;
        }
        throw runpodError(error, doing, this.#url);
      }
    }
  }

  async pods(): Promise<Pod[]> {
    const answer = await this.#call("listing pods", MYSELF_PODS, {}, PodsAnswer, true);
    return answer.myself?.pods ?? [];
  }

  /** The pod, or undefined when RunPod does not know it (terminated pods are forgotten). */
  async pod(podId: string): Promise<Pod | undefined> {
    const answer = await this.#call(`reading pod ${podId}`, POD, { podId }, PodAnswer, true);
    return answer.pod ?? undefined;
  }

  async gpuTypes(gpuCount: number): Promise<GpuType[]> {
    const answer = await this.#call("reading GPU types", GPU_TYPES, { gpuCount }, GpuTypesAnswer, true);
    return answer.gpuTypes ?? [];
  }

  async deploy(input: DeployInput): Promise<Pod> {
    const common = {
      cloudType: input.cloudType,
      gpuTypeId: input.gpuTypeId,
      gpuCount: input.gpuCount,
      name: input.name,
      imageName: input.imageName,
      dockerArgs: input.dockerArgs,
      containerDiskInGb: input.containerDiskInGb,
      volumeInGb: input.volumeInGb,
      volumeMountPath: "/workspace",
      env: Object.entries(input.env).map(([key, value]) => ({ key, value })),
    };
    const doing = `creating a ${input.gpuTypeId} pod in the ${input.cloudType.toLowerCase()} cloud`;
    if (input.bidPerGpu !== undefined) {
      const answer = await this.#call(
        doing,
        RENT_INTERRUPTABLE,
        { input: { ...common, bidPerGpu: input.bidPerGpu } },
        z.object({ podRentInterruptable: Pod.nullish() }),
        false,
      );
      if (!answer.podRentInterruptable) throw runpodNull(doing);
      return answer.podRentInterruptable;
    }
    const answer = await this.#call(
      doing,
      DEPLOY_ON_DEMAND,
      { input: common },
      z.object({ podFindAndDeployOnDemand: Pod.nullish() }),
      false,
    );
    if (!answer.podFindAndDeployOnDemand) throw runpodNull(doing);
    return answer.podFindAndDeployOnDemand;
  }

  async stop(podId: string): Promise<Pod | undefined> {
    const answer = await this.#call(
      `stopping pod ${podId}`,
      STOP,
      { podId },
      z.object({ podStop: Pod.nullish() }),
      false,
    );
    return answer.podStop ?? undefined;
  }

  async resume(podId: string, gpuCount: number, bidPerGpu?: number): Promise<Pod | undefined> {
    if (bidPerGpu !== undefined) {
      const answer = await this.#call(
        `resuming pod ${podId}`,
        BID_RESUME,
        { podId, gpuCount, bidPerGpu },
        z.object({ podBidResume: Pod.nullish() }),
        false,
      );
      return answer.podBidResume ?? undefined;
    }
    const answer = await this.#call(
      `resuming pod ${podId}`,
      RESUME,
      { podId, gpuCount },
      z.object({ podResume: Pod.nullish() }),
      false,
    );
    return answer.podResume ?? undefined;
  }

  async terminate(podId: string): Promise<void> {
    await this.#call(
      `terminating pod ${podId}`,
      TERMINATE,
      { podId },
      z.object({ podTerminate: z.unknown() }),
      false,
    );
  }
}

// RunPod answers some refusals with `null` and no error; that is a capacity refusal in practice.
function runpodNull(doing: string): ProviderError {
  return new ProviderError(`RunPod created no pod while ${doing}`, {
    code: "capacity",
    hint: "Try another GPU type (--gpu, repeatable), the other cloud (--cloud), or later.",
  });
}

/** `KEY=value` strings as RunPod returns a pod's env, as a record. */
export function podEnv(pod: Pod): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of pod.env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}
