/**
 * A RunPod GraphQL API emulator on loopback, built on graphql-js: POST `/graphql` with
 * `{query, variables, operationName}`, the API key as `Authorization: Bearer <key>` or
 * `?api_key=<key>` (both as RunPod accepts them), answers and errors in GraphQL's shapes with
 * RunPod's messages. Faults are injected in-process (`emulator.cloud`) or over HTTP under
 * `/__emulator/` (loopback only), so a test driving a CLI process can use them too.
 *
 *   const runpod = await startRunPodEmulator();
 *   // [runpod] api_url = runpod.url, RUNPOD_API_KEY = runpod.apiKey
 *   runpod.cloud.refuseCapacity({ gpuTypeId: "NVIDIA RTX A6000", cloud: "SECURE" });
 *   await runpod.stop();
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  buildSchema,
  execute,
  type GraphQLError,
  Kind,
  type OperationDefinitionNode,
  parse,
  validate,
} from "graphql";
import { z } from "zod";
import {
  CapacityFault,
  type CloudType,
  ErrorFault,
  type GpuTypeRecord,
  type PodMachineHook,
  type PodRecord,
  RunPodCloud,
  RunPodFailure,
} from "./cloud.ts";
import { RUNPOD_SDL } from "./schema.ts";

/** The key the emulator accepts when none is given. */
export const DEFAULT_RUNPOD_API_KEY = "rpa_RUNCTLEMULATOR0000000000000000";

export interface RunPodEmulatorOptions {
  port?: number;
  host?: string;
  /** API keys accepted; default the one DEFAULT_RUNPOD_API_KEY. */
  apiKeys?: readonly string[];
  /** How long a pod's `runtime` stays null after create or resume (ms). Default 10. */
  transitionMs?: number;
  /** Starts a pod's container (its dockerArgs and env); the default runs nothing. */
  machine?: PodMachineHook;
}

export interface RunPodEmulator {
  /** `http://127.0.0.1:PORT/graphql`, for `[runpod] api_url`. */
  url: string;
  port: number;
  /** The first accepted key. */
  apiKey: string;
  cloud: RunPodCloud;
  stop(): Promise<void>;
}

const GraphQLBody = z.object({
  query: z.string().min(1),
  variables: z.record(z.string(), z.unknown()).nullish(),
  operationName: z.string().nullish(),
});

const schema = buildSchema(RUNPOD_SDL);

const Env = z.array(z.object({ key: z.string(), value: z.string().nullish() })).nullish();
const LaunchArgs = z.object({
  input: z.object({
    bidPerGpu: z.number().optional(),
    cloudType: z.enum(["SECURE", "COMMUNITY", "ALL"]).nullish(),
    gpuCount: z.number().int().nullish(),
    gpuTypeId: z.string().nullish(),
    name: z.string().nullish(),
    imageName: z.string().nullish(),
    dockerArgs: z.string().nullish(),
    containerDiskInGb: z.number().int().nullish(),
    volumeInGb: z.number().int().nullish(),
    env: Env,
  }),
});
const PodIdArgs = z.object({ input: z.object({ podId: z.string() }) });
/** What a pod-scoped key may do: read, stop and terminate its own pod. */
const POD_KEY_FIELDS = new Set(["pod", "podStop", "podTerminate"]);

const ResumeArgs = z.object({
  input: z.object({ podId: z.string(), gpuCount: z.number().int(), bidPerGpu: z.number().optional() }),
});

function podView(pod: PodRecord, cloud: RunPodCloud) {
  const type = cloud.gpuType(pod.gpuTypeId) as GpuTypeRecord;
  return {
    id: pod.id,
    name: pod.name,
    desiredStatus: pod.desiredStatus,
    podType: pod.podType,
    imageName: pod.imageName,
    dockerArgs: pod.dockerArgs,
    env: Object.entries(pod.env).map(([k, v]) => `${k}=${v}`),
    gpuCount: pod.gpuCount,
    costPerHr: pod.costPerHr,
    containerDiskInGb: pod.containerDiskInGb,
    volumeInGb: pod.volumeInGb,
    volumeMountPath: "/workspace",
    machineId: pod.machineId,
    lastStatusChange: `${pod.desiredStatus === "RUNNING" ? "Rented by User" : "Exited by User"}: ${new Date(pod.startedAt).toString()}`,
    uptimeSeconds: pod.ready ? Math.floor((Date.now() - pod.startedAt) / 1000) : 0,
    runtime: pod.ready
      ? { uptimeInSeconds: Math.floor((Date.now() - pod.startedAt) / 1000), ports: [] }
      : null,
    machine: { podHostId: `${pod.id}-${pod.machineId.slice(0, 8)}`, gpuDisplayName: type.displayName },
  };
}

function gpuTypeView(type: GpuTypeRecord, cloud: RunPodCloud) {
  return {
    ...type,
    secureCloud: true,
    communityCloud: true,
    lowestPrice: (args: { input?: { gpuCount?: number | null; secureCloud?: boolean | null } | null }) => {
      const clouds: CloudType[] =
        args.input?.secureCloud === true
          ? ["SECURE"]
          : args.input?.secureCloud === false
            ? ["COMMUNITY"]
            : ["COMMUNITY", "SECURE"];
      const price = (market: "spot" | "on-demand", per: (c: CloudType) => number) => {
        const open = clouds.filter((c) => cloud.available(type.id, c, market)).map(per);
        return open.length === 0 ? null : Math.min(...open);
      };
      const uninterruptablePrice = price("on-demand", (c) =>
        c === "SECURE" ? type.securePrice : type.communityPrice,
      );
      const minimumBidPrice = price("spot", (c) =>
        c === "SECURE" ? type.secureSpotPrice : type.communitySpotPrice,
      );
      return {
        gpuName: type.displayName,
        gpuTypeId: type.id,
        uninterruptablePrice,
        minimumBidPrice,
        stockStatus: uninterruptablePrice === null && minimumBidPrice === null ? null : "High",
      };
    },
  };
}

/** A pod-scoped key (the context's `podScope`) reaches its own pod only. */
function ownPod(podId: string, context: unknown): string {
  const scope = (context as { podScope?: string } | undefined)?.podScope;
  if (scope !== undefined && scope !== podId) throw new RunPodFailure(UNAUTHORIZED);
  return podId;
}

const UNAUTHORIZED = "Unauthorized request, please check your API key.";

function rootValue(cloud: RunPodCloud) {
  const launch = (raw: unknown, spot: boolean) => {
    const { input } = LaunchArgs.parse(raw);
    if (spot && input.bidPerGpu === undefined) throw new RunPodFailure("bidPerGpu is required");
    const pod = cloud.launch({
      gpuTypeId: input.gpuTypeId ?? "",
      gpuCount: input.gpuCount ?? 1,
      cloudType: input.cloudType ?? "ALL",
      name: input.name ?? "",
      imageName: input.imageName ?? "runpod/base:0.4.0-cuda11.8.0",
      dockerArgs: input.dockerArgs ?? "",
      containerDiskInGb: input.containerDiskInGb ?? 20,
      volumeInGb: input.volumeInGb ?? 0,
      env: Object.fromEntries((input.env ?? []).map((e) => [e.key, e.value ?? ""])),
      ...(spot ? { bidPerGpu: input.bidPerGpu } : {}),
    });
    return podView(pod, cloud);
  };
  return {
    myself: () => ({
      id: "user_emulator",
      pods: () => [...cloud.pods.values()].map((p) => podView(p, cloud)),
    }),
    pod: (raw: unknown, context: unknown) => {
      const pod = cloud.pods.get(ownPod(PodIdArgs.parse(raw).input.podId, context));
      return pod === undefined ? null : podView(pod, cloud);
    },
    gpuTypes: (args: { input?: { id?: string | null } | null }) =>
      cloud.gpuTypes
        .filter((g) => !args.input?.id || g.id === args.input.id)
        .map((g) => gpuTypeView(g, cloud)),
    podFindAndDeployOnDemand: (raw: unknown) => launch(raw, false),
    podRentInterruptable: (raw: unknown) => launch(raw, true),
    podStop: (raw: unknown, context: unknown) =>
      podView(cloud.stop(ownPod(PodIdArgs.parse(raw).input.podId, context)), cloud),
    podResume: (raw: unknown) => {
      const { input } = ResumeArgs.parse(raw);
      return podView(cloud.resume(input.podId, input.gpuCount), cloud);
    },
    podBidResume: (raw: unknown) => {
      const { input } = ResumeArgs.parse(raw);
      return podView(cloud.resume(input.podId, input.gpuCount, input.bidPerGpu ?? 0), cloud);
    },
    podTerminate: (raw: unknown, context: unknown) => {
      cloud.terminate(ownPod(PodIdArgs.parse(raw).input.podId, context));
      return null;
    },
  };
}

function errorJson(e: GraphQLError, code: string) {
  return {
    message: e.message,
    ...(e.locations ? { locations: e.locations } : {}),
    ...(e.path ? { path: e.path } : {}),
    extensions: { code },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startRunPodEmulator(options: RunPodEmulatorOptions = {}): Promise<RunPodEmulator> {
  const keys = new Set(options.apiKeys ?? [DEFAULT_RUNPOD_API_KEY]);
  const cloud = new RunPodCloud({
    ...(options.transitionMs !== undefined ? { transitionMs: options.transitionMs } : {}),
    ...(options.machine ? { machine: options.machine } : {}),
  });
  const root = rootValue(cloud);

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  const admin = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (path === "/__emulator/faults" && req.method === "POST") {
      const body = z
        .object({ capacity: z.array(CapacityFault).default([]), errors: z.array(ErrorFault).default([]) })
        .parse(JSON.parse((await readBody(req)) || "{}"));
      for (const f of body.capacity) cloud.refuseCapacity(f);
      for (const f of body.errors) cloud.failNext(f);
      return send(res, 200, { ok: true });
    }
    if (path === "/__emulator/faults" && req.method === "DELETE") {
      cloud.clearFaults();
      return send(res, 200, { ok: true });
    }
    const interrupt = /^\/__emulator\/pods\/([A-Za-z0-9]+)\/interrupt$/.exec(path);
    if (interrupt && req.method === "POST") {
      return send(res, 200, podView(cloud.interrupt(interrupt[1] as string), cloud));
    }
    if (path === "/__emulator/pods" && req.method === "GET") {
      return send(
        res,
        200,
        [...cloud.pods.values()].map((p) => ({
          ...podView(p, cloud),
          gpuTypeId: p.gpuTypeId,
          cloud: p.cloud,
        })),
      );
    }
    if (path === "/__emulator/calls" && req.method === "GET") return send(res, 200, cloud.calls);
    return send(res, 404, { error: `no emulator route ${req.method} ${path}` });
  };

  const graphql = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const key = bearer ?? url.searchParams.get("api_key") ?? undefined;
    // RunPod puts a key scoped to the pod in every pod (RUNPOD_API_KEY): it reaches that pod only.
    const podScope = key !== undefined && !keys.has(key) ? cloud.podOfKey(key)?.id : undefined;
    const unauthorized = () =>
      send(res, 401, { errors: [{ message: UNAUTHORIZED, extensions: { code: "UNAUTHENTICATED" } }] });
    if (key === undefined || (!keys.has(key) && podScope === undefined)) return unauthorized();
    if (req.method !== "POST") return send(res, 405, { errors: [{ message: "Use POST." }] });
    let body: z.infer<typeof GraphQLBody>;
    try {
      body = GraphQLBody.parse(JSON.parse(await readBody(req)));
    } catch {
      return send(res, 400, {
        errors: [
          { message: "POST body must be JSON {query, variables}", extensions: { code: "BAD_REQUEST" } },
        ],
      });
    }
    let document: ReturnType<typeof parse>;
    try {
      document = parse(body.query);
    } catch (error) {
      return send(res, 400, { errors: [errorJson(error as GraphQLError, "GRAPHQL_PARSE_FAILED")] });
    }
    const invalid = validate(schema, document);
    if (invalid.length > 0) {
      return send(res, 400, { errors: invalid.map((e) => errorJson(e, "GRAPHQL_VALIDATION_FAILED")) });
    }
    const operation = document.definitions.find(
      (d): d is OperationDefinitionNode =>
        d.kind === Kind.OPERATION_DEFINITION && (!body.operationName || d.name?.value === body.operationName),
    );
    const fields = (operation?.selectionSet.selections ?? []).flatMap((s) =>
      s.kind === Kind.FIELD ? [s.name.value] : [],
    );
    if (podScope !== undefined && !fields.every((f) => POD_KEY_FIELDS.has(f))) return unauthorized();
    for (const field of fields) {
      cloud.calls.push({
        field,
        query: body.query,
        variables: body.variables ?? {},
        ...(podScope !== undefined ? { podKeyOf: podScope } : {}),
      });
      const fault = cloud.takeError(field);
      if (fault) {
        return send(res, fault.status, {
          errors: [{ message: fault.message, path: [field], extensions: { code: "INTERNAL_SERVER_ERROR" } }],
          data: fault.status === 200 ? { [field]: null } : undefined,
        });
      }
    }
    const result = await execute({
      schema,
      document,
      rootValue: root,
      contextValue: { podScope },
      variableValues: body.variables ?? {},
      ...(body.operationName ? { operationName: body.operationName } : {}),
    });
    return send(res, 200, {
      ...(result.errors ? { errors: result.errors.map((e) => errorJson(e, "INTERNAL_SERVER_ERROR")) } : {}),
      data: result.data ?? null,
    });
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://emulator");
    const handler = url.pathname.startsWith("/__emulator/")
      ? admin(req, res, url.pathname)
      : url.pathname === "/graphql"
        ? graphql(req, res, url)
        : Promise.resolve(send(res, 404, { errors: [{ message: `no route ${url.pathname}` }] }));
    handler.catch((error: unknown) => {
      if (!res.headersSent) send(res, 400, { errors: [{ message: (error as Error).message }] });
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve),
  );
  const { port } = server.address() as AddressInfo;
  cloud.apiUrl = `http://${options.host ?? "127.0.0.1"}:${port}/graphql`;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}/graphql`,
    port,
    apiKey: [...keys][0] as string,
    cloud,
    async stop() {
      await cloud.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
