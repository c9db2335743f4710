// A third-party provider, end to end: published with the real npm client to a
// real registry (verdaccio on loopback), installed by its short name with
// `runctl plugins install`, listed, its command run, its config section
// validated, the core contract suite run against the installed code, removed.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type ProviderDefinition, ProviderRegistry } from "@runctl/core";
import { runProviderContract } from "@runctl/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { runctl as runCli, runctlJson, type Workspace } from "../src/runctl-cli.ts";
import { type Registry, startRegistry } from "../src/verdaccio.ts";

const require = createRequire(import.meta.url);
const FIXTURE = fileURLToPath(new URL("../fixtures/runctl-provider-fixture", import.meta.url));

const ProvidersOut = z.object({
  success: z.literal(true),
  providers: z.array(
    z.object({
      name: z.string(),
      plugin: z.string().optional(),
      capabilities: z
        .object({ spot: z.boolean(), stopStart: z.boolean(), gpuTypes: z.array(z.string()) })
        .passthrough(),
    }),
  ),
});

let registry: Registry;
let home: string;
let project: string;
let env: NodeJS.ProcessEnv;

const ws = (): Workspace => ({ home, project, env });
const runctl = (args: string[]) => runCli(args, ws());
const json = (args: string[]) => runctlJson(args, ws());

beforeAll(async () => {
  registry = await startRegistry();
  home = await mkdtemp(join(tmpdir(), "runctl-plugins-"));
  project = join(home, "project");
  await mkdir(project);
  env = registry.env({
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local/share"),
    XDG_CACHE_HOME: join(home, ".cache"),
  });

  // The registry proxies nothing, so the fixture's one dependency is mirrored
  // into it from the copy this workspace installed (packed, then published).
  const zodDir = dirname(require.resolve("zod/package.json"));
  const packDir = join(home, "pack");
  await mkdir(packDir);
  const packed = await registry.npm(["pack", zodDir, "--pack-destination", packDir, "--ignore-scripts"], {
    cwd: packDir,
  });
  await registry.npm(
    ["publish", join(packDir, packed.stdout.trim().split("\n").pop() ?? ""), "--ignore-scripts"],
    {
      cwd: packDir,
    },
  );

  const pkg = join(home, "fixture-src");
  await cp(FIXTURE, pkg, { recursive: true });
  await registry.publish(pkg);
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a third-party provider plugin from npm", () => {
  it("is not known before it is installed", async () => {
    const r = await json(["providers"]);
    expect(ProvidersOut.parse(r.doc).providers.map((p) => p.name)).not.toContain("fixture");
  });

  it("says which names it tried when a short name resolves to nothing", async () => {
    const r = await runctl(["plugins", "install", "provider-nothing-here"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      "@runctl/provider-nothing-here, runctl-provider-nothing-here, provider-nothing-here",
    );
  });

  it("shows what a third-party package is and refuses it without --yes when it cannot ask", async () => {
    const r = await json(["plugins", "install", "provider-fixture"]);
    expect(r.code).toBe(1);
    expect(r.doc).toMatchObject({ success: false, error: { code: "confirmation_required" } });
    expect(r.stderr).toContain("runctl-provider-fixture@1.0.0 is not a first-party (@runctl/) package");
    expect(r.stderr).toMatch(/published by: /);
    expect(r.stderr).toContain("commands under `runctl fixture`; providers (the runctl:providers hook)");
    const listed = await json(["plugins"]);
    expect(listed.doc).toMatchObject({ success: true, plugins: [] });
  });

  it("installs by its short name provider-<name> with --yes", async () => {
    const r = await json(["plugins", "install", "provider-fixture", "--yes"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("provider-fixture resolves to runctl-provider-fixture");
    expect(r.doc).toMatchObject({
      success: true,
      installed: [{ name: "runctl-provider-fixture", version: "1.0.0", type: "user" }],
    });
  });

  it("is listed by `runctl providers --json` with its capabilities", async () => {
    const r = await json(["providers"]);
    const fixture = ProvidersOut.parse(r.doc).providers.find((p) => p.name === "fixture");
    expect(fixture).toMatchObject({
      plugin: "runctl-provider-fixture",
      capabilities: { spot: true, stopStart: true, gpuTypes: ["fixture-gpu"] },
    });
  });

  it("is not loaded by --help or --version, only when providers are needed", async () => {
    const marker = join(home, "hook-loaded");
    env.RUNCTL_FIXTURE_LOAD_MARKER = marker;
    try {
      for (const args of [["--version"], ["--help"], ["providers", "--help"], ["config", "--help"]]) {
        const r = await runctl(args);
        expect(r.code, r.stderr).toBe(0);
      }
      await expect(readFile(marker, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
      await json(["providers"]);
      expect(await readFile(marker, "utf8")).toBe("loaded\n");
    } finally {
      delete env.RUNCTL_FIXTURE_LOAD_MARKER;
    }
  });

  it("contributes a command that runs", async () => {
    const r = await json(["fixture", "list"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc).toMatchObject({ success: true, resources: [] });
  });

  it("owns the [fixture] section of .runctl.toml", async () => {
    await writeFile(join(project, ".runctl.toml"), '[fixture]\nregion = "fixture-1"\n');
    expect((await json(["config", "validate"])).code).toBe(0);
    await writeFile(join(project, ".runctl.toml"), '[fixture]\nregoin = "fixture-1"\n');
    const bad = await json(["config", "validate"]);
    expect(bad.code).toBe(3);
    expect(JSON.stringify(bad.doc)).toContain("fixture.regoin");
    await rm(join(project, ".runctl.toml"));
  });

  it("passes the core provider contract suite as installed", async () => {
    const dataDir = join(home, ".local/share/runctl");
    const hook = pathToFileURL(join(dataDir, "node_modules/runctl-provider-fixture/hooks/providers.js")).href;
    const definitions = (await (await import(hook)).default()) as ProviderDefinition[];
    const providers = new ProviderRegistry();
    for (const d of definitions) providers.register(d, { plugin: "runctl-provider-fixture" });
    const results = await runProviderContract(() => providers.create("fixture", {}, { env: {}, dataDir }), {
      launchSpec: { instanceType: "small" },
      settleTimeoutMs: 5_000,
      pollMs: 20,
    });
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(8);
    // The contract launched machines in the data dir the CLI uses: the plugin's command sees them.
    const listed = await json(["fixture", "list"]);
    expect(z.object({ resources: z.array(z.unknown()) }).parse(listed.doc).resources.length).toBeGreaterThan(
      0,
    );
  });

  it("is removed by `runctl plugins uninstall`", async () => {
    const r = await json(["plugins", "uninstall", "runctl-provider-fixture"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc).toMatchObject({ success: true, uninstalled: ["runctl-provider-fixture"] });
    const after = await json(["providers"]);
    expect(ProvidersOut.parse(after.doc).providers.map((p) => p.name)).not.toContain("fixture");
    const gone = await json(["fixture", "list"]);
    expect(gone.code).toBe(1);
    expect(gone.doc).toMatchObject({ success: false, error: { code: "unknown_command" } });
  });
});
