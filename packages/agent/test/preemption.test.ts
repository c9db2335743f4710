// The spot notice watcher against a real HTTP server that answers as IMDSv2 does (a session
// token from PUT /latest/api/token, 401 for a GET without it, 404 until a notice): what it makes
// of bodies that are not notices, and the checkpoint budget a notice leaves. And a preemption
// of a real 2-rank Python run under the supervisor, through its file queue (no NATS).
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostSpec, newRunId, RunSpec } from "@runctl/core";
import { RunWriter, readMeta } from "@runctl/tracker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HostAgent } from "../src/host-agent.ts";
import {
  ec2CheckpointBudgetMs,
  type InstanceAction,
  imdsEndpoint,
  instanceLifeCycle,
  parseInstanceAction,
  preemptRun,
  watchSpotNotice,
} from "../src/preemption.ts";
import { Supervisor } from "../src/supervisor.ts";

describe("parseInstanceAction", () => {
  it("reads EC2's notice", () => {
    expect(parseInstanceAction('{"action": "terminate", "time": "2026-12-03T14:02:00Z"}')).toEqual({
      notice: { action: "terminate", time: "2026-12-03T14:02:00Z" },
    });
  });

  it("says why a body is not a notice", () => {
    expect(parseInstanceAction("<html>oops").error).toMatch(/not JSON/);
    expect(parseInstanceAction('{"action": "explode", "time": "2026-12-03T14:02:00Z"}').error).toMatch(
      /action/,
    );
    expect(parseInstanceAction('{"action": "stop", "time": "soon"}').error).toMatch(/time/);
    expect(parseInstanceAction("null").error).toBeDefined();
  });
});

describe("ec2CheckpointBudgetMs", () => {
  const now = Date.parse("2026-12-03T14:00:00Z");
  it("keeps 20 s before the notice's time, at most 90 s", () => {
    expect(ec2CheckpointBudgetMs({ action: "terminate", time: "2026-12-03T14:02:00Z" }, now)).toBe(90_000);
    expect(ec2CheckpointBudgetMs({ action: "terminate", time: "2026-12-03T14:00:50Z" }, now)).toBe(30_000);
    expect(ec2CheckpointBudgetMs({ action: "stop", time: "2026-12-03T13:59:00Z" }, now)).toBe(0);
  });
});

it("imdsEndpoint: the standard variable, else the link-local address", () => {
  expect(imdsEndpoint({ AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:9/" })).toBe(
    "http://127.0.0.1:9",
  );
  expect(imdsEndpoint({})).toBe("http://169.254.169.254");
});

describe("watchSpotNotice", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server?.closeAllConnections();
  });

  /** IMDSv2 with tokens required; `bodies` are what instance-action answers, one per GET (then the last). */
  async function imds(bodies: (string | undefined)[]) {
    const tokens = new Set<string>();
    const gets: string[] = [];
    server = createServer((req, res) => {
      if (req.url === "/latest/api/token" && req.method === "PUT") {
        expect(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]).toMatch(/^\d+$/);
        const token = `t${tokens.size}`;
        tokens.add(token);
        res.end(token);
        return;
      }
      const token = req.headers["x-aws-ec2-metadata-token"];
      if (typeof token !== "string" || !tokens.has(token)) {
        res.statusCode = 401;
        res.end();
        return;
      }
      if (req.url !== "/latest/meta-data/spot/instance-action") {
        res.statusCode = 404;
        res.end();
        return;
      }
      const body = bodies.length > 1 ? bodies.shift() : bodies[0];
      gets.push(body ?? "404");
      res.statusCode = body === undefined ? 404 : body === "500" ? 500 : 200;
      res.end(body ?? "Not Found");
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
    return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gets, tokens };
  }

  it("ignores bodies that are not notices with a log line, and reports the first notice once", async () => {
    const notice = '{"action":"terminate","time":"2026-12-03T14:02:00Z"}';
    const { endpoint, gets, tokens } = await imds([undefined, "{not json", '{"action":"nap"}', notice]);
    const lines: string[] = [];
    const notices: InstanceAction[] = [];
    const got = new Promise<void>((resolve) => {
      const watcher = watchSpotNotice({
        endpoint,
        intervalMs: 5,
        log: (line) => lines.push(line),
        onNotice: (n) => {
          notices.push(n);
          watcher.stop();
          resolve();
        },
      });
    });
    await got;
    expect(notices).toEqual([{ action: "terminate", time: "2026-12-03T14:02:00Z" }]);
    expect(gets).toEqual(["404", "{not json", '{"action":"nap"}', notice]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/spot notice: ignored .*not JSON/);
    expect(lines[1]).toMatch(/spot notice: ignored .*action/);
    // One session for all the polls.
    expect(tokens.size).toBe(1);
  });

  it("a failing IMDS is logged once while it keeps failing, and asked again", async () => {
    const notice = '{"action":"stop","time":"2026-12-03T14:02:00Z"}';
    const { endpoint, gets } = await imds(["500", "500", "500", notice]);
    const lines: string[] = [];
    const got = new Promise<InstanceAction>((resolve) => {
      const watcher = watchSpotNotice({
        endpoint,
        intervalMs: 5,
        log: (line) => lines.push(line),
        onNotice: (n) => {
          watcher.stop();
          resolve(n);
        },
      });
    });
    expect(await got).toEqual({ action: "stop", time: "2026-12-03T14:02:00Z" });
    expect(gets).toHaveLength(4);
    expect(lines).toEqual(["spot notice: IMDS: HTTP 500"]);
  });
});

describe("preemptRun", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "runctl-preempt-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("asks every rank to checkpoint through the run's file queue, syncs, and ends the run preempted", async () => {
    const cwd = join(root, "run");
    const spec = RunSpec.parse({
      v: 1,
      runId: newRunId(),
      command: [
        "/usr/bin/python3",
        fileURLToPath(new URL("./fixtures/checkpoint_on_ask.py", import.meta.url)),
      ],
      commandKind: "python",
      cwd: root,
      runsDir: join(cwd, "runs"),
      checkpointDir: join(cwd, "checkpoints"),
      nprocPerNode: 2,
      graceMs: 3000,
    });
    const supervisor = await Supervisor.start(spec, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    const ready = (rank: number) => existsSync(join(supervisor.runDir, `ready.${rank}`));
    while (!ready(0) || !ready(1)) await new Promise((r) => setTimeout(r, 50));
    const lines: string[] = [];
    const synced: boolean[] = [];
    await preemptRun(supervisor, {
      reason: "a test's notice",
      budgetMs: 60_000,
      // What is on disk when the store gets its last pass before the stop: both checkpoints.
      syncNow: async () => {
        synced.push(
          existsSync(join(cwd, "checkpoints", "rank0.ckpt")) &&
            existsSync(join(cwd, "checkpoints", "rank1.ckpt")),
        );
      },
      log: (line) => lines.push(line),
    });
    const outcome = await supervisor.done;
    expect(outcome.status).toBe("preempted");
    expect(synced).toEqual([true]);
    expect(lines.join("\n")).toMatch(/checkpoint.save applied by 2 of 2 rank\(s\)$/m);
    const meta = await readMeta(supervisor.runDir);
    expect(meta).toMatchObject({
      status: "preempted",
      preemption: {
        reason: "a test's notice",
        checkpoint: { applied_ranks: [0, 1], answered_ranks: [0, 1], world_size: 2 },
      },
    });
    expect(Date.parse(String(meta.preempted_at))).toBeLessThanOrEqual(Date.parse(String(meta.finished_at)));
  }, 60_000);
});

describe("an agent restarted while its run was being preempted", () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "runctl-preempt-host-"));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it("records the run preempted and does not run it again", async () => {
    const runId = newRunId();
    const marker = join(home, "ran-again");
    // What the agent that died left: the run started, the notice heard (preempted_at), no end.
    const writer = RunWriter.create({ runsDir: join(home, "runs"), id: runId, writer: "supervisor" });
    writer.updateMeta({ preempted_at: "2026-12-03T14:00:00.000Z" });
    writer.close();
    const spec = HostSpec.parse({
      v: 1,
      hostId: "host-1",
      provider: "test",
      run: {
        spec: {
          v: 1,
          runId,
          command: ["/usr/bin/python3", "-c", `open(${JSON.stringify(marker)}, "w")`],
          commandKind: "python",
          cwd: ".",
          runsDir: "runs",
          checkpointDir: "checkpoints",
        },
      },
      inbox: false,
      interruptions: "ec2-imds",
      idle: { minutes: 0 },
      shutdownCommand: ["true"],
    });
    const lines: string[] = [];
    const agent = new HostAgent(spec, {
      home,
      // No IMDS here: the watcher's failures are logged and do not stop the agent.
      env: { PATH: process.env.PATH, AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:9" },
      log: (line) => lines.push(line),
    });
    const outcome = await agent.run();
    expect(outcome).toEqual({ reason: "idle", runs: 1 });
    expect(lines.join("\n")).toContain(`run ${runId} was being preempted; recorded it preempted`);
    expect(existsSync(marker)).toBe(false);
    const meta = await readMeta(join(home, "runs", runId));
    expect(meta).toMatchObject({ status: "preempted", preempted_at: "2026-12-03T14:00:00.000Z" });
  });
});

describe("a spot launch that fell back to on-demand", () => {
  let server: Server | undefined;
  let home: string;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server?.closeAllConnections();
    await rm(home, { recursive: true, force: true });
  });

  /** IMDSv2 answering `instance-life-cycle`; counts the spot notice polls. */
  async function imds(lifeCycle: string) {
    const seen: string[] = [];
    server = createServer((req, res) => {
      seen.push(req.url ?? "");
      if (req.url === "/latest/api/token" && req.method === "PUT") return void res.end("token");
      if (req.headers["x-aws-ec2-metadata-token"] !== "token") return void res.writeHead(401).end();
      if (req.url === "/latest/meta-data/instance-life-cycle") return void res.end(lifeCycle);
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
    return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
  }

  async function agentOn(endpoint: string) {
    home = await mkdtemp(join(tmpdir(), "runctl-lifecycle-"));
    const spec = HostSpec.parse({
      v: 1,
      hostId: "host-1",
      provider: "test",
      inbox: false,
      interruptions: "ec2-imds",
      idle: { minutes: 0, action: "terminate" },
      shutdownCommand: ["true"],
    });
    const lines: string[] = [];
    const agent = new HostAgent(spec, {
      home,
      env: { PATH: process.env.PATH, AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint },
      log: (line) => lines.push(line),
    });
    await agent.run();
    return lines.join("\n");
  }

  it("watches no spot notices and says its shutdown stops the instance", async () => {
    const { endpoint, seen } = await imds("on-demand");
    expect(await instanceLifeCycle(endpoint)).toBe("on-demand");
    const log = await agentOn(endpoint);
    expect(log).toContain("an on-demand instance (the spot launch fell back)");
    expect(log).toMatch(/shutting the machine down \(stop\)/);
    expect(seen).not.toContain("/latest/meta-data/spot/instance-action");
  });

  it("a spot instance keeps the host spec's terminate; no IMDS at all changes nothing", async () => {
    const { endpoint } = await imds("spot");
    expect(await agentOn(endpoint)).toMatch(/shutting the machine down \(terminate\)/);
    expect(await instanceLifeCycle("http://127.0.0.1:9")).toBeUndefined();
  });
});
