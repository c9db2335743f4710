// The `runctl local` fast path (src/local-fast-path.ts): which command lines it takes, and that
// a run it takes looks exactly like the same run through oclif (RUNCTL_NO_FAST_PATH=1): output,
// exit code, --json document and run directory. Runs the built CLI (npm run build).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parseLocalArgv } from "../src/local-fast-path.ts";
import { BIN, runctl, type Sandbox, sandbox } from "./run-cli.ts";

const PRELOAD = fileURLToPath(new URL("./fixtures/oclif-loaded.cjs", import.meta.url));
const PY = ["--python", "/usr/bin/python3"];
const SLEEPER = `import os, time
open(os.path.join(os.environ["RUNCTL_RUN_DIR"], "ready"), "w").close()
time.sleep(600)
`;
const JOB = `import sys
print("out", sys.argv[1:])
print("err", file=sys.stderr)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
`;

describe("parseLocalArgv", () => {
  it("takes flags before the script and the script's own arguments", () => {
    expect(
      parseLocalArgv([
        "local",
        "--quiet",
        "--python=/p",
        "--tag",
        "a",
        "--tag",
        "b",
        "t.py",
        "x",
        "--",
        "-v",
      ]),
    ).toEqual({
      values: new Map([["python", "/p"]]),
      tags: ["a", "b"],
      booleans: new Set(["quiet"]),
      target: "t.py",
      scriptArgs: ["x", "-v"],
    });
  });

  it.each([
    ["another command", ["runs"]],
    ["no script", ["local", "--quiet"]],
    ["a flag after the script (oclif reads it as local's)", ["local", "t.py", "--quiet"]],
    ["--detach", ["local", "--detach", "t.py"]],
    ["--resume", ["local", "--resume", "auto", "t.py"]],
    ["--nats", ["local", "--nats", "nats://x:4222", "t.py"]],
    ["--checkpoint-dir", ["local", "--checkpoint-dir", "ck", "t.py"]],
    ["help", ["local", "--help"]],
    ["a short flag", ["local", "-h", "t.py"]],
    ["a flag given twice", ["local", "--name", "a", "--name", "b", "t.py"]],
    ["a value that looks like a flag", ["local", "--name", "--quiet", "t.py"]],
    ["a missing value", ["local", "--python"]],
    ["-- before the script", ["local", "--", "t.py"]],
  ])("declines %s", (_why, argv) => {
    expect(parseLocalArgv(argv)).toBeUndefined();
  });
});

describe("runctl local: fast path and oclif", () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await sandbox();
    await writeFile(join(sb.project, "job.py"), JOB);
    await writeFile(join(sb.project, "sleeper.py"), SLEEPER);
  });

  /** Polls until `check` holds; the timeout only catches a hang. */
  async function waitFor(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs the CLI and says whether oclif ran it. */
  async function run(args: string[], viaOclif: boolean) {
    const marker = join(sb.home, `oclif-${Math.random().toString(36).slice(2)}`);
    const env = {
      ...sb.env,
      NODE_OPTIONS: `--require ${PRELOAD}`,
      RUNCTL_TEST_OCLIF_FILE: marker,
      ...(viaOclif ? { RUNCTL_NO_FAST_PATH: "1" } : {}),
    };
    const result = await runctl(args, { cwd: sb.project, env });
    return { ...result, path: await readFile(marker, "utf8") };
  }

  /** Run ids and directories differ between two runs; everything else must not. */
  const normal = (text: string) =>
    text.replaceAll(/\d{8}-\d{6}-[0-9a-f]{6}/g, "<id>").replaceAll(sb.project, "<project>");

  it("a plain foreground run never starts oclif, and prints what oclif prints", async () => {
    const fast = await run(["local", ...PY, "job.py", "--", "a"], false);
    const slow = await run(["local", ...PY, "job.py", "--", "a"], true);
    expect([fast.path, slow.path]).toEqual(["fast", "oclif"]);
    expect(fast.code, fast.stderr).toBe(0);
    expect(fast.stdout).toBe("out ['a']\n");
    expect(normal(fast.stdout)).toBe(normal(slow.stdout));
    expect(normal(fast.stderr)).toBe(normal(slow.stderr));
    expect(slow.code).toBe(0);
  });

  it("a failed run: the script's exit code, the same --json document and run directory", async () => {
    const fast = await run(["local", "--json", "--name", "n", ...PY, "job.py", "3"], false);
    const slow = await run(["local", "--json", "--name", "n", ...PY, "job.py", "3"], true);
    expect([fast.path, slow.path]).toEqual(["fast", "oclif"]);
    expect([fast.code, slow.code]).toEqual([3, 3]);
    const doc = JSON.parse(fast.stdout);
    expect(doc).toMatchObject({ success: false, error: { code: "run_failed" } });
    expect(normal(fast.stdout)).toBe(normal(slow.stdout));
    // With --json the run's output goes to stderr.
    expect(fast.stderr).toContain("out ['3']");
    expect(normal(fast.stderr)).toBe(normal(slow.stderr));
    const dirs = [doc.error.details.run.dir, JSON.parse(slow.stdout).error.details.run.dir] as string[];
    const layouts = await Promise.all(dirs.map(async (d) => (await readdir(d, { recursive: true })).sort()));
    expect(layouts[0]).toEqual(layouts[1]);
    const metas = await Promise.all(
      dirs.map(async (d) => JSON.parse(await readFile(join(d, "meta.json"), "utf8"))),
    );
    for (const meta of metas) {
      expect(meta).toMatchObject({ name: "n", status: "failed", exit_code: 3, writer: "supervisor" });
      expect(meta.pid).toBeGreaterThan(0);
    }
    expect(Object.keys(metas[0]).sort()).toEqual(Object.keys(metas[1]).sort());
  });

  it("declined command lines and bad values go to oclif, which reports them", async () => {
    const after = await run(["local", ...PY, "job.py", "--quiet"], false);
    expect(after.path).toBe("oclif");
    expect(after.code).toBe(0);
    expect(after.stdout).toBe("");
    const bad = await run(["local", "--nproc-per-node", "0", ...PY, "job.py"], false);
    expect(bad.path).toBe("oclif");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/nproc-per-node/);
    const missing = await run(["local", ...PY, "nope.py"], false);
    expect(missing.code).toBe(1);
    expect(normal(missing.stderr)).toBe(normal((await run(["local", ...PY, "nope.py"], true)).stderr));
  });

  it("a fast-path run whose CLI is killed with SIGKILL is stopped and recorded cancelled", async () => {
    const runs = join(sb.project, "runs");
    const before = new Set(existsSync(runs) ? await readdir(runs) : []);
    const child = spawn(process.execPath, [BIN, "local", "--quiet", ...PY, "--grace", "2", "sleeper.py"], {
      cwd: sb.project,
      env: sb.env,
      stdio: "ignore",
    });
    const exited = new Promise((r) => child.once("exit", r));
    let dir = "";
    await waitFor(async () => {
      const id = (await readdir(runs).catch(() => [] as string[])).find((d) => !before.has(d));
      dir = id ? join(runs, id) : "";
      return dir !== "" && existsSync(join(dir, "ready"));
    }, "the script to start");
    const meta = JSON.parse(await readFile(join(dir, "meta.json"), "utf8"));
    // The run is supervised by the CLI itself: no agent process of its own.
    expect(meta.pid).toBe(child.pid);
    child.kill("SIGKILL");
    await exited;
    await waitFor(
      async () => JSON.parse(await readFile(join(dir, "meta.json"), "utf8")).status === "cancelled",
      "the run to be recorded cancelled",
    );
    const pgids = meta.rank_pgids as number[];
    for (const pgid of pgids) expect(() => process.kill(-pgid, 0)).toThrow();
  });
});
