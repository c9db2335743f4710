import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type QueueServer, startQueueServer } from "@runctl/queue-server";
import { RunWriter } from "@runctl/tracker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { runctl, type Sandbox, sandbox } from "./run-cli.ts";

const require = createRequire(import.meta.url);

const Envelope = z.union([
  z.object({ success: z.literal(true) }).passthrough(),
  z.object({
    success: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).passthrough(),
  }),
]);

const BundleOut = z.object({
  success: z.literal(true),
  bundle: z.object({
    key: z.string(),
    cached: z.boolean(),
    files: z.array(z.object({ path: z.string() })).optional(),
  }),
});

function parseJson(stdout: string) {
  return Envelope.parse(JSON.parse(stdout));
}

// `local` creates this run; the run-reading samples after it use it.
const SAMPLE_RUN = "20260101-000000-aaaaaa";
const OTHER_RUN = "20250101-000000-bbbbbb";

interface S3Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * The S3 emulator from test-e2e, for the `runctl s3` samples. Loaded by a computed path so
 * that this package's type check does not pull test-e2e's sources into its program.
 */
async function startS3Emulator(dataDir: string): Promise<S3Emulator> {
  const path = new URL("../../../test-e2e/src/s3-emulator.ts", import.meta.url).href;
  const mod = (await import(path)) as {
    startS3Emulator(options: {
      dataDir: string;
      credentials: object[];
      buckets: string[];
    }): Promise<S3Emulator>;
  };
  return mod.startS3Emulator({
    dataDir,
    credentials: [{ accessKeyId: "AKIDSAMPLES", secretAccessKey: "samples-secret" }],
    buckets: ["samples"],
  });
}

let box: Sandbox;
interface Ec2Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

/** The EC2 emulator from test-e2e (a computed path, as for S3), with one running instance for the `aws` samples. */
async function startEc2Emulator(): Promise<{ ec2: Ec2Emulator; instanceId: string }> {
  const emulator = (await import(new URL("../../../test-e2e/src/ec2-emulator.ts", import.meta.url).href)) as {
    startEc2Emulator(options: { credentials: object[]; transitionMs: number }): Promise<
      Ec2Emulator & {
        cloud: { runInstances(p: unknown, region: string): Promise<{ instances: { instanceId: string }[] }> };
      }
    >;
  };
  const params = (await import(
    new URL("../../../test-e2e/src/ec2-emulator/query-params.ts", import.meta.url).href
  )) as {
    RunInstancesParams: { parse(v: unknown): unknown };
  };
  const ec2 = await emulator.startEc2Emulator({
    credentials: [{ accessKeyId: "AKIDSAMPLES", secretAccessKey: "samples-secret" }],
    transitionMs: 0,
  });
  const { instances } = await ec2.cloud.runInstances(
    params.RunInstancesParams.parse({
      Action: "RunInstances",
      Version: "2016-11-15",
      ImageId: "ami-0a1b2c3d4e5f60702",
      InstanceType: "t3.micro",
      MinCount: "1",
      MaxCount: "1",
      TagSpecification: [
        {
          ResourceType: "instance",
          Tag: [
            { Key: "CreatedBy", Value: "runctl" },
            // Its run (not in the samples' store: `aws monitor` says it has no copy yet).
            { Key: "runctl:run-id", Value: SAMPLE_RUN },
          ],
        },
      ],
    }),
    "us-east-1",
  );
  return { ec2, instanceId: instances[0]?.instanceId as string };
}

/** Stands for the emulator's instance in the `aws` samples (its id is known only once it runs). */
const AWS_SAMPLE_INSTANCE = "aws-sample-instance";

interface RunPodEmulator {
  url: string;
  apiKey: string;
  stop(): Promise<void>;
}

/** The RunPod emulator from test-e2e, with one runctl pod for the `runpod` samples. */
async function startRunPodEmulator(): Promise<{ runpod: RunPodEmulator; podId: string }> {
  const emulator = (await import(
    new URL("../../../test-e2e/src/runpod-emulator.ts", import.meta.url).href
  )) as {
    startRunPodEmulator(options: {
      transitionMs: number;
    }): Promise<RunPodEmulator & { cloud: { launch(input: Record<string, unknown>): { id: string } } }>;
  };
  const runpod = await emulator.startRunPodEmulator({ transitionMs: 0 });
  const pod = runpod.cloud.launch({
    gpuTypeId: "NVIDIA RTX A6000",
    gpuCount: 1,
    cloudType: "SECURE",
    name: "runctl-sample",
    imageName: "runpod/pytorch:sample",
    dockerArgs: "",
    containerDiskInGb: 20,
    volumeInGb: 0,
    env: {
      RUNCTL_MANAGED: "1",
      RUNCTL_TAGS: JSON.stringify({ CreatedBy: "runctl", "runctl:run-id": SAMPLE_RUN }),
    },
  });
  return { runpod, podId: pod.id };
}

/** Stands for the emulator's pod in the `runpod` samples. */
const RUNPOD_SAMPLE_POD = "runpod-sample-pod";

/** nats-server from test-e2e (a computed path, as for S3), for `nats renew`. */
async function startNatsServer(): Promise<{ url: string; close(): Promise<void> }> {
  const mod = (await import(new URL("../../../test-e2e/src/nats-server.ts", import.meta.url).href)) as {
    startNatsServer(): Promise<{ url: string; close(): Promise<void> }>;
  };
  return mod.startNatsServer();
}
let natsServer: { url: string; close(): Promise<void> };

let queue: QueueServer;
let s3: S3Emulator;
let ec2: Ec2Emulator;
let awsInstance: string;
let runpod: RunPodEmulator;
let runpodPod: string;
beforeAll(async () => {
  box = await sandbox();
  s3 = await startS3Emulator(join(box.home, "s3"));
  Object.assign(box.env, {
    AWS_ACCESS_KEY_ID: "AKIDSAMPLES",
    AWS_SECRET_ACCESS_KEY: "samples-secret",
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  });
  ({ ec2, instanceId: awsInstance } = await startEc2Emulator());
  box.env.AWS_ENDPOINT_URL_EC2 = ec2.endpoint;
  box.env.AWS_ENDPOINT_URL_IAM = ec2.endpoint;
  ({ runpod, podId: runpodPod } = await startRunPodEmulator());
  natsServer = await startNatsServer();
  box.env.RUNPOD_API_KEY = runpod.apiKey;
  box.env.RUNCTL_RUNPOD_API_URL = runpod.url;
  // A job server for the queue commands' samples: job 1 queued, job 2 cancelled (so it can be retried).
  queue = await startQueueServer({ dataDir: join(box.home, "queue") });
  box.env.RUNCTL_SERVER_URL = queue.url;
  for (const name of ["queued", "to-retry"]) {
    queue.store.createJob({ command_argv: ["true"], workdir: box.project, name });
  }
  queue.store.cancelJob(2);
  await writeFile(
    join(box.project, "sweep.yaml"),
    "name: s\nprogram: python train.py\nparameters:\n  lr: {values: [0.1, 0.01]}\n",
  );
  await writeFile(join(box.project, "train.py"), "print('hi')\n");
  // Files for the checkpoint and monitor samples: two torch (zip) files and a real safetensors file.
  const checkpoints = join(box.project, "checkpoints");
  await mkdir(checkpoints, { recursive: true });
  for (const name of ["ckpt_000100.pt", "ckpt_000200.pt"])
    await writeFile(join(checkpoints, name), "PK\x03\x04");
  const header = Buffer.from('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  await writeFile(
    join(checkpoints, "model_000300.safetensors"),
    Buffer.concat([length, header, Buffer.alloc(8)]),
  );
  await writeFile(join(box.project, "train.log"), "epoch 1 loss 0.9\n");
  // A second run, so that `compare` has two (the first is SAMPLE_RUN).
  const other = RunWriter.create({ runsDir: join(box.project, "runs"), id: OTHER_RUN, config: { lr: 0.1 } });
  other.finish("completed");
});
afterAll(async () => {
  await queue?.close();
  await s3?.stop();
  await natsServer?.close();
  await ec2?.stop();
  await runpod?.stop();
});
const cli = (args: string[], cwd = box.project, env: Record<string, string> = {}, stopWhen?: RegExp) =>
  runctl(args, { cwd, env: { ...box.env, ...env }, ...(stopWhen ? { stopWhen } : {}) });

describe("runctl", () => {
  it("prints its version", async () => {
    const r = await cli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^runctl\/0\.1\.0 /);
  });

  // Arguments that make each of our commands do real work. The manifest check
  // below fails when a command is added without an entry here.
  const samples: Record<string, string[]> = {
    providers: ["providers"],
    doctor: ["doctor"],
    init: ["init", "--dir", "sub", "--force"],
    bundle: ["bundle", "--list"],
    "config:show": ["config", "show", "--sources"],
    "config:get": ["config", "get", "nats.prefix"],
    "config:set": ["config", "set", "bundle.warn_size_mb", "50", "--user"],
    "config:validate": ["config", "validate"],
    "checkpoint:list": ["checkpoint", "list"],
    "checkpoint:info": ["checkpoint", "info", "checkpoints/model_000300.safetensors"],
    "checkpoint:cleanup": ["checkpoint", "cleanup", "--keep-last-n", "1", "--dry-run"],
    monitor: ["monitor", "--log", "train.log", "--checkpoint", "checkpoints"],
    local: ["local", "--python", "/usr/bin/python3", "--run-id", SAMPLE_RUN, "train.py"],
    exec: ["exec", "--checkpoint-dir", "ck-exec", "--", "true"],
    "checkpoint:resume": [
      "checkpoint",
      "resume",
      "--python",
      "/usr/bin/python3",
      "--checkpoint-dir",
      "ck-resume",
      "checkpoints/ckpt_000100.pt",
      "train.py",
    ],
    logs: ["logs", SAMPLE_RUN],
    attach: ["attach", SAMPLE_RUN],
    stop: ["stop", SAMPLE_RUN],
    ctl: ["ctl", SAMPLE_RUN, "controls"],
    runs: ["runs", "--last", "5"],
    show: ["show", SAMPLE_RUN],
    compare: ["compare", SAMPLE_RUN, OTHER_RUN],
    export: ["export", "runs-sample.csv"],
    submit: ["submit", "--name", "sample", "--", "true"],
    jobs: ["jobs", "--status", "all"],
    job: ["job", "1"],
    retry: ["retry", "2"],
    cancel: ["cancel", "--all-queued", "--dry-run"],
    sweep: ["sweep", "sweep.yaml", "--dry-run"],
    watch: ["watch", "--once"],
    server: ["server", "--port", "0", "--data-dir", "server-sample"],
    worker: ["worker", "--data-dir", "worker-sample", "--exit-when-idle", "--poll", "0.1"],
    "s3:upload": ["s3", "upload", "train.py", "s3://samples/code/"],
    "s3:download": ["s3", "download", "s3://samples/code/train.py", "s3-download/"],
    "s3:sync": ["s3", "sync", "checkpoints", "s3://samples/ckpt"],
    "s3:ls": ["s3", "ls", "s3://samples/", "--recursive"],
    "s3:cleanup": ["s3", "cleanup", "s3://samples/ckpt/", "--keep-last-n", "1", "--dry-run"],
    "s3:presign": ["s3", "presign", "s3://samples/ckpt/ckpt_000100.pt", "--expires", "60"],
    "s3:rm": ["s3", "rm", "s3://samples/code/train.py"],
    plugins: ["plugins", "--core"],
    "plugins:inspect": ["plugins", "inspect", "@oclif/plugin-plugins"],
    "plugins:update": ["plugins", "update"],
    "plugins:reset": ["plugins", "reset"],
    autocomplete: ["autocomplete", "bash"],
    "aws:create": ["aws", "create", "t3.micro", "--spot", "--dry-run"],
    "aws:list": ["aws", "list"],
    "aws:status": ["aws", "status", AWS_SAMPLE_INSTANCE],
    "aws:wait": ["aws", "wait", AWS_SAMPLE_INSTANCE, "--interval", "1"],
    "aws:stop": ["aws", "stop", AWS_SAMPLE_INSTANCE, "--dry-run"],
    "aws:start": ["aws", "start", AWS_SAMPLE_INSTANCE, "--dry-run"],
    "aws:terminate": ["aws", "terminate", AWS_SAMPLE_INSTANCE, "--dry-run"],
    "aws:setup": ["aws", "setup", "--store", "s3://samples/setup", "--dry-run"],
    "aws:monitor": ["aws", "monitor", AWS_SAMPLE_INSTANCE, "--store", "s3://samples/store"],
    "aws:logs": ["aws", "logs", AWS_SAMPLE_INSTANCE, "--tail", "10"],
    "aws:processes": ["aws", "processes", AWS_SAMPLE_INSTANCE, "--store", "s3://samples/store"],
    "aws:train": [
      "aws",
      "train",
      "train.py",
      "--type",
      "t3.micro",
      "--dry-run",
      "--store",
      "s3://samples/train",
    ],
    "runpod:create": ["runpod", "create", "--gpu", "NVIDIA RTX A6000", "--spot", "--dry-run"],
    "runpod:list": ["runpod", "list"],
    "runpod:status": ["runpod", "status", RUNPOD_SAMPLE_POD],
    "runpod:stop": ["runpod", "stop", RUNPOD_SAMPLE_POD, "--dry-run"],
    "runpod:start": ["runpod", "start", RUNPOD_SAMPLE_POD, "--dry-run"],
    "runpod:terminate": ["runpod", "terminate", RUNPOD_SAMPLE_POD, "--dry-run"],
    "runpod:monitor": ["runpod", "monitor", RUNPOD_SAMPLE_POD, "--store", "s3://samples/store"],
    "runpod:logs": ["runpod", "logs", RUNPOD_SAMPLE_POD, "--store", "s3://samples/store"],
    "runpod:processes": ["runpod", "processes", RUNPOD_SAMPLE_POD, "--store", "s3://samples/store"],
    "runpod:train": [
      "runpod",
      "train",
      "train.py",
      "--gpu",
      "NVIDIA RTX A6000",
      "--dry-run",
      "--store",
      "s3://samples/train",
    ],
    "resources:list": ["resources", "list"],
    "resources:summary": ["resources", "summary"],
    "resources:stop-all": ["resources", "stop-all", "--dry-run"],
    "nats:creds": ["nats", "creds", "--run", SAMPLE_RUN, "--ttl", "5m"],
    "nats:renew": ["nats", "renew", "--store", "s3://samples/store"],
  };
  // A throwaway NATS account seed, made for this test: no server trusts its account.
  const sampleEnv: Record<string, Record<string, string>> = {
    "nats:creds": { RUNCTL_NATS_ACCOUNT_SEED: "SAABPGGAMQGTEXJUBI4ZSS7OS4VPT3FQNBQTM4S3W62PR4PDCZWTKADIFQ" },
  };
  // `nats renew` serves on a real server (started in beforeAll).
  Object.defineProperty(sampleEnv, "nats:renew", {
    enumerable: true,
    get: () => ({
      RUNCTL_NATS_URL: natsServer.url,
      RUNCTL_NATS_ACCOUNT_SEED: "SAABPGGAMQGTEXJUBI4ZSS7OS4VPT3FQNBQTM4S3W62PR4PDCZWTKADIFQ",
    }),
  });
  // Commands whose sample fails on purpose (they would install or link something): the failure
  // must still be one envelope, with exit code 1.
  const failing: Record<string, string[]> = {
    "plugins:install": ["plugins", "install"],
    "plugins:uninstall": ["plugins", "uninstall", "runctl-provider-not-installed"],
    "plugins:link": ["plugins", "link", "no-such-dir"],
  };
  // Long-running commands: stopped with SIGTERM once they say they are up; then they print their envelope.
  const stopWhen: Record<string, RegExp> = { server: /listening on/, "nats:renew": /serving renewals/ };

  it("has a --json sample for every command it ships", async () => {
    // Its own commands and those of its first-party core plugins (provider-aws's `aws …`).
    const pjson = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
      oclif: { plugins: string[] };
    };
    const manifests = [new URL("../oclif.manifest.json", import.meta.url).pathname];
    for (const name of pjson.oclif.plugins.filter((n) => n.startsWith("@runctl/"))) {
      const manifest = join(dirname(require.resolve(`${name}/package.json`)), "oclif.manifest.json");
      if (existsSync(manifest)) manifests.push(manifest);
    }
    const ids: string[] = [];
    for (const path of manifests) {
      const manifest = JSON.parse(await readFile(path, "utf8")) as { commands: Record<string, unknown> };
      ids.push(...Object.keys(manifest.commands));
    }
    expect(ids.sort()).toEqual(Object.keys({ ...samples, ...failing }).sort());
  });

  it("lists every command, from every plugin, in `runctl --help --json`, and each has a sample", async () => {
    const r = await cli(["--help", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = z
      .object({
        success: z.literal(true),
        commands: z.array(z.object({ id: z.string(), plugin: z.string() })),
      })
      .parse(JSON.parse(r.stdout));
    expect(doc.commands.map((c) => c.id).sort()).toEqual(Object.keys({ ...samples, ...failing }).sort());
  });

  for (const [id, args] of Object.entries(failing)) {
    it(`${id} --json fails with one envelope on stdout`, async () => {
      const r = await cli([...args, "--json"]);
      expect(parseJson(r.stdout), r.stderr).toMatchObject({ success: false });
      expect(r.code).toBe(1);
    });
  }

  it("--version --json is an envelope; --version and --help never load oclif's full start", async () => {
    const r = await cli(["--version", "--json"]);
    expect(parseJson(r.stdout)).toMatchObject({ success: true, name: "runctl", version: "0.1.0" });
  });

  it("prints the same root help on the fast path as oclif does", async () => {
    const fast = await cli(["--help"]);
    const oclif = await cli(["--help"], box.project, { RUNCTL_NO_FAST_PATH: "1" });
    expect(fast.code).toBe(0);
    expect(fast.stdout).toContain("COMMANDS");
    expect(fast.stdout).toBe(oclif.stdout);
    expect((await cli([])).stdout).toBe(oclif.stdout);
  });

  it("suggests the nearest command for a typo, in both output modes", async () => {
    const human = await cli(["lcoal", "train.py"]);
    expect(human.code).toBe(1);
    expect(human.stderr).toContain("Unknown command: runctl lcoal");
    expect(human.stderr).toContain("Did you mean `runctl local`?");
    const json = await cli(["config", "shwo", "--json"]);
    expect(parseJson(json.stdout)).toMatchObject({
      success: false,
      error: { code: "unknown_command", hint: expect.stringContaining("runctl config show") },
    });
  });

  it("jobs shows active jobs and, below them, recently finished ones", async () => {
    const r = await cli(["jobs", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = z
      .object({
        jobs: z.array(z.object({ status: z.string() })),
        recent: z.array(z.object({ status: z.string() })),
      })
      .parse(JSON.parse(r.stdout));
    expect(doc.jobs.every((j) => ["queued", "running"].includes(j.status))).toBe(true);
    expect(doc.recent.map((j) => j.status)).toContain("cancelled");
  });

  it("hints at `--` when a script's flag comes before it", async () => {
    const r = await cli(["local", "train.py", "--epochs", "3", "--json"]);
    expect(r.code).toBe(1);
    expect(parseJson(r.stdout)).toMatchObject({
      success: false,
      error: {
        code: "bad_usage",
        hint: expect.stringContaining("runctl local train.py --json -- --epochs 3"),
      },
    });
  });

  for (const [id, sample] of Object.entries(samples)) {
    it(`${id} --json prints one envelope on stdout`, async () => {
      const args = sample.map((a) =>
        a === AWS_SAMPLE_INSTANCE ? awsInstance : a === RUNPOD_SAMPLE_POD ? runpodPod : a,
      );
      const { mkdir } = await import("node:fs/promises");
      await mkdir(join(box.project, "sub"), { recursive: true });
      // --json goes before any `--`, after which everything belongs to the script.
      const end = args.includes("--") ? args.indexOf("--") : args.length;
      const r = await cli(
        [...args.slice(0, end), "--json", ...args.slice(end)],
        box.project,
        sampleEnv[id] ?? {},
        stopWhen[id],
      );
      const doc = parseJson(r.stdout);
      expect(doc.success, r.stderr).toBe(true);
      // doctor exits 1 when a check fails; the machine here may lack python or uv, which only warn.
      expect(r.code, r.stderr).toBe(0);
    });
  }

  it("answers an unknown command with the envelope and exit code 1", async () => {
    const r = await cli(["frobnicate", "--json"]);
    expect(r.code).toBe(1);
    const doc = parseJson(r.stdout);
    expect(doc).toMatchObject({ success: false, error: { code: "unknown_command" } });
  });

  it("answers bad usage with exit code 1 and a hint", async () => {
    const r = await cli(["config", "get", "--json"]);
    expect(r.code).toBe(1);
    expect(parseJson(r.stdout)).toMatchObject({ success: false, error: { code: "bad_usage" } });
    const human = await cli(["config", "get"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe("");
    expect(human.stderr).toMatch(
      /^Error: Missing 1 required arg[\s\S]*\n\s+Hint: See the usage with `runctl config get --help`/,
    );
  });

  it("exits 3 on configuration errors, naming file, key and line", async () => {
    const bad = await sandbox();
    await writeFile(join(bad.project, ".runctl.toml"), "[bundle]\nwarn_size_mb = 10\n\n[nats]\nurll = 'x'\n");
    const r = await runctl(["config", "validate", "--json"], { cwd: bad.project, env: bad.env });
    expect(r.code).toBe(3);
    const doc = parseJson(r.stdout);
    expect(doc).toMatchObject({ success: false, error: { code: "config_invalid" } });
    const message = (doc as { error: { message: string } }).error.message;
    expect(message).toContain(join(bad.project, ".runctl.toml"));
    expect(message).toContain("nats.urll");
    expect(message).toMatch(/:5\b|line 5/);

    await writeFile(join(bad.project, ".runctl.toml"), "[bundle]\nwarn_size_mb = \n");
    const parse = await runctl(["config", "show", "--json"], { cwd: bad.project, env: bad.env });
    expect(parse.code).toBe(3);
    expect(parseJson(parse.stdout)).toMatchObject({ success: false, error: { code: "config_parse" } });
  });

  it("exits 1 for a user error such as an existing config file", async () => {
    const first = await cli(["init", "--json"]);
    expect(first.code).toBe(0);
    const again = await cli(["init", "--json"]);
    expect(again.code).toBe(1);
    expect(parseJson(again.stdout)).toMatchObject({ success: false, error: { code: "config_exists" } });
  });

  it("config set writes a value that config get reads back", async () => {
    const set = await cli(["config", "set", "nats.prefix", "team-a", "--json"]);
    expect(set.code, set.stderr).toBe(0);
    const get = await cli(["config", "get", "nats.prefix", "--json"]);
    expect(parseJson(get.stdout)).toMatchObject({ success: true, value: "team-a" });
    const env = await cli(["config", "get", "nats.prefix", "--json"], box.project, {
      RUNCTL_NATS_PREFIX: "from-env",
    });
    expect(parseJson(env.stdout)).toMatchObject({ success: true, value: "from-env" });
  });

  it("bundle reports a stable key and the files it would ship", async () => {
    const a = BundleOut.parse(JSON.parse((await cli(["bundle", "--json", "--list"])).stdout));
    const b = BundleOut.parse(JSON.parse((await cli(["bundle", "--json"])).stdout));
    expect(a.bundle.key).toMatch(/^[0-9a-f]{64}$/);
    expect(b.bundle.key).toBe(a.bundle.key);
    expect(b.bundle.cached).toBe(true);
    expect(a.bundle.files?.map((f) => f.path)).toContain("train.py");
  });
});
