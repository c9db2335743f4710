// The scaffolder as `npm create runctl-provider` runs it: a child process in a directory. That the
// scaffold builds, passes the contract suite, publishes and installs is test-e2e's install test.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/create.js", import.meta.url));
const own = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

function create(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function files(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = `${prefix}${entry.name}`;
    if (entry.isDirectory()) out.push(...(await files(join(dir, entry.name), `${rel}/`)));
    else out.push(rel);
  }
  return out.sort();
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "create-runctl-provider-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("create-runctl-provider", () => {
  it("writes runctl-provider-<name> with every placeholder filled", async () => {
    const r = await create(["lambda-labs"], work);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Created runctl-provider-lambda-labs");
    const dir = join(work, "runctl-provider-lambda-labs");
    expect(await files(dir)).toEqual([
      ".gitignore",
      "README.md",
      "package.json",
      "scripts/manifest.mjs",
      "src/capabilities.ts",
      "src/commands/lambda-labs/list.ts",
      "src/hooks/providers.ts",
      "src/provider.ts",
      "test/contract.test.mjs",
      "tsconfig.json",
    ]);
    for (const file of await files(dir)) {
      expect(await readFile(join(dir, file), "utf8"), file).not.toMatch(
        /__NAME__|__CLASS__|__RUNCTL_VERSION__/,
      );
    }
    expect(await readFile(join(dir, "src/provider.ts"), "utf8")).toContain("export class LambdaLabsProvider");
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    expect(pkg).toMatchObject({
      name: "runctl-provider-lambda-labs",
      dependencies: { "@runctl/core": `^${own.version}`, "@runctl/command": `^${own.version}` },
      oclif: { hooks: { "runctl:providers": "./dist/hooks/providers.js" }, topics: { "lambda-labs": {} } },
    });
    expect(pkg.peerDependencies).toBeUndefined();
    expect(Object.keys(pkg.dependencies)).not.toContain("runctl");
  });

  it("accepts provider-<name> and a --dir", async () => {
    const r = await create(["provider-gcp", "--dir", "elsewhere"], work);
    expect(r.code, r.stderr).toBe(0);
    const pkg = JSON.parse(await readFile(join(work, "elsewhere", "package.json"), "utf8"));
    expect(pkg.name).toBe("runctl-provider-gcp");
  });

  it("refuses a name that is not a provider name, and a directory that is not empty", async () => {
    const bad = await create(["Not OK"], work);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("is not a provider name");
    await mkdir(join(work, "runctl-provider-taken"));
    await writeFile(join(work, "runctl-provider-taken", "x"), "");
    const taken = await create(["taken"], work);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain("exists and is not empty");
  });
});
