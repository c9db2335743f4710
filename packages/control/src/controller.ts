/**
 * RuntimeController: runtimectl's API for a training loop. Controls are
 * registered by path; `pollAndApply(ctx, everyS)` in the loop applies new
 * commands from the run's queue, in the queue's order, exactly once per rank,
 * and acks each one (docs/control.md).
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { ControlCursor, ControlEntry, ControlPage } from "@runctl/core";
import {
  type Ack,
  type ControlDescriptor,
  InternalError,
  type SequencedCommand,
  UserError,
} from "@runctl/core";
import type { Collective } from "./collective.ts";
import { fallbackId } from "./command-line.ts";
import { AppliedIds, ControlState } from "./cursor.ts";
import { FileQueue } from "./file-queue.ts";
import { isJsonValue } from "./json-value.ts";
import { CONTROL_DIR_ENV } from "./layout.ts";
import { nextCallsBetweenPolls, type PollMark } from "./poll-schedule.ts";
import { type Kwargs, Validated } from "./validated.ts";

/**
 * `apply(ctx, ...args, kwargs)`: the validated arguments, then the keyword
 * arguments (always an object, `{}` when none). May return a promise.
 */
export type ApplyFn<Ctx> = {
  // Method syntax keeps parameters bivariant, so `(ctx, mult: number) => …` is accepted.
  bivarianceHack(ctx: Ctx, ...argsThenKwargs: unknown[]): unknown;
}["bivarianceHack"];

/**
 * `validate(...args, kwargs)`: throws to refuse, returns the normalised value
 * (see `Validated` for how one value, several args, or args and kwargs are told apart).
 */
export type ValidateFn = {
  bivarianceHack(...argsThenKwargs: unknown[]): unknown;
}["bivarianceHack"];

export interface RegisterOptions {
  /** Replace a control already registered at this path (default: keep the first, like runtimectl). */
  overwrite?: boolean;
  description?: string;
  /** JSON Schema of the arguments, shown by `runctl ctl <run> controls`. */
  schema?: Record<string, unknown>;
  /** The control's current value for `controls.json`, or a function returning it. */
  value?: unknown;
}

export interface RuntimeControllerOptions {
  /** The queue directory; default `RUNCTL_CONTROL_DIR` (set by runctl for its runs). */
  queueDir?: string;
  /** Default `RANK`, else 0. */
  rank?: number;
  /** Default `WORLD_SIZE`, else 1. */
  worldSize?: number;
  /**
   * Joins the ranks for the agreement: rank 0 reads, every rank applies what it
   * broadcasts. Without one, each rank reads the queue itself.
   */
  collective?: Collective;
  /** Where the defaults come from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface PollSchedule {
  /** `pollAndApply` calls made so far. */
  calls: number;
  /**
   * The call index of the next poll point under the agreement (the same on
   * every rank); null for a rank on its own, which polls by the clock.
   */
  nextPoll: number | null;
}

interface Control<Ctx> {
  apply: ApplyFn<Ctx>;
  validate: ValidateFn | undefined;
  description: string | undefined;
  schema: Record<string, unknown> | undefined;
  value: unknown;
}

/** What one poll hands to every rank: the entries to apply and the cursor after them. */
interface PollPayload {
  entries: ControlEntry[];
  cursor: ControlCursor;
}

interface Normalised {
  args: unknown[];
  kwargs: Kwargs;
}

export class RuntimeController<Ctx = unknown> {
  readonly rank: number;
  readonly worldSize: number;
  /** Set by the standard `run.stop` control; the training loop checks it. */
  stopRequested = false;

  #queue: FileQueue | undefined;
  #controls = new Map<string, Control<Ctx>>();
  #collective: Collective | undefined;
  #checkpoint: ApplyFn<Ctx> | undefined;
  #cursor: ControlCursor = { seq: 0, offset: 0 };
  #applied = new AppliedIds();
  #stateLoaded = false;
  #calls = 0;
  #nextPoll = 0;
  #k = 1;
  #lastPoll: PollMark | undefined;
  #lastPollMs: number | undefined;
  #polling = false;

  constructor(options: RuntimeControllerOptions = {}) {
    const env = options.env ?? process.env;
    this.worldSize = options.worldSize ?? envInt(env, "WORLD_SIZE") ?? 1;
    this.rank = options.rank ?? envInt(env, "RANK") ?? 0;
    if (!Number.isInteger(this.worldSize) || this.worldSize < 1) {
      throw new UserError(`world size must be a positive integer, got ${this.worldSize}`, {
        code: "invalid_rank",
      });
    }
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new UserError(`rank must be an integer in [0, ${this.worldSize}), got ${this.rank}`, {
        code: "invalid_rank",
      });
    }
    this.#collective = options.collective;
    this.#registerStandardControls();
    const queueDir = options.queueDir ?? (env[CONTROL_DIR_ENV] || undefined);
    if (queueDir !== undefined) this.configure(queueDir);
  }

  /** Appends a `set` command to a queue directory, as `runctl ctl` does. */
  static async enqueue(
    queueDir: string,
    path: string,
    args: unknown[] = [],
    kwargs: Kwargs = {},
  ): Promise<SequencedCommand> {
    const queue = new FileQueue(queueDir);
    try {
      return await queue.publish({ op: "set", path, args, kwargs });
    } finally {
      await queue.close();
    }
  }

  get queueDir(): string | undefined {
    return this.#queue?.dir;
  }

  /** Where the poll schedule stands. */
  get schedule(): PollSchedule {
    return { calls: this.#calls, nextPoll: this.#agreeing ? this.#nextPoll : null };
  }

  get #agreeing(): boolean {
    return this.#collective !== undefined && this.worldSize > 1;
  }

  /**
   * Sets the queue directory (once; again with the same directory is a no-op).
   * Restores this rank's cursor file unless `loadStateDict` already ran, and
   * on rank 0 writes `controls.json`.
   */
  configure(queueDir: string): void {
    if (this.#queue !== undefined) {
      if (resolve(this.#queue.dir) === resolve(queueDir)) return;
      throw new UserError(`RuntimeController is already configured with ${this.#queue.dir}`, {
        code: "control_already_configured",
      });
    }
    mkdirSync(queueDir, { recursive: true });
    const queue = new FileQueue(queueDir);
    if (!this.#stateLoaded) {
      const state = queue.readState(this.rank);
      if (state !== null) this.#restore(state);
    }
    this.#queue = queue;
    this.#describeControls();
  }

  /**
   * Registers a control. A path already registered keeps its first control
   * unless `overwrite` is set (runtimectl's behaviour), the standard ones included.
   */
  register(path: string, apply: ApplyFn<Ctx>, validate?: ValidateFn, options: RegisterOptions = {}): void {
    if (typeof path !== "string" || path === "") {
      throw new UserError("a control path must be a non-empty string", { code: "invalid_control" });
    }
    if (this.#controls.has(path) && options.overwrite !== true) return;
    this.#controls.set(path, {
      apply,
      validate,
      description: options.description,
      schema: options.schema,
      value: options.value,
    });
    this.#describeControls();
  }

  /** The hook the standard `checkpoint.save` control calls: `fn(ctx, ...args, kwargs)`. */
  onCheckpoint(fn: ApplyFn<Ctx>): void {
    this.#checkpoint = fn;
  }

  /** The registered controls as published in `controls.json`. */
  controls(): ControlDescriptor[] {
    return [...this.#controls].map(([path, control]) => describe(path, control));
  }

  /**
   * Call once per training step; returns the acks this call wrote. A rank on
   * its own polls at most once every `everyS` seconds. Under the agreement
   * (a collective and world size > 1) every rank polls at call 0 and then every
   * `k` calls, `k` keeping polls about `everyS` apart. Between polls it touches
   * no file and no collective.
   */
  async pollAndApply(ctx: Ctx, everyS = 2.0): Promise<Ack[]> {
    const queue = this.#queue;
    if (queue === undefined) {
      throw new UserError("the control queue is not configured", {
        code: "control_not_configured",
        hint: `Call configure(queueDir) first, or run under runctl, which sets ${CONTROL_DIR_ENV}.`,
      });
    }
    const call = this.#calls++;
    if (this.#agreeing) {
      if (call < this.#nextPoll) return [];
    } else {
      const now = performance.now();
      if (everyS > 0 && this.#lastPollMs !== undefined && now - this.#lastPollMs < everyS * 1000) return [];
      this.#lastPollMs = now;
    }
    if (this.#polling) {
      throw new UserError("pollAndApply was called before the previous call finished", {
        code: "control_poll_overlap",
        hint: "Await every pollAndApply call.",
      });
    }
    this.#polling = true;
    try {
      let payload: PollPayload | null;
      if (this.#agreeing) {
        const { payload: agreed, k } = await this.#pollTogether(queue, call, everyS);
        this.#k = k;
        this.#nextPoll = call + k;
        payload = agreed;
      } else {
        payload = this.#fresh(await queue.read(this.#cursor));
      }
      return payload === null ? [] : await this.#applyAll(queue, payload, ctx);
    } finally {
      this.#polling = false;
    }
  }

  /** `{seq, offset, applied_ids}`: save it in a checkpoint, restore it with `loadStateDict`. */
  stateDict(): ControlState {
    return { seq: this.#cursor.seq, offset: this.#cursor.offset, applied_ids: this.#applied.toArray() };
  }

  /** Restores a `stateDict()`; it replaces this rank's cursor file. */
  loadStateDict(state: unknown): void {
    const parsed = ControlState.safeParse(state);
    if (!parsed.success) {
      throw new UserError("not a RuntimeController state dict", {
        code: "invalid_control_state",
        hint: "Pass what stateDict() returned: {seq, offset, applied_ids}.",
      });
    }
    this.#restore(parsed.data);
    this.#stateLoaded = true;
    this.#queue?.writeState(this.rank, this.stateDict());
  }

  async close(): Promise<void> {
    await this.#queue?.close();
  }

  /**
   * Rank 0 reads and broadcasts `[consumed, k]`, then (when it consumed lines)
   * the entries to apply and its cursor after them; the other ranks receive.
   */
  async #pollTogether(queue: FileQueue, call: number, everyS: number) {
    const collective = this.#collective as Collective;
    if (this.rank === 0) {
      const now = { call, atMs: performance.now() };
      const k = nextCallsBetweenPolls(this.#k, this.#lastPoll, now, everyS);
      this.#lastPoll = now;
      let payload: PollPayload | null = null;
      try {
        payload = this.#fresh(await queue.read(this.#cursor));
      } catch (error) {
        // Never leave the other ranks waiting in the broadcast, nor stop training for it.
        process.emitWarning(`could not read the control queue ${queue.dir}: ${messageOf(error)}`, {
          code: "RUNCTL_CONTROL_READ",
        });
      }
      const consumed = payload === null ? 0 : payload.cursor.seq - this.#cursor.seq;
      await collective.broadcast([consumed, k]);
      if (consumed > 0) await collective.broadcastObject(payload);
      return { payload: consumed > 0 ? payload : null, k };
    }
    const [consumed, k] = await collective.broadcast([0, 0]);
    if (!isCount(consumed) || !isCount(k) || k < 1) {
      throw new InternalError(`the control broadcast carried [${consumed}, ${k}]`, {
        code: "control_broadcast_invalid",
      });
    }
    const payload = consumed > 0 ? await collective.broadcastObject<PollPayload | null>(null) : null;
    return { payload, k };
  }

  /**
   * The page's entries to apply: not applied before (nor repeated within the
   * page) and not the supervisor's `signal`; null when nothing was consumed.
   */
  #fresh(page: ControlPage): PollPayload | null {
    if (page.cursor.seq === this.#cursor.seq && page.cursor.offset === this.#cursor.offset) return null;
    const seen = new Set<string>();
    const entries = page.entries.filter((entry) => {
      const id = dedupId(entry);
      if (id !== undefined) {
        if (this.#applied.has(id) || seen.has(id)) return false;
        seen.add(id);
      }
      return !(entry.kind === "command" && entry.command.op === "signal");
    });
    return { entries, cursor: page.cursor };
  }

  async #applyAll(queue: FileQueue, payload: PollPayload, ctx: Ctx): Promise<Ack[]> {
    const acks: Ack[] = [];
    for (const entry of payload.entries) {
      const ack = await this.#applyEntry(entry, ctx);
      queue.appendAckSync(ack);
      const id = dedupId(entry);
      if (id !== undefined) this.#applied.add(id);
      acks.push(ack);
    }
    this.#cursor = { seq: payload.cursor.seq, offset: payload.cursor.offset };
    queue.writeState(this.rank, this.stateDict());
    if (acks.some((a) => a.status === "applied")) this.#describeControls();
    return acks;
  }

  /** docs/control.md, "Ack": checks in order, then validate and apply. */
  async #applyEntry(entry: ControlEntry, ctx: Ctx): Promise<Ack> {
    const where = { rank: this.rank, world_size: this.worldSize, seq: entry.seq };
    if (entry.kind === "malformed") {
      return {
        id: entry.id,
        ts: nowS(),
        path: entry.path,
        op: entry.op,
        status: "rejected",
        error: entry.reason,
        ...where,
      };
    }
    const { id, op, path, args, kwargs } = entry.command;
    const ack = (fields: Pick<Ack, "status" | "error" | "value">): Ack => {
      const out: Ack = { id, ts: nowS(), path, op, status: fields.status, ...where };
      if (fields.error !== undefined) out.error = fields.error;
      if (fields.value !== undefined && isJsonValue(fields.value)) out.value = fields.value;
      return out;
    };
    if (op !== "set") return ack({ status: "rejected", error: `unsupported op: ${op}` });
    const control = path === null ? undefined : this.#controls.get(path);
    if (control === undefined) return ack({ status: "rejected", error: `unknown path: ${path ?? "null"}` });
    let call: Normalised;
    try {
      call = await normalise(control.validate, args, kwargs);
    } catch (error) {
      return ack({ status: "failed", error: messageOf(error) });
    }
    try {
      await control.apply(ctx, ...call.args, call.kwargs);
    } catch (error) {
      return ack({ status: "failed", error: messageOf(error) });
    }
    return ack({ status: "applied", value: ackValue(call.args, call.kwargs) });
  }

  #restore(state: ControlState): void {
    this.#cursor = { seq: state.seq, offset: state.offset };
    this.#applied = new AppliedIds(state.applied_ids);
  }

  /** Rank 0 keeps `controls.json` current; other ranks never write it. */
  #describeControls(): void {
    if (this.rank !== 0 || this.#queue === undefined) return;
    this.#queue.writeControlsSync(this.controls());
  }

  #registerStandardControls(): void {
    this.register(
      "run.stop",
      () => {
        this.stopRequested = true;
      },
      undefined,
      {
        description: "Ask the training loop to stop: sets stopRequested, which the loop checks.",
        value: () => this.stopRequested,
      },
    );
    this.register(
      "checkpoint.save",
      async (ctx: Ctx, ...argsThenKwargs: unknown[]) => {
        const hook = this.#checkpoint;
        if (hook === undefined) {
          throw new Error("no checkpoint hook: the training script must register one with onCheckpoint(fn)");
        }
        await hook(ctx, ...argsThenKwargs);
      },
      undefined,
      { description: "Save a checkpoint now, through the hook registered with onCheckpoint." },
    );
  }
}

/** Runs the validator and sorts its result into the args and kwargs of apply (see `Validated`). */
async function normalise(
  validate: ValidateFn | undefined,
  args: unknown[],
  kwargs: Kwargs,
): Promise<Normalised> {
  if (validate === undefined) return { args, kwargs };
  const result: unknown = await validate(...args, kwargs);
  if (result === undefined) return { args, kwargs };
  if (Validated.is(result)) return { args: [...result.args], kwargs: { ...result.kwargs } };
  return { args: [result], kwargs: {} };
}

/** The ack's value: the one argument, the list of several, `{args, kwargs}` with kwargs, none without arguments. */
function ackValue(args: unknown[], kwargs: Kwargs): unknown {
  if (Object.keys(kwargs).length > 0) return { args, kwargs };
  if (args.length === 1) return args[0];
  return args.length > 0 ? args : undefined;
}

/** The id an entry is de-duplicated by: a JSON object's own id; none for other lines. */
function dedupId(entry: ControlEntry): string | undefined {
  if (entry.kind === "malformed" && !(entry.fromObject ?? entry.op !== "invalid")) return undefined;
  const id = entry.kind === "command" ? entry.command.id : entry.id;
  return id === fallbackId(entry.seq) ? undefined : id;
}

function describe<Ctx>(path: string, control: Control<Ctx>): ControlDescriptor {
  const out: ControlDescriptor = { path };
  if (control.description !== undefined) out.description = control.description;
  if (control.schema !== undefined) out.schema = control.schema;
  let value = control.value;
  if (typeof value === "function") {
    try {
      value = value();
    } catch {
      value = undefined;
    }
  }
  if (value !== undefined && isJsonValue(value)) out.value = value;
  return out;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function nowS(): number {
  return Date.now() / 1000;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function envInt(env: Readonly<Record<string, string | undefined>>, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) {
    throw new UserError(`${name}=${raw} is not an integer`, { code: "invalid_rank" });
  }
  return n;
}
