/**
 * The agent on a machine runctl started (`node agent.mjs host host.json`,
 * from the bootstrap): runs the host spec's run if it has one, then whatever
 * arrives on the machine's inbox, one at a time, and shuts the machine down
 * once it has had nothing to run for the idle time (counted from boot when
 * there is no first run). It keeps the machine's HostState (idle, running a
 * run, shutting down; the runs it took) in the store with the host's own POST
 * policy, and listens on the inbox with the host's own credential. For each run it
 *
 * - keeps the run directory synced to the store (every few seconds and once
 *   more at the end) through the run's own short-lived POST policy;
 * - publishes telemetry over NATS (output and metrics by offset, status,
 *   heartbeats) and bridges control, so `runctl logs -f` and
 *   `runctl ctl … --wait` work as for a local run;
 * - survives its own restart: a run whose directory says it ended is not run
 *   again; one that was cut short runs again as a new attempt of the same run;
 * - watches for the machine being reclaimed (the host spec's `interruptions`,
 *   preemption.ts): the run checkpoints and ends `preempted`, and nothing more runs.
 *
 * Nothing here accepts a connection: the machine only dials out.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  connectNats,
  hostSubjects,
  isTelemetryFile,
  NatsTelemetry,
  natsSettingsFromConfig,
} from "@runctl/control";
import {
  BOOTSTRAP_ERROR_FILE,
  type BootstrapReport,
  extractBundle,
  HOST_SPEC_VERSION,
  HostInboxMessage,
  type HostNats,
  type HostResume,
  type HostRun,
  type HostSpec,
  HostState,
  PostPolicyRunSync,
  type PresignedPost,
  parseAt,
  type RunSpec,
  type RunSyncTarget,
  TERMINAL_STATUSES,
  toRunctlError,
} from "@runctl/core";
import {
  ec2CheckpointBudgetMs,
  imdsEndpoint,
  instanceLifeCycle,
  preemptRun,
  recordUnfinishedPreemption,
  SIGTERM_CHECKPOINT_MS,
  type SpotNoticeWatcher,
  watchSpotNotice,
} from "./preemption.ts";
import { costRecorder } from "./run-cost.ts";
import { RunDirSync } from "./run-dir-sync.ts";
import { Supervisor } from "./supervisor.ts";

/** How often the run directory goes to the store while the run is live. */
const STORE_SYNC_MS = 2_000;
/** How often output and metrics go out as telemetry. */
const TELEMETRY_MS = 250;

export interface HostAgentOptions {
  /** The agent's home on the machine (`$RUNCTL_HOME`): runs, code, secrets. */
  home: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Where a run's directory is synced, given its run (the POST-policy target on a cloud machine). */
  storeTarget?: (run: HostRun, runDir: string) => HostStoreTarget | undefined;
  log: (line: string) => void;
}

/** A run-sync target; one that writes with a policy that expires also takes a renewed one. */
export type HostStoreTarget = RunSyncTarget & {
  readonly expiresAt?: string;
  renew?(post: PresignedPost): void;
};

export interface HostOutcome {
  /** Why the agent stopped: the machine went idle (and was told to shut down), or it was signalled. */
  reason: "idle" | "signal";
  runs: number;
}

export class HostAgent {
  readonly #spec: HostSpec;
  /** What the machine's own shutdown does (the host spec's, unless EC2 says otherwise). */
  #idleAction: HostSpec["idle"]["action"];
  readonly #options: HostAgentOptions;
  readonly #queue: HostRun[] = [];
  #current: Supervisor | undefined;
  /** Set once the machine has decided to shut down: the inbox refuses from then on. */
  #closing = false;
  #nc: NatsConnection | undefined;
  #inbox: Subscription | undefined;
  #stopping: NodeJS.Signals | undefined;
  #wake: (() => void) | undefined;
  #runs = 0;
  /** Where the machine's HostState goes: the host's POST policy for `hosts/<host>/`. */
  #record: PostPolicyRunSync | undefined;
  /** Writes of the HostState, one after another, in order. */
  #recording: Promise<void> = Promise.resolve();
  /** Every run this machine took, oldest first (kept across agent restarts in `host-state.json`). */
  #taken: string[] = [];
  #notices: SpotNoticeWatcher | undefined;
  /** The current run's store sync, one pass now: what a preemption pushes before the ranks stop. */
  #syncNow: (() => Promise<void>) | undefined;
  #preempting: Promise<void> | undefined;
  #reclaim: { reason: string; budgetMs: number } | undefined;

  constructor(spec: HostSpec, options: HostAgentOptions) {
    this.#spec = spec;
    this.#idleAction = spec.idle.action;
    this.#options = options;
    if (spec.run) this.#queue.push(spec.run);
  }

  /** NATS for the inbox and the host's status: the host's own credential, else the first run's. */
  get #hostNats(): HostNats | undefined {
    return this.#spec.nats ?? this.#spec.run?.nats;
  }

  /** Stops the current run (its ranks get `signal`) and the agent after it; no more runs start. */
  stop(signal: NodeJS.Signals): void {
    // On a machine whose reclaim comes as SIGTERM, that SIGTERM is the notice.
    // (Not once the agent is shutting the machine down itself: that SIGTERM is its own doing.)
    if (signal === "SIGTERM" && this.#spec.interruptions === "sigterm" && !this.#stopping && !this.#closing) {
      this.#preempt("the machine is being reclaimed (SIGTERM)", SIGTERM_CHECKPOINT_MS);
      return;
    }
    this.#stopping ??= signal;
    this.#current?.stop(signal);
    this.#wake?.();
  }

  async run(): Promise<HostOutcome> {
    const { home } = this.#options;
    await mkdir(join(home, "secrets"), { recursive: true, mode: 0o700 });
    const endpoint = imdsEndpoint(this.#options.env);
    if (this.#spec.interruptions === "ec2-imds" && (await instanceLifeCycle(endpoint)) === "on-demand") {
      // A spot launch that fell back to on-demand: nothing will reclaim it, and EC2 stops an
      // on-demand instance that shuts itself down.
      this.#options.log("an on-demand instance (the spot launch fell back): no spot notices to watch");
      this.#idleAction = "stop";
    } else if (this.#spec.interruptions === "ec2-imds") {
      this.#notices = watchSpotNotice({
        endpoint,
        log: this.#options.log,
        onNotice: (notice) =>
          this.#preempt(
            `spot interruption notice: ${notice.action} at ${notice.time}`,
            ec2CheckpointBudgetMs(notice),
          ),
      });
    }
    await this.#openRecord();
    const hostNats = this.#hostNats;
    if (hostNats) {
      this.#nc = await this.#connect(
        hostNats,
        this.#spec.nats ? ".host" : (this.#spec.run?.spec.runId ?? ".host"),
      );
      if (this.#spec.inbox) this.#listen(this.#nc);
    }
    try {
      for (;;) {
        const next = this.#queue.shift() ?? (await this.#idle());
        if (next === undefined) break;
        await this.#runOne(next);
        this.#runs += 1;
        if (this.#stopping) break;
      }
      this.#closing = true;
      if (!this.#stopping) {
        this.#publishHost({ state: "shutting_down", reason: "idle", action: this.#idleAction });
        this.#keepRecord("shutting_down");
      }
      await this.#recording;
    } finally {
      this.#notices?.stop();
      await this.#preempting;
      this.#inbox?.unsubscribe();
      await this.#nc?.drain().catch(() => undefined);
    }
    if (this.#stopping) return { reason: "signal", runs: this.#runs };
    await this.#shutdown();
    return { reason: "idle", runs: this.#runs };
  }

  /**
   * The machine is being reclaimed: the current run checkpoints and ends `preempted`
   * (preemption.ts), no other run starts, and the agent does not shut the machine down itself.
   */
  #preempt(reason: string, budgetMs: number): void {
    if (this.#stopping) return;
    this.#stopping = "SIGTERM";
    this.#closing = true;
    this.#reclaim = { reason, budgetMs: budgetMs };
    this.#options.log(reason);
    this.#wake?.();
    if (this.#current) this.#preemptCurrent(this.#current);
  }

  #preemptCurrent(supervisor: Supervisor): void {
    const reclaim = this.#reclaim;
    if (!reclaim || this.#preempting) return;
    this.#preempting = preemptRun(supervisor, {
      ...reclaim,
      syncNow: this.#syncNow ?? (async () => undefined),
      log: this.#options.log,
    });
  }

  /** Waits for an inbox run, or the idle time to pass (undefined: shut down). */
  async #idle(): Promise<HostRun | undefined> {
    if (this.#stopping) return undefined;
    const ms = this.#spec.idle.minutes * 60_000;
    this.#publishHost({ state: "idle", idle_ms: ms });
    this.#keepRecord("idle");
    this.#options.log(`idle; shutting down in ${this.#spec.idle.minutes} min unless a run arrives`);
    await new Promise<void>((wake) => {
      const timer = setTimeout(wake, ms);
      this.#wake = () => {
        clearTimeout(timer);
        wake();
      };
    });
    this.#wake = undefined;
    return this.#stopping ? undefined : this.#queue.shift();
  }

  #listen(nc: NatsConnection): void {
    const prefix = this.#hostNats?.prefix ?? "runctl";
    this.#inbox = nc.subscribe(hostSubjects(prefix, this.#spec.hostId).inbox, {
      callback: (_error, msg) => {
        let reply: Record<string, unknown>;
        let renew: HostInboxMessage["host"];
        try {
          const message = parseAt(HostInboxMessage, JSON.parse(new TextDecoder().decode(msg.data)), {
            what: "inbox message",
            kind: "user",
            code: "bad_inbox_message",
          });
          if (this.#stopping || this.#closing) {
            reply = {
              accepted: false,
              error: { code: "host_stopping", message: "the machine is shutting down" },
            };
          } else {
            this.#queue.push(message.run);
            const ahead = this.#queue.length - 1 + (this.#current ? 1 : 0);
            reply = { accepted: true, run: message.run.spec.runId, queued: ahead };
            renew = message.host;
            this.#wake?.();
          }
        } catch (error) {
          const err = toRunctlError(error);
          reply = { accepted: false, error: { code: err.code, message: err.message } };
        }
        if (msg.reply) msg.respond(new TextEncoder().encode(JSON.stringify(reply)));
        // After the answer: switching to the fresh credential reconnects.
        if (renew) void this.#renewHost(renew);
      },
    });
  }

  async #runOne(run: HostRun): Promise<void> {
    const { home, log, env } = this.#options;
    let spec: RunSpec;
    try {
      spec = await this.#resolve(run);
    } catch (error) {
      // Its code could not be fetched or unpacked: the run fails, the machine goes on.
      const err = toRunctlError(error);
      const runDir = join(at(home, run.spec.runsDir), run.spec.runId);
      log(`run ${run.spec.runId} did not start: ${err.message}`);
      await this.#reportStartFailure(run, runDir, err.message, undefined);
      return;
    }
    const runDir = join(spec.runsDir, spec.runId);
    if (await this.#ended(runDir)) {
      // The agent restarted after this run ended: it is not run again.
      this.#options.log(`run ${spec.runId} already ended; not running it again`);
      return;
    }
    // The agent died while the run was being preempted: it ends so, and is not run again.
    if (await recordUnfinishedPreemption(runDir)) {
      const store = this.#options.storeTarget?.(run, runDir);
      if (store)
        await this.#loop(new RunDirSync(runDir, store), store.location, STORE_SYNC_MS, true).finish();
      this.#options.log(`run ${spec.runId} was being preempted; recorded it preempted`);
      return;
    }
    if (!this.#taken.includes(spec.runId)) this.#taken.push(spec.runId);
    this.#keepRecord("running", spec.runId);
    let nc: NatsConnection | undefined;
    try {
      // The host's own credential may touch no run: each run connects with its own.
      const shared = !this.#spec.nats && run === this.#spec.run;
      nc = shared ? this.#nc : run.nats ? await this.#connect(run.nats, spec.runId) : undefined;
    } catch (error) {
      const reason = `cannot reach NATS: ${toRunctlError(error).message}`;
      log(`run ${spec.runId} did not start: ${reason}`);
      await this.#reportStartFailure(run, runDir, reason, undefined);
      return;
    }
    let supervisor: Supervisor;
    try {
      supervisor = await Supervisor.start(existsSync(runDir) ? { ...spec, continueRun: true } : spec, {
        env: { ...env, RUNCTL_HOME: home },
        onWarning: (message) => log(`warning: ${message}`),
      });
    } catch (error) {
      const err = toRunctlError(error);
      log(`run ${spec.runId} did not start: ${err.message}`);
      await this.#reportStartFailure(run, runDir, `${err.message}${err.hint ? ` (${err.hint})` : ""}`, nc);
      return;
    }
    log(`run ${spec.runId} started in ${supervisor.runDir}`);
    const telemetry = nc
      ? new NatsTelemetry(nc, run.nats?.prefix ?? "runctl", spec.runId, this.#spec.hostId)
      : undefined;
    this.#current = supervisor;
    const store = this.#options.storeTarget?.(run, supervisor.runDir);
    const cost = costRecorder(run.price ?? this.#spec.price, supervisor, (error) =>
      log(`cost: ${String(error)}`),
    );
    const storeLoop =
      store &&
      this.#loop(
        new RunDirSync(supervisor.runDir, store, { onFileError: fileError(log) }),
        store.location,
        STORE_SYNC_MS,
        true,
        cost.record,
      );
    this.#syncNow = storeLoop?.now;
    const loops = [
      storeLoop,
      telemetry &&
        this.#loop(
          new RunDirSync(supervisor.runDir, telemetry, {
            only: isTelemetryFile,
            onFileError: fileError(log),
          }),
          telemetry.location,
          TELEMETRY_MS,
          false,
        ),
    ].filter((loop) => loop !== undefined);
    const beat = telemetry && setInterval(() => telemetry.heartbeat(), this.#spec.heartbeatMs);
    const renewal = nc && run.nats?.creds ? this.#renewal(run, spec.runId, nc, store) : undefined;
    if (this.#reclaim) this.#preemptCurrent(supervisor);
    else if (this.#stopping) supervisor.stop(this.#stopping);
    const outcome = await supervisor.done;
    this.#syncNow = undefined;
    if (beat) clearInterval(beat);
    renewal?.stop();
    cost.record();
    await Promise.all(loops.map((loop) => loop.finish()));
    if (telemetry && !(await telemetry.publishEnd(outcome.status, outcome.exitCode)))
      log(`run ${spec.runId}: NATS unreachable, its end was not announced (the store copy has it)`);
    if (nc && nc !== this.#nc) await nc.drain().catch(() => undefined);
    this.#current = undefined;
    log(`run ${spec.runId} ended: ${outcome.status} (exit ${outcome.exitCode})`);
  }

  /**
   * Keeps the run's short-lived credential and POST policy alive: once a third
   * of their lifetime is left, asks the launching side over NATS for fresh ones
   * (docs/protocol.md, "Renewal"). The new credential goes to the run's creds
   * file, which every connection of the run reads again when it reconnects (the
   * server closes a connection whose credential expired); the new policy goes
   * to the store target. Without an answer the run goes on: the store copy
   * waits, nothing is lost, and the agent asks again.
   */
  #renewal(run: HostRun, runId: string, nc: NatsConnection, store: HostStoreTarget | undefined) {
    const { log } = this.#options;
    const prefix = run.nats?.prefix ?? "runctl";
    const expiry = () =>
      Math.min(
        Date.parse(run.nats?.credsExpiresAt ?? "") || Number.POSITIVE_INFINITY,
        store?.expiresAt ? Date.parse(store.expiresAt) : Number.POSITIVE_INFINITY,
      );
    let issued = Date.now();
    let asking = false;
    let failed = false;
    const tick = async () => {
      const soonest = expiry();
      if (!Number.isFinite(soonest) || asking) return;
      if (soonest - Date.now() > (soonest - issued) / 3) return;
      asking = true;
      try {
        const { renewRunCredentials } = await import("@runctl/control");
        const renewed = await renewRunCredentials(nc, { prefix, runId });
        await this.#writeCreds(runId, renewed.creds);
        run.nats = {
          ...(run.nats as HostNats),
          creds: renewed.creds,
          credsExpiresAt: renewed.expiresAt.toISOString(),
        };
        if (renewed.post) store?.renew?.(renewed.post);
        // Before the old credential expires and the server closes the connection.
        await nc.reconnect().catch(() => undefined);
        issued = Date.now();
        failed = false;
        log(`run ${runId}: credentials renewed until ${renewed.expiresAt.toISOString()}`);
      } catch (error) {
        if (!failed) log(`run ${runId}: renewal failed (asking again): ${toRunctlError(error).message}`);
        failed = true;
      } finally {
        asking = false;
      }
    };
    const lifetime = expiry() - issued;
    const every = Math.min(30_000, Math.max(250, Number.isFinite(lifetime) ? lifetime / 20 : 30_000));
    const timer = setInterval(() => void tick(), every);
    return { stop: () => clearInterval(timer) };
  }

  /**
   * A run that did not start: what its directory says (the supervisor's failed
   * meta.json, or, when it never got that far, the report a failed bootstrap
   * leaves, which readers show as failed with the reason) goes to the store,
   * and its status out as telemetry, so the user is not left waiting.
   */
  async #reportStartFailure(run: HostRun, runDir: string, reason: string, nc: NatsConnection | undefined) {
    const report: BootstrapReport = {
      v: 1,
      status: "failed",
      code: "start_failed",
      reason,
      at: new Date().toISOString(),
    };
    // The supervisor records a failure it meets once the run exists; before that there is no meta.json.
    if (!existsSync(join(runDir, "meta.json"))) {
      await mkdir(runDir, { recursive: true });
      await writeFile(join(runDir, BOOTSTRAP_ERROR_FILE), `${JSON.stringify(report)}\n`);
    }
    const store = this.#options.storeTarget?.(run, runDir);
    if (store) await this.#loop(new RunDirSync(runDir, store), store.location, STORE_SYNC_MS, false).finish();
    if (nc) {
      await new NatsTelemetry(nc, run.nats?.prefix ?? "runctl", run.spec.runId, this.#spec.hostId).publishEnd(
        "failed",
        null,
      );
      if (nc !== this.#nc) await nc.drain().catch(() => undefined);
    }
  }

  /** Syncs every `ms` until finish(), which waits for one last complete pass. */
  #loop(sync: RunDirSync, location: string, ms: number, resume: boolean, beforePass?: () => void) {
    const { log } = this.#options;
    let warned = false;
    const pass = () => {
      beforePass?.();
      return sync.sync().then(
        () => {
          warned = false;
        },
        (error: unknown) => {
          if (!warned) log(`sync to ${location}: ${toRunctlError(error).message} (retrying)`);
          warned = true;
        },
      );
    };
    const started = resume ? sync.resume().catch(() => undefined) : Promise.resolve();
    const timer = setInterval(() => void started.then(pass), ms);
    return {
      /** One pass now (after any in progress); its error is the caller's. */
      now: () =>
        started.then(() => {
          beforePass?.();
          return sync.sync();
        }),
      async finish() {
        clearInterval(timer);
        await started;
        // The last pass must get through: a store that is down for a while is waited for.
        for (let attempt = 0; attempt < 60; attempt += 1) {
          try {
            await sync.sync();
            return;
          } catch {
            await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** attempt)));
          }
        }
        log(`sync to ${location}: gave up on the final pass`);
      },
    };
  }

  async #resolve(run: HostRun): Promise<RunSpec> {
    const { home } = this.#options;
    const codeDir = run.code ? await this.#code(run.code) : join(home, "work");
    await mkdir(codeDir, { recursive: true });
    const spec: RunSpec = {
      ...run.spec,
      cwd: at(codeDir, run.spec.cwd),
      runsDir: at(home, run.spec.runsDir),
      checkpointDir: at(home, run.spec.checkpointDir),
      echo: false,
      stopWithParent: false,
      ...(run.resume
        ? {
            resume: {
              from: await this.#resumeCheckpoint(run.resume),
              passArg: run.resume.passArg,
              source: `${run.resume.run}/${run.resume.file}`,
            },
          }
        : {}),
    };
    if (run.nats) {
      const creds = run.nats.creds ? await this.#writeCreds(spec.runId, run.nats.creds) : undefined;
      spec.control = { kind: "nats", nats: natsSection(run.nats, creds) };
    }
    return spec;
  }

  /** A run's credential goes to a file only the agent reads, outside every run directory. */
  async #writeCreds(runId: string, creds: string): Promise<string> {
    const path = join(this.#options.home, "secrets", `${runId}.creds`);
    await writeFile(path, creds, { mode: 0o600 });
    await chmod(path, 0o600);
    return path;
  }

  /**
   * The code bundle's directory: extracted by the bootstrap for the first run; for an inbox run
   * with new code, fetched by its presigned URL, checked against its sha256 and extracted here.
   */
  async #code(code: NonNullable<HostRun["code"]>): Promise<string> {
    const { home, log } = this.#options;
    const dir = join(home, "code", code.sha256);
    if (existsSync(dir) || code.url === undefined) return dir;
    const tmp = join(home, "tmp");
    await mkdir(tmp, { recursive: true });
    const archive = join(tmp, `code-${code.sha256}.tar.gz`);
    const staging = join(tmp, `code-${code.sha256}`);
    try {
      log(`fetching code ${code.sha256}`);
      const got = await download(code.url, archive, "the code bundle", 10 * 60_000);
      if (got.sha256 !== code.sha256)
        throw new Error(`the code bundle's sha256 is ${got.sha256}, expected ${code.sha256}`);
      await rm(staging, { recursive: true, force: true });
      await extractBundle(archive, staging);
      await mkdir(join(home, "code"), { recursive: true });
      await rename(staging, dir);
      return dir;
    } finally {
      await rm(archive, { force: true });
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * An earlier run's checkpoint, fetched once into `<home>/resume/<run>/` (outside every run
   * directory: the new run's store copy does not upload it again); its size is checked.
   */
  async #resumeCheckpoint(resume: HostResume): Promise<string> {
    const { home, log } = this.#options;
    const path = join(home, "resume", resume.run, ...resume.file.split("/"));
    const had = await stat(path).catch(() => undefined);
    if (had?.size === resume.bytes) return path;
    await mkdir(dirname(path), { recursive: true });
    const partial = `${path}.part`;
    log(`fetching checkpoint ${resume.run}/${resume.file} (${resume.bytes} bytes)`);
    try {
      const got = await download(resume.url, partial, `checkpoint ${resume.file}`, 60 * 60_000);
      if (got.bytes !== resume.bytes)
        throw new Error(`checkpoint ${resume.file}: ${got.bytes} bytes arrived, ${resume.bytes} expected`);
      await rename(partial, path);
      return path;
    } finally {
      await rm(partial, { force: true });
    }
  }

  async #connect(nats: HostNats, credsName: string): Promise<NatsConnection> {
    const creds = nats.creds ? await this.#writeCreds(credsName, nats.creds) : undefined;
    return connectNats(natsSettingsFromConfig(natsSection(nats, creds)), { waitForServerMs: 60_000 });
  }

  /** The host's grants, fresh from an inbox request: the record's policy and the inbox's credential. */
  async #renewHost(host: NonNullable<HostInboxMessage["host"]>): Promise<void> {
    const { log } = this.#options;
    try {
      if (host.store && this.#record) this.#record.renew(host.store.post);
      // Only the host's own connection takes the host's credential (not a first run's).
      if (host.nats?.creds && this.#spec.nats && this.#nc) {
        await this.#writeCreds(".host", host.nats.creds);
        // The answer to the request that brought them goes out before the connection turns over.
        await this.#nc.flush();
        await this.#nc.reconnect();
      }
    } catch (error) {
      log(`host grants not renewed: ${toRunctlError(error).message}`);
    }
  }

  /** The HostState record: the policy to write it with, and the runs taken before a restart. */
  async #openRecord(): Promise<void> {
    const { home } = this.#options;
    try {
      const local = HostState.parse(JSON.parse(await readFile(join(home, "host-state.json"), "utf8")));
      this.#taken = [...local.runs];
    } catch {
      // No record yet (a fresh machine), or one that cannot be read: start from nothing.
    }
    if (this.#spec.store) {
      this.#record = new PostPolicyRunSync({
        policy: this.#spec.store.post,
        stateFile: join(home, ".host-sync", "post-state.json"),
      });
    }
  }

  /** Keeps `hosts/<host>/state.json` current (and a local copy); a store that is down is retried. */
  #keepRecord(state: HostState["state"], run?: string): void {
    const { home, log } = this.#options;
    const last = run ?? this.#taken.at(-1);
    const record: HostState = {
      v: HOST_SPEC_VERSION,
      hostId: this.#spec.hostId,
      state,
      ...(last !== undefined ? { run: last } : {}),
      runs: [...this.#taken],
      at: new Date().toISOString(),
    };
    const bytes = new TextEncoder().encode(`${JSON.stringify(record)}\n`);
    const target = this.#record;
    this.#recording = this.#recording.then(async () => {
      await writeFile(join(home, "host-state.json"), bytes).catch(() => undefined);
      if (!target) return;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        try {
          await target.replace("state.json", bytes.byteLength, async (offset, length) =>
            bytes.subarray(offset, offset + length),
          );
          return;
        } catch (error) {
          if (attempt === 4 || !target.isTransient(error)) {
            log(`host state not recorded in the store: ${toRunctlError(error).message}`);
            return;
          }
          await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        }
      }
    });
  }

  async #ended(runDir: string): Promise<boolean> {
    try {
      const meta = JSON.parse(await readFile(join(runDir, "meta.json"), "utf8")) as { status?: unknown };
      return typeof meta.status === "string" && TERMINAL_STATUSES.has(meta.status as never);
    } catch {
      return false;
    }
  }

  #publishHost(body: Record<string, unknown>): void {
    const prefix = this.#hostNats?.prefix;
    if (!this.#nc || prefix === undefined) return;
    try {
      this.#nc.publish(
        hostSubjects(prefix, this.#spec.hostId).status,
        JSON.stringify({ v: 1, host: this.#spec.hostId, at: new Date().toISOString(), ...body }),
      );
    } catch {
      // best effort: the store and the provider's own status tell the rest
    }
  }

  /** The machine's own shutdown; what it means to the provider (stop or terminate) is said first. */
  async #shutdown(): Promise<void> {
    const action = this.#idleAction;
    const [command, ...args] = this.#spec.shutdownCommand;
    this.#options.log(`idle for ${this.#spec.idle.minutes} min: shutting the machine down (${action})`);
    await writeFile(
      join(this.#options.home, "shutdown.json"),
      `${JSON.stringify({ v: 1, reason: "idle", action, at: new Date().toISOString() })}\n`,
    );
    await new Promise<void>((done) => {
      const child = spawn(command as string, args, { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (chunk: string) => {
        if (stderr.length < 4096) stderr += chunk;
      });
      child.on("error", (error) => {
        this.#options.log(`shutdown: ${error.message}`);
        done();
      });
      // A shutdown that failed leaves the machine running (and billing): say why.
      child.on("close", (code, signal) => {
        if (code !== 0) this.#options.log(`shutdown: ${command} exited ${code ?? signal}: ${stderr.trim()}`);
        done();
      });
    });
  }
}

function at(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

/** The run's NATS settings as the supervisor's bridge takes them: the credential as a file. */
function natsSection(nats: HostNats, credsFile: string | undefined) {
  return {
    url: nats.url,
    prefix: nats.prefix,
    ...(credsFile ? { creds: credsFile } : {}),
    ...(nats.inboxPrefix ? { inbox_prefix: nats.inboxPrefix } : {}),
  };
}

/** Fetches `url` into `dest` (mode 0600): its sha256 and size. */
async function download(
  url: string,
  dest: string,
  what: string,
  timeoutMs: number,
): Promise<{ sha256: string; bytes: number }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok || !response.body) throw new Error(`the store answered ${response.status} for ${what}`);
  const hash = createHash("sha256");
  let bytes = 0;
  await pipeline(
    Readable.fromWeb(response.body as import("node:stream/web").ReadableStream),
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        bytes += chunk.byteLength;
        done(null, chunk);
      },
    }),
    createWriteStream(dest, { mode: 0o600 }),
  );
  return { sha256: hash.digest("hex"), bytes };
}

function fileError(log: (line: string) => void) {
  return (path: string, error: Error) => log(`sync: ${path} skipped: ${error.message}`);
}
