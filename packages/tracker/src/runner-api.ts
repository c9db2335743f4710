/**
 * The job server's Runner API (docs/runner.md): runner records, their
 * services, and tasks (jobs of kind `runner_task`). A task's `payload` is
 * the descriptor the worker's Python executor reads (its arguments or their
 * store key, the key its result goes to); the server only stores it, so the
 * pickle format stays between the Python client and the Python executor.
 */
import { z } from "zod";
import { JobResponse } from "./queue-api.ts";

const Name = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits and . _ - only, starting with a letter or digit");

/** A runner's name: also the store prefix of its objects (`runners/<name>/`). */
export const RunnerName = Name;
/** A service's id within its runner. */
export const ServiceId = Name;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 in lowercase hex");
/** A key inside the runner's prefix: relative, no `..`, no empty segments. */
const ObjectKey = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, "a relative key of letters, digits, . _ - and /")
  .refine((key) => !key.split("/").includes(".."), "has a `..` segment");

export const RunnerCreate = z.strictObject({
  name: RunnerName,
  /** The code bundle's key; the archive is `bundles/<key>.tar.gz` in the store. */
  bundle_key: Sha256Hex,
  /** Where the bundle, the objects and the results live (`file://…`, `s3://…`). */
  store_url: z.string().min(1).max(4096).url(),
  /** The creating session's id: only it may close the runner. */
  owner: z.string().min(8).max(100),
  /** Refuse (409 `runner_exists`) instead of reusing a runner of the same name. */
  fail_if_exists: z.boolean().default(false),
});
export type RunnerCreate = z.input<typeof RunnerCreate>;

export const ServiceResponse = z.object({
  id: ServiceId,
  runner: RunnerName,
  /** An instance pinned to one worker process, which keeps its state across calls. */
  stateful: z.boolean(),
  /** Store key (under the runner's prefix) of the pickled function, class or instance. */
  target: ObjectKey,
  /** What it is, for people: `module.qualname`. */
  label: z.string(),
  gpus: z.number().int().min(0),
  /** At most this many of its tasks run at once, across all workers; null for no limit. */
  max_instances: z.number().int().min(1).nullish(),
  /** The worker a stateful service is pinned to, once its first task was claimed. */
  worker_id: z.string().nullish(),
  created_at: z.string(),
});
export type ServiceResponse = z.infer<typeof ServiceResponse>;

export const RunnerResponse = z.object({
  name: RunnerName,
  bundle_key: Sha256Hex,
  store_url: z.string(),
  /** The key prefix of everything the runner puts in the store. */
  prefix: z.string(),
  owner: z.string(),
  created_at: z.string(),
  services: z.array(ServiceResponse).default([]),
});
export type RunnerResponse = z.infer<typeof RunnerResponse>;

export const RunnerCreateResponse = z.object({
  runner: RunnerResponse,
  /** False when a runner of that name existed and is reused (not owned by this session). */
  created: z.boolean(),
});
export type RunnerCreateResponse = z.infer<typeof RunnerCreateResponse>;

export const ServiceCreate = z.strictObject({
  id: ServiceId,
  stateful: z.boolean().default(false),
  target: ObjectKey,
  label: z.string().max(500).default(""),
  gpus: z.number().int().min(0).max(64).default(0),
  max_instances: z.number().int().min(1).max(100_000).nullish(),
});
export type ServiceCreate = z.input<typeof ServiceCreate>;

export const ServiceCreateResponse = z.object({ service: ServiceResponse, created: z.boolean() });
export type ServiceCreateResponse = z.infer<typeof ServiceCreateResponse>;

/** One call: the method (`__call__` for a function) and the executor's descriptor. */
export const TaskCreate = z.strictObject({
  service: ServiceId,
  method: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a Python identifier"),
  payload: z.record(z.string(), z.unknown()),
  /** Tasks whose results this one reads: it is claimable once they completed, and fails if one did not. */
  depends_on: z.array(z.number().int().min(1)).max(1000).default([]),
  timeout_seconds: z
    .number()
    .positive()
    .max(24 * 86_400)
    .nullish(),
  max_retries: z.number().int().min(0).max(100).default(0),
  idempotency_key: z.string().min(1).max(200).nullish(),
});
export type TaskCreate = z.input<typeof TaskCreate>;

export const TasksCreate = z.strictObject({ tasks: z.array(TaskCreate).min(1).max(1000) });
export type TasksCreate = z.input<typeof TasksCreate>;

export const TasksCreateResponse = z.object({
  tasks: z.array(z.object({ job_id: z.number().int(), created: z.boolean() })),
});
export type TasksCreateResponse = z.infer<typeof TasksCreateResponse>;

/** `GET /runners/{name}/tasks?ids=1,2,3`: the tasks' records, for futures waiting on them. */
export const TaskListResponse = z.object({ tasks: z.array(JobResponse) });
export type TaskListResponse = z.infer<typeof TaskListResponse>;

/** Cancels some of a runner's tasks (a session that reused a runner, closing: only its own). */
export const TasksCancel = z.strictObject({ ids: z.array(z.number().int().min(1)).min(1).max(10_000) });
export type TasksCancel = z.input<typeof TasksCancel>;

export const TasksCancelResponse = z.object({
  cancelled: z.array(z.number().int()),
  cancel_requested: z.array(z.number().int()),
});
export type TasksCancelResponse = z.infer<typeof TasksCancelResponse>;

export const RunnerCloseRequest = z.strictObject({ owner: z.string().min(8).max(100) });
export type RunnerCloseRequest = z.input<typeof RunnerCloseRequest>;

export const RunnerCloseResponse = z.object({
  message: z.string(),
  /** Queued tasks cancelled at once. */
  cancelled: z.array(z.number().int()),
  /** Running tasks whose workers stop them at their next heartbeat. */
  cancel_requested: z.array(z.number().int()),
});
export type RunnerCloseResponse = z.infer<typeof RunnerCloseResponse>;
