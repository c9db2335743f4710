// The spot notice watcher against a real HTTP server that answers as IMDSv2 does (a session
// token from PUT /latest/api/token, 401 for a GET without it, 404 until a notice): what it makes
// of bodies that are not notices, and the checkpoint budget a notice leaves.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  ec2CheckpointBudgetMs,
  type InstanceAction,
  imdsEndpoint,
  parseInstanceAction,
  watchSpotNotice,
} from "../src/preemption.ts";

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
