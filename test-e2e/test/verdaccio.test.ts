import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Registry, startRegistry } from "../src/verdaccio.ts";

const PKG = "runctl-smoke-pkg";
const VERSION = "1.2.3";

describe("verdaccio harness", () => {
  let registry: Registry;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "runctl-verdaccio-test-"));
    registry = await startRegistry();
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("publishes a package that npm view then reports", async () => {
    const pkgDir = join(work, "pkg");
    await mkdir(pkgDir, { recursive: true });
    await writeFile(
      join(pkgDir, "package.json"),
      JSON.stringify({ name: PKG, version: VERSION, type: "module", main: "index.js" }),
    );
    await writeFile(join(pkgDir, "index.js"), 'export const greeting = "hello from the local registry";\n');

    await registry.publish(pkgDir);

    const { stdout } = await registry.npm(["view", PKG, "version", "--registry", registry.url]);
    expect(stdout.trim()).toBe(VERSION);
  });

  test("installs the published package into a project from the local registry", async () => {
    const project = join(work, "consumer");
    await mkdir(project, { recursive: true });
    await writeFile(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));

    await registry.npm(["install", `${PKG}@${VERSION}`], { cwd: project });

    const installed = JSON.parse(await readFile(join(project, "node_modules", PKG, "package.json"), "utf8"));
    expect(installed.version).toBe(VERSION);
    const lock = JSON.parse(await readFile(join(project, "package-lock.json"), "utf8"));
    expect(lock.packages[`node_modules/${PKG}`].resolved).toBe(
      `${registry.url}${PKG}/-/${PKG}-${VERSION}.tgz`,
    );
    const mod = await import(pathToFileURL(join(project, "node_modules", PKG, "index.js")).href);
    expect(mod.greeting).toBe("hello from the local registry");
  });

  test("proxies nothing: a package it was not given is a 404", async () => {
    // left-pad exists on registry.npmjs.org; finding it here would mean an uplink leaked through.
    await expect(registry.npm(["view", "left-pad", "version"])).rejects.toThrow(/E404/);
  });

  test("stop() ends the server", async () => {
    const ping = new URL("-/ping", registry.url);
    expect((await fetch(ping)).ok).toBe(true);
    await registry.stop();
    await expect(fetch(ping, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  });
});
