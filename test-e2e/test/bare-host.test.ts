// The bootstrap on the bare host: a fresh process tree with an empty HOME and no node on PATH,
// reaching only the S3 emulator on loopback, which serves the Node mirror (npm's Node 24
// build, public-read) and the agent and code by presigned GETs from the real SDK presigner.
// The agent is a stand-in (fixtures/stand-in-agent.mjs) that records each start.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BootstrapReport, bootstrapErrorKey, buildBootstrap, buildBundle } from "@runctl/core";
import { S3ArtifactStore } from "@runctl/s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type BareHost, MINIMAL_HOST_TOOLS, startBareHost } from "../src/bare-host.ts";
import { type NodeMirror, nodeTarball, npmNodeBuild, publishNodeMirror } from "../src/node-mirror.ts";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const KEY = { accessKeyId: "AKIDBAREHOST", secretAccessKey: "bare-host-secret" };
const STAND_IN = fileURLToPath(new URL("../fixtures/stand-in-agent.mjs", import.meta.url));

let base: string;
let s3: S3Emulator;
let store: S3ArtifactStore;
let mirror: NodeMirror;
let agentSha: string;
let code: { url: string; sha256: string; key: string };
let npmNode: string;
const hosts: BareHost[] = [];

interface Start {
  pid: number;
  node: string;
  execPath: string;
  command: string;
  hostJson: string;
  hostJsonMode: string;
  cwd: string;
  home: string;
  codeDir: string | null;
  code: string[] | null;
  spec: Record<string, unknown>;
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "runctl-bare-host-test-"));
  s3 = await startS3Emulator({
    dataDir: join(base, "s3"),
    credentials: [KEY],
    buckets: ["artifacts"],
    publicReadBuckets: ["node-mirror"],
  });
  mirror = await publishNodeMirror(s3, { bucket: "node-mirror" });
  npmNode = (await npmNodeBuild()).binary;
  store = S3ArtifactStore.fromUrl("s3://artifacts/", {
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    partSizeBytes: 5 * 1024 * 1024,
    concurrency: 4,
    credentials: KEY,
  });
  const agent = await readFile(STAND_IN);
  agentSha = createHash("sha256").update(agent).digest("hex");
  await store.putFile(`agents/${agentSha}.mjs`, STAND_IN);
  // A tampered copy under another key: what an attacker with write access would leave.
  const tampered = join(base, "tampered.mjs");
  await writeFile(tampered, `${agent.toString("utf8")}\nprocess.stdout.write("owned\\n");\n`);
  await store.putFile("agents/tampered.mjs", tampered);
  const project = join(base, "project");
  await mkdir(join(project, "pkg"), { recursive: true });
  await writeFile(join(project, "train.py"), "print('train')\n");
  await writeFile(join(project, "pkg", "model.py"), "MODEL = 1\n");
  const bundle = await buildBundle(project, { cacheDir: join(base, "bundles") });
  const key = `bundles/${bundle.archiveSha256}.tar.gz`;
  await store.putFile(key, bundle.archivePath);
  code = { url: await presign(key), sha256: bundle.archiveSha256, key };
  const other = join(base, "other.tar.gz");
  await writeFile(other, Buffer.from("not the bundle whose sha256 the bootstrap pins"));
  await store.putFile("bundles/tampered.tar.gz", other);
}, 180_000);

afterEach(async () => {
  for (const host of hosts.splice(0)) await host.close();
});

afterAll(async () => {
  await s3?.stop();
  await rm(base, { recursive: true, force: true });
});

function presign(key: string): Promise<string> {
  return store.presignGet(key, { expiresInSeconds: 600 });
}

async function userData(
  runId: string,
  standIn: Record<string, unknown>,
  keys: { agent?: string; code?: string } = {},
): Promise<string> {
  return buildBootstrap({
    node: { version: mirror.version, mirror: mirror.url },
    agent: { url: await presign(keys.agent ?? `agents/${agentSha}.mjs`), sha256: agentSha },
    code: { url: await presign(keys.code ?? code.key), sha256: code.sha256 },
    hostSpec: { runId, standIn },
    report: {
      post: await store.presignPost(`runs/${runId}/`, { expiresInSeconds: 600, maxBytes: 1024 * 1024 }),
    },
  });
}

async function boot(options: Parameters<typeof startBareHost>[0]): Promise<BareHost> {
  const host = await startBareHost(options);
  hosts.push(host);
  return host;
}

async function starts(host: BareHost): Promise<Start[]> {
  const text = await readFile(join(host.runctlHome, "stand-in.jsonl"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Start);
}

/** Polls until `check` holds; the deadline only turns a hang into a readable failure. */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  host?: BareHost,
): Promise<T> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      const logs = host ? await host.logs() : undefined;
      throw new Error(`timed out waiting for ${what}\n${JSON.stringify(logs, null, 2)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function cmdlines(host: BareHost): Promise<string[]> {
  const lines: string[] = [];
  for (const pid of await host.processes()) {
    const text = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (text) lines.push(text.replaceAll("\0", " ").trim());
  }
  return lines;
}

describe("the Node mirror in the S3 emulator", () => {
  it("serves the official layout to anyone from a public-read bucket, and nothing more", async () => {
    const sums = await fetch(`${mirror.url}/v${mirror.version}/SHASUMS256.txt`);
    expect(sums.status).toBe(200);
    expect(await sums.text()).toBe(`${mirror.tarballSha256}  node-v${mirror.version}-linux-x64.tar.gz\n`);
    const tarball = `${mirror.url}/v${mirror.version}/node-v${mirror.version}-linux-x64.tar.gz`;
    expect((await fetch(tarball, { method: "HEAD" })).status).toBe(200);
    const { path } = await nodeTarball();
    const listing = await promisify(execFile)("tar", ["-tzf", path]);
    expect(listing.stdout.split("\n").filter(Boolean)).toEqual([
      `node-v${mirror.version}-linux-x64/`,
      `node-v${mirror.version}-linux-x64/bin/`,
      `node-v${mirror.version}-linux-x64/bin/node`,
    ]);
    // Unsigned: no read of a private bucket, no write to the public one.
    expect((await fetch(`${s3.endpoint}/artifacts/${code.key}`)).status).toBe(403);
    expect((await fetch(`${mirror.url}/v${mirror.version}/extra`, { method: "PUT", body: "x" })).status).toBe(
      403,
    );
  });
});

/** A zombie (killed, not yet reaped) is dead. */
async function living(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && !/^\d+ \(.*\) Z /s.test(stat);
}

describe("the bootstrap on a bare host", () => {
  it("downloads Node 24 from the mirror, checks it, and starts the agent with host.json and the code", async () => {
    const host = await boot({ userData: await userData("r-download", { forever: true }) });
    expect(await host.exited).toBe(0);
    const [start] = await until(
      "the agent's start",
      async () => (await starts(host)).at(0) && starts(host),
      host,
    );
    const { bootstrap, agent } = await host.logs();
    expect(start?.node).toBe(`v${mirror.version}`);
    expect(start?.node.startsWith("v24.")).toBe(true);
    expect(start?.execPath).toBe(join(host.runctlHome, "node", "bin", "node"));
    expect(start?.command).toBe("host");
    expect(start?.hostJson).toBe(join(host.runctlHome, "host.json"));
    expect(start?.hostJsonMode).toBe("600");
    expect(start?.spec).toEqual({ runId: "r-download", standIn: { forever: true } });
    expect(start?.cwd).toBe(host.runctlHome);
    expect(start?.codeDir).toBe(join(host.runctlHome, "code", code.sha256));
    expect(start?.code).toEqual(["pkg", "train.py"]);
    expect(bootstrap).toContain(`download ${mirror.url}/v${mirror.version}/SHASUMS256.txt`);
    expect(bootstrap).toContain(
      `download ${mirror.url}/v${mirror.version}/node-v${mirror.version}-linux-x64.tar.gz`,
    );
    // Presigned URLs are logged without their signatures.
    expect(bootstrap).toMatch(new RegExp(`download ${s3.endpoint}/artifacts/agents/${agentSha}\\.mjs\\n`));
    expect(`${bootstrap}${agent}`).not.toMatch(/X-Amz-Signature|X-Amz-Credential/);
    expect(agent).toContain(`stand-in agent ${start?.pid} started on node v${mirror.version}`);
    expect(await readFile(join(host.runctlHome, "agent", `${agentSha}.mjs`))).toEqual(
      await readFile(STAND_IN),
    );
    expect(host.shutdownRequest()).toBeUndefined();
  });

  it("uses a Node of the pinned major found on PATH instead of downloading one", async () => {
    const host = await boot({ userData: await userData("r-present", { exit: 0 }), node: npmNode });
    expect(await host.exited).toBe(0);
    const [start] = await until("the agent's start", () => starts(host).then((s) => s.length > 0 && s), host);
    expect(start?.node).toBe(`v${mirror.version}`);
    expect(start?.execPath).toBe(npmNode);
    const { bootstrap } = await host.logs();
    expect(bootstrap).not.toContain("node-v");
    expect(bootstrap).toContain(`node v${mirror.version} at ${join(host.runctlHome, "bin", "node")}`);
    expect(existsSync(join(host.runctlHome, "node"))).toBe(false);
  });

  it("refuses a tampered agent artifact: failure reported under the POST prefix, machine shut down, no agent", async () => {
    const host = await boot({
      userData: await userData("r-tampered", { forever: true }, { agent: "agents/tampered.mjs" }),
      node: npmNode,
    });
    expect(await host.shutdownRequested).toBe("shutdown -h now");
    const key = bootstrapErrorKey("runs/r-tampered/");
    await store.getFile(key, join(host.root, "report.json"));
    const report = BootstrapReport.parse(JSON.parse(await readFile(join(host.root, "report.json"), "utf8")));
    expect(report).toMatchObject({ v: 1, status: "failed", code: "checksum_mismatch" });
    expect(report.reason).toContain(`agent artifact: sha256`);
    expect(report.reason).toContain(`expected ${agentSha}`);
    expect(await starts(host)).toEqual([]);
    expect(existsSync(join(host.runctlHome, "agent", `${agentSha}.mjs`))).toBe(false);
    expect(await host.processes()).toEqual([]);
    const { bootstrap } = await host.logs();
    expect(bootstrap).toContain("FATAL checksum_mismatch");
    expect(bootstrap).toContain("failure reported to");
    // Neither the GET's signature nor the POST policy's fields reach the log.
    expect(bootstrap).not.toMatch(/X-Amz-Signature|X-Amz-Credential|Policy|x-amz-signature/i);
    expect(existsSync(join(host.runctlHome, "tmp"))).toBe(false);
  });

  it("with wget and no curl: downloads Node, refuses a tampered code bundle, reports it with a hand-built form", async () => {
    const host = await boot({
      userData: await userData("r-wget", { forever: true }, { code: "bundles/tampered.tar.gz" }),
      tools: MINIMAL_HOST_TOOLS.filter((t) => t !== "curl"),
    });
    expect(await host.shutdownRequested).toBe("shutdown -h now");
    expect(existsSync(join(host.root, "bin", "curl"))).toBe(false);
    await store.getFile(bootstrapErrorKey("runs/r-wget/"), join(host.root, "report.json"));
    const report = BootstrapReport.parse(JSON.parse(await readFile(join(host.root, "report.json"), "utf8")));
    expect(report).toMatchObject({
      code: "checksum_mismatch",
      reason: expect.stringContaining("code bundle"),
    });
    expect(existsSync(join(host.runctlHome, "node", "bin", "node"))).toBe(true);
    expect(existsSync(join(host.runctlHome, "code", code.sha256))).toBe(false);
    expect(await starts(host)).toEqual([]);
  });

  it("fails clearly on a CPU without an official Node build", async () => {
    const host = await boot({
      userData: await userData("r-arch", { forever: true }),
      scripts: { uname: "#!/bin/sh\necho riscv64\n" },
    });
    expect(await host.shutdownRequested).toBe("shutdown -h now");
    await store.getFile(bootstrapErrorKey("runs/r-arch/"), join(host.root, "report.json"));
    const report = BootstrapReport.parse(JSON.parse(await readFile(join(host.root, "report.json"), "utf8")));
    expect(report).toMatchObject({
      code: "unsupported_arch",
      reason: expect.stringContaining("CPU riscv64"),
    });
  });

  it("run twice at once, and once more: one supervising loop, one agent", async () => {
    const host = await boot({ userData: await userData("r-twice", { forever: true }), node: npmNode });
    const [first, second] = await Promise.all([host.exited, host.rerun()]);
    expect([first, second]).toEqual([0, 0]);
    await until("the agent's start", () => starts(host).then((s) => s.length > 0), host);
    expect(await host.rerun()).toBe(0);
    const running = await cmdlines(host);
    expect(running.filter((c) => c.includes("runctl-supervise.sh"))).toHaveLength(1);
    expect(running.filter((c) => c.includes(`${agentSha}.mjs host`))).toHaveLength(1);
    expect(await starts(host)).toHaveLength(1);
    expect((await host.logs()).bootstrap).toContain("an agent is already supervised");
  });

  it("restarts an agent that is SIGKILLed, and not one that exits 0", async () => {
    const host = await boot({ userData: await userData("r-restart", { forever: true }), node: npmNode });
    expect(await host.exited).toBe(0);
    const [first] = await until("the agent's start", () => starts(host).then((s) => s.length > 0 && s), host);
    process.kill(first?.pid as number, "SIGKILL");
    const restarted = await until("a restart", () => starts(host).then((s) => s.length > 1 && s), host);
    expect(restarted[1]?.pid).not.toBe(first?.pid);
    expect((await host.logs()).agent).toContain("the agent exited 137: restart in 1 s");

    const done = await boot({ userData: await userData("r-done", { exit: 0 }), node: npmNode });
    expect(await done.exited).toBe(0);
    await until("the loop to end", async () => (await done.processes()).length === 0, done);
    expect(await starts(done)).toHaveLength(1);
    expect((await done.logs()).agent).toContain("the agent finished");
  });

  it("gives up on an agent that fails five times within a minute", async () => {
    const host = await boot({ userData: await userData("r-failing", { exit: 3 }), node: npmNode });
    expect(await host.exited).toBe(0);
    // Restarts after 1, 2, 4 and 8 s: the loop ends some 15 s in.
    await until("the loop to give up", async () => (await host.processes()).length === 0, host);
    expect(await starts(host)).toHaveLength(5);
    const { agent } = await host.logs();
    expect(agent).toContain("the agent failed 5 times within 60 s (last exit 3): giving up");
    expect(agent.match(/the agent exited 3: restart in (\d+) s/g)).toEqual(
      [1, 2, 4, 8].map((d) => `the agent exited 3: restart in ${d} s`),
    );
    expect(host.shutdownRequest()).toBeUndefined();
  });

  it("on a busybox machine (sh, wget, tar, sha256sum of busybox): downloads Node and starts the agent", async () => {
    const host = await boot({ userData: await userData("r-busybox", { forever: true }), busybox: true });
    expect(await host.exited).toBe(0);
    const [start] = await until("the agent's start", () => starts(host).then((s) => s.length > 0 && s), host);
    expect(start?.node).toBe(`v${mirror.version}`);
    expect(start?.code).toEqual(["pkg", "train.py"]);
    expect(existsSync(join(host.root, "bin", "curl"))).toBe(false);
    const running = await cmdlines(host);
    expect(running.filter((c) => c.includes("runctl-supervise.sh"))).toHaveLength(1);
  });

  it("on a busybox machine: reports a tampered agent through busybox wget", async () => {
    const host = await boot({
      userData: await userData("r-busybox-tampered", { forever: true }, { agent: "agents/tampered.mjs" }),
      busybox: true,
      node: npmNode,
    });
    expect(await host.shutdownRequested).toBe("shutdown -h now");
    await store.getFile(bootstrapErrorKey("runs/r-busybox-tampered/"), join(host.root, "report.json"));
    const report = BootstrapReport.parse(JSON.parse(await readFile(join(host.root, "report.json"), "utf8")));
    expect(report.code).toBe("checksum_mismatch");
  });

  it("foreground: the bootstrap itself supervises and returns when the agent is done", async () => {
    const runId = "r-foreground";
    const script = buildBootstrap({
      node: { version: mirror.version, mirror: mirror.url },
      agent: { url: await presign(`agents/${agentSha}.mjs`), sha256: agentSha },
      hostSpec: { runId, standIn: { exit: 0 } },
      foreground: true,
    });
    const host = await boot({ userData: script, node: npmNode });
    expect(await host.exited).toBe(0);
    expect(await starts(host)).toHaveLength(1);
    expect((await starts(host))[0]?.codeDir).toBeNull();
    expect(await host.processes()).toEqual([]);
    expect((await host.logs()).agent).toContain("the agent finished");
  });

  it("stops the agent with the loop on SIGTERM, without a restart", async () => {
    const host = await boot({ userData: await userData("r-term", { forever: true }), node: npmNode });
    expect(await host.exited).toBe(0);
    await until("the agent's start", () => starts(host).then((s) => s.length > 0), host);
    const loop = Number(await readFile(join(host.runctlHome, "supervisor.pid"), "utf8"));
    process.kill(loop, "SIGTERM");
    await until("the host to stop", async () => (await host.processes()).length === 0, host);
    expect(await starts(host)).toHaveLength(1);
    expect((await host.logs()).agent).toContain("stopping (signal)");
  });

  it("a re-run after the agent is done reuses the artifacts and takes over a stale lock", async () => {
    const host = await boot({ userData: await userData("r-again", { exit: 0 }), node: npmNode });
    expect(await host.exited).toBe(0);
    await until("the loop to end", async () => (await host.processes()).length === 0, host);
    // A lock left by a bootstrap of an earlier boot (a restarted container): its pid now names
    // another living process (this one), which started at another time.
    await mkdir(join(host.runctlHome, "bootstrap.lock"));
    await writeFile(join(host.runctlHome, "bootstrap.lock", "pid"), `${process.pid} 1\n`);
    expect(await host.rerun()).toBe(0);
    await until("the second start", () => starts(host).then((s) => s.length === 2), host);
    const { bootstrap } = await host.logs();
    expect(bootstrap).toContain(`agent ${agentSha} already here`);
    expect(bootstrap).toContain(`code ${code.sha256} already extracted`);
    expect(bootstrap.match(/download /g)).toHaveLength(2);
  });

  it("leaves nothing running after close()", async () => {
    const host = await boot({ userData: await userData("r-close", { forever: true }), node: npmNode });
    expect(await host.exited).toBe(0);
    const [start] = await until("the agent's start", () => starts(host).then((s) => s.length > 0 && s), host);
    expect((await host.processes()).length).toBeGreaterThanOrEqual(2);
    await host.close();
    expect(await living(start?.pid as number)).toBe(false);
    expect(await host.processes()).toEqual([]);
    expect((await stat(host.root).catch(() => null)) === null).toBe(true);
  });
});
