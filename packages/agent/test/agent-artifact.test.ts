import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { newRunId, RUN_SPEC_VERSION } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a build script in plain JS, without declarations
import { buildPythonClientZip } from "../scripts/python-zip.mjs";
import { agentArtifact, materializePythonZip } from "../src/mod.ts";

const run = promisify(execFile);
const PYTHON = "/usr/bin/python3";
const IMPORT = "import runctl, sys; print(runctl.__file__); print(callable(runctl.init))";

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "runctl-agent-artifact-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("the Python client zip", () => {
  it("is the same bytes for the same sources and imports with a clean PYTHONPATH", async () => {
    const a = await buildPythonClientZip();
    const b = await buildPythonClientZip();
    expect(a.sha256).toBe(b.sha256);
    expect(a.files).toContain("runctl/__init__.py");
    const base64 = Buffer.from(a.zip).toString("base64");
    const path = materializePythonZip(base64, a.sha256, join(base, "cache"));
    expect(path).toBe(join(base, "cache", `runctl-client-${a.sha256}.zip`));
    // Second call: the file is there and reused.
    expect(materializePythonZip(base64, a.sha256, join(base, "cache"))).toBe(path);
    expect(() => materializePythonZip(base64, "0".repeat(64), join(base, "cache"))).toThrow(/sha256/);
    const elsewhere = join(base, "elsewhere");
    await mkdir(elsewhere);
    const { stdout } = await run(
      PYTHON,
      [
        "-I",
        "-c",
        IMPORT.replace("import runctl", "import sys; sys.path.insert(0, sys.argv[1]); import runctl"),
        path,
      ],
      {
        cwd: elsewhere,
        env: { PATH: "/usr/bin:/bin" },
      },
    );
    expect(stdout).toBe(`${join(path, "runctl", "__init__.py")}\nTrue\n`);
    const viaEnv = await run(PYTHON, ["-c", IMPORT], {
      cwd: elsewhere,
      env: { PATH: "/usr/bin:/bin", PYTHONPATH: path },
    });
    expect(viaEnv.stdout).toBe(`${join(path, "runctl", "__init__.py")}\nTrue\n`);
  });
});

describe("the agent artifact", () => {
  it("is named by the sha256 of its bytes", async () => {
    const artifact = agentArtifact();
    const bytes = await readFile(artifact.path);
    expect(artifact.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(artifact.bytes).toBe(bytes.length);
    expect(artifact.key).toBe(`agents/${artifact.sha256}.mjs`);
  });

  it("runs a rank that imports runctl from the embedded zip when copied off the workspace", async () => {
    const artifact = agentArtifact();
    const host = join(base, "host");
    await mkdir(join(host, "work"), { recursive: true });
    const copy = join(host, `${artifact.sha256}.mjs`);
    await copyFile(artifact.path, copy);
    const runId = newRunId();
    const spec = {
      v: RUN_SPEC_VERSION,
      runId,
      command: [PYTHON, "-c", IMPORT],
      cwd: join(host, "work"),
      runsDir: join(host, "runs"),
      checkpointDir: join(host, "checkpoints"),
    };
    await writeFile(join(host, "spec.json"), JSON.stringify(spec));
    await run(process.execPath, [copy, join(host, "spec.json")], {
      cwd: host,
      env: { PATH: "/usr/bin:/bin", HOME: host, RUNCTL_HOME: host },
    });
    const python = (await buildPythonClientZip()).sha256;
    const zip = join(host, "cache", "python", `runctl-client-${python}.zip`);
    const output = await readFile(join(host, "runs", runId, "output.log"), "utf8");
    expect(output).toContain(`${join(zip, "runctl", "__init__.py")}\nTrue\n`);
  });
});
