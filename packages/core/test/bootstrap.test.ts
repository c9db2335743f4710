import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import {
  BootstrapInput,
  bootstrapBody,
  bootstrapErrorKey,
  buildBootstrap,
  MAX_BOOTSTRAP_BYTES,
  shQuote,
} from "../src/mod.ts";

const SHA = "ab".repeat(32);
const HOSTILE = `it's "$HOME" \`touch /tmp/pwned\` $(id) \\ \n'; exit 7; echo '\r\n RUNCTL_EOF`;

// What a provider passes for a real run: a run spec, a NATS user JWT creds blob and a store
// POST policy, as inline JSON.
function realisticHostSpec(): Record<string, unknown> {
  const jwt = `eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.${"e".repeat(900)}.${"s".repeat(86)}`;
  return {
    v: 1,
    runId: "20261203-103000-baseline-7f3a",
    attempt: 1,
    runSpec: {
      command: ["python", "train.py", "--epochs", "10", "--lr", "0.01"],
      nprocPerNode: 2,
      env: { WANDB_MODE: "disabled", OMP_NUM_THREADS: "4", PYTHONUNBUFFERED: "1" },
      gpus: 1,
    },
    nats: {
      servers: ["tls://nats.example.com:4222"],
      prefix: "runctl",
      creds: `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUA${"K".repeat(55)}\n------END USER NKEY SEED------\n`,
    },
    store: {
      post: {
        url: "https://runctl-artifacts.s3.us-east-1.amazonaws.com/",
        keyPrefix: "runs/20261203-103000-baseline-7f3a/",
        maxBytes: 5_368_709_120,
        expiresAt: "2026-12-03T22:30:00.000Z",
        fields: postFields(),
      },
    },
    idleStopMinutes: 30,
    spotNotice: true,
  };
}

function postFields(): Record<string, string> {
  return {
    bucket: "runctl-artifacts",
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": "ASIAXXXXXXXXXXXXXXXX/20261203/us-east-1/s3/aws4_request",
    "X-Amz-Date": "20261203T103000Z",
    "X-Amz-Security-Token": "I".repeat(800),
    Policy: "P".repeat(700),
    "X-Amz-Signature": "f".repeat(64),
  };
}

function input(hostSpec: Record<string, unknown> = realisticHostSpec()): BootstrapInput {
  return {
    node: { version: "24.11.1", mirror: "https://nodejs.org/dist" },
    agent: {
      url: `https://runctl-artifacts.s3.amazonaws.com/agents/${SHA}.mjs?X-Amz-Signature=${"0".repeat(64)}`,
      sha256: SHA,
    },
    code: {
      url: `https://runctl-artifacts.s3.amazonaws.com/bundles/${SHA}.tar.gz?X-Amz-Signature=1`,
      sha256: SHA,
    },
    hostSpec,
    report: {
      post: {
        url: "https://runctl-artifacts.s3.us-east-1.amazonaws.com/",
        fields: postFields(),
        keyPrefix: "runs/r1/",
        maxBytes: 1_048_576,
        expiresAt: "2026-12-03T22:30:00.000Z",
      },
    },
  };
}

function dash(
  script: string,
  args: string[] = [],
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("/usr/bin/dash", args, {
    input: script,
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin" },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** As dash() without blocking the event loop: the test's own HTTP server answers meanwhile. */
function dashAsync(script: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile("/usr/bin/dash", [], { env: { PATH: "/usr/bin:/bin" } }, (error, stdout, stderr) =>
      resolve({ status: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(script);
  });
}

describe("buildBootstrap", () => {
  it("fits EC2's user-data limit with a realistic host spec and parses under dash", () => {
    const spec = realisticHostSpec();
    expect(JSON.stringify(spec).length).toBeGreaterThan(3000);
    const script = buildBootstrap(input(spec));
    expect(Buffer.byteLength(script)).toBeLessThanOrEqual(MAX_BOOTSTRAP_BYTES);
    expect(script.startsWith("#!/bin/sh\n")).toBe(true);
    expect(dash(script, ["-n"])).toMatchObject({ status: 0, stderr: "" });
  });

  it("refuses a bootstrap over the limit with a code and a hint", () => {
    const big = { ...realisticHostSpec(), blob: "x".repeat(MAX_BOOTSTRAP_BYTES) };
    const refusal = (over: BootstrapInput) => {
      try {
        buildBootstrap(over);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    expect(refusal(input(big))).toMatchObject({
      code: "bootstrap_too_large",
      hint: expect.stringMatching(/body by URL/),
    });
    const body = { url: "https://s3.example.com/bootstrap/b.sh", sha256: SHA };
    expect(refusal({ ...input(big), body })).toMatchObject({
      code: "bootstrap_too_large",
      hint: expect.stringMatching(/presigned URL/),
    });
  });

  it("with the body by URL: user-data holds the per-launch head, fetches the body, checks it and runs it", async () => {
    // A host spec ~5 KiB larger than the realistic one: too large with the body inline.
    const spec = { ...realisticHostSpec(), resume: { url: `https://s3.example.com/c?${"q".repeat(5000)}` } };
    expect(() => buildBootstrap(input(spec))).toThrow(/user-data limit/);
    const body = bootstrapBody();
    const served = new Map<string, string>([
      ["/good.sh", 'echo "body ran with node $NODE_VERSION"; host_json | head -c 7; echo; exit 0\n'],
      ["/real.sh", body],
    ]);
    const server = createServer((req, res) => {
      const text = served.get(req.url ?? "");
      res.writeHead(text === undefined ? 404 : 200).end(text);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sha = (text: string) => createHash("sha256").update(text).digest("hex");
    try {
      const good = served.get("/good.sh") as string;
      const script = buildBootstrap({ ...input(spec), body: { url: `${base}/good.sh`, sha256: sha(good) } });
      expect(Buffer.byteLength(script)).toBeLessThanOrEqual(MAX_BOOTSTRAP_BYTES);
      expect(script).not.toContain(body.slice(0, 200));
      // The head's variables and functions are the body's: it runs in the same shell.
      const ran = await dashAsync(script);
      expect(ran).toMatchObject({ status: 0, stdout: 'body ran with node 24.11.1\n{"v":1,\n' });
      // A body that is not the one named (tampered with, or another version's) never runs.
      const tampered = buildBootstrap({
        ...input(spec),
        body: { url: `${base}/real.sh`, sha256: sha(good) },
      });
      const refused = await dashAsync(tampered);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(`the bootstrap body's sha256 is not ${sha(good)}`);
      expect(refused.stdout).toBe("");
      const missing = await dashAsync(
        buildBootstrap({ ...input(spec), body: { url: `${base}/gone.sh`, sha256: SHA } }),
      );
      expect(missing).toMatchObject({ status: 1, stderr: expect.stringContaining("could not download") });
      // The real body, fetched, parses under dash as the inline one does.
      expect(dash(body, ["-n"])).toMatchObject({ status: 0, stderr: "" });
    } finally {
      server.close();
    }
  });

  it("keeps hostile values inert: the script prints them back byte for byte", () => {
    const hostSpec = { note: HOSTILE, nested: { [HOSTILE]: [HOSTILE] } };
    const script = buildBootstrap({
      ...input(hostSpec),
      report: {
        post: {
          url: "https://s3.example.com/",
          fields: { bucket: "b", Policy: HOSTILE.replace(/[\r\n]/g, "") },
          keyPrefix: "runs/r1/",
          maxBytes: 1,
          expiresAt: "2026-12-03T22:30:00.000Z",
        },
      },
    });
    expect(dash(script, ["-n"]).status).toBe(0);
    // The head of the script (values and the functions that emit them), run for real.
    const head = script.slice(0, script.indexOf("\numask 077\n"));
    const probe = `${head}
part() { printf '[%s=%s]' "$1" "$2"; }
host_json
report_fields
printf '%s|%s' "$AGENT_URL" "$NODE_VERSION"
`;
    const r = dash(probe);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const [json, rest] = r.stdout.split("\n");
    expect(JSON.parse(json as string)).toEqual(hostSpec);
    expect(rest).toBe(
      `[bucket=b][Policy=${HOSTILE.replace(/[\r\n]/g, "")}][key=runs/r1/bootstrap-error.json]${input().agent.url}|24.11.1`,
    );
  });

  it("quotes any string for sh", () => {
    for (const value of ["", "'", "''", HOSTILE, "a b\tc", "$(id)"]) {
      expect(
        execFileSync("/usr/bin/dash", ["-c", `printf '%s' ${shQuote(value)}`], { encoding: "utf8" }),
      ).toBe(value);
    }
  });

  it("validates URLs, sha256 values, versions and the report key", () => {
    const bad = (patch: Partial<BootstrapInput>) => () => buildBootstrap({ ...input(), ...patch });
    expect(bad({ agent: { url: "ftp://x/agent.mjs", sha256: SHA } })).toThrow(/agent\.url/);
    expect(bad({ agent: { url: "https://x/agent.mjs", sha256: "ABC" } })).toThrow(/agent\.sha256/);
    expect(bad({ node: { version: "24", mirror: "https://nodejs.org/dist" } })).toThrow(/node\.version/);
    expect(bad({ home: "relative/home" })).toThrow(/home/);
    expect(bad({ home: "/var/lib/run ctl" })).toThrow(/home/);
    const report = input().report as NonNullable<BootstrapInput["report"]>;
    expect(bad({ report: { post: report.post, key: "elsewhere/bootstrap-error.json" } })).toThrow(
      /keyPrefix/,
    );
    expect(bad({ report: { post: { ...report.post, fields: { "x\r\ny": "v" } } } })).toThrow(
      /report\.post\.fields/,
    );
    expect(BootstrapInput.safeParse(input()).success).toBe(true);
  });

  it("names where the failure report goes", () => {
    expect(bootstrapErrorKey("runs/r1/")).toBe("runs/r1/bootstrap-error.json");
    expect(bootstrapErrorKey("runs/r1")).toBe("runs/r1/bootstrap-error.json");
  });
});
