// RunctlCommand as a plugin uses it: a command class run by oclif with a real Config (this
// package's own root), its stdout and exit code checked.
import { fileURLToPath } from "node:url";
import { Config, Flags } from "@oclif/core";
import { ProviderError, UserError } from "@runctl/core";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { RunctlCommand } from "../src/mod.ts";

let config: Config;
beforeAll(async () => {
  config = await Config.load({ root: fileURLToPath(new URL("..", import.meta.url)) });
});

afterEach(() => {
  process.exitCode = undefined;
});

async function capture(run: () => Promise<unknown>): Promise<{ stdout: string; stderr: string }> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  const log = console.log;
  let stdout = "";
  let stderr = "";
  // oclif prints through console.log, which vitest intercepts; runctl writes to the streams.
  console.log = (...args: unknown[]) => {
    stdout += `${args.map(String).join(" ")}\n`;
  };
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    console.log = log;
  }
  return { stdout, stderr };
}

class Hello extends RunctlCommand<{ greeting: string }> {
  static override flags = { fail: Flags.string({ options: ["user", "provider", "plain"] }) };
  async run() {
    const { flags } = await this.parse(Hello);
    this.progress("working");
    if (flags.fail === "user") throw new UserError("bad input", { code: "bad_input", hint: "Fix it." });
    if (flags.fail === "provider") throw new ProviderError("cloud said no", { code: "capacity" });
    if (flags.fail === "plain") throw new Error("boom");
    this.log("hello, people");
    return { greeting: "hello" };
  }
}

describe("RunctlCommand", () => {
  it("prints {success: true, …} and nothing else on stdout with --json; notes go to stderr", async () => {
    const r = await capture(() => Hello.run(["--json"], config));
    expect(JSON.parse(r.stdout)).toEqual({ success: true, greeting: "hello" });
    expect(r.stderr).toContain("working");
    expect(process.exitCode ?? 0).toBe(0);
  });

  it("maps errors to the envelope and exit codes 1 (user) and 2 (provider)", async () => {
    const user = await capture(() => Hello.run(["--fail", "user", "--json"], config));
    expect(JSON.parse(user.stdout)).toEqual({
      success: false,
      error: { code: "bad_input", message: "bad input", hint: "Fix it." },
    });
    expect(process.exitCode).toBe(1);
    const provider = await capture(() => Hello.run(["--fail", "provider", "--json"], config));
    expect(JSON.parse(provider.stdout)).toMatchObject({ success: false, error: { code: "capacity" } });
    expect(process.exitCode).toBe(2);
  });

  it("reports bad usage as bad_usage with a hint, in people's form without --json", async () => {
    const r = await capture(() => Hello.run(["--nope"], config));
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^Error: Nonexistent flag: --nope/);
    expect(r.stderr).toContain("Hint: See the usage");
    expect(process.exitCode).toBe(1);
  });

  it("finds no providers where no plugin registers any", async () => {
    class List extends RunctlCommand<{ names: string[] }> {
      async run() {
        await this.parse(List);
        return { names: (await this.registry()).list().map((p) => p.name) };
      }
    }
    const r = await capture(() => List.run(["--json"], config));
    expect(JSON.parse(r.stdout)).toEqual({ success: true, names: [] });
  });
});

describe("fromOclifError", () => {
  it("reports a module that does not load as a broken plugin (exit 3), not as bad usage", async () => {
    const { fromOclifError } = await import("../src/mod.ts");
    const loadError = Object.assign(
      new Error(
        "[MODULE_NOT_FOUND] import() failed to load /x/commands/demo/list.js: Cannot find package 'runctl'",
      ),
      { name: "ModuleLoadError", code: "MODULE_NOT_FOUND", oclif: { exit: 1 } },
    );
    const err = fromOclifError(loadError, "demo:list");
    expect(err.toEnvelope()).toMatchObject({
      success: false,
      error: { code: "plugin_load_failed", message: expect.stringContaining("Cannot find package 'runctl'") },
    });
    expect(err.exitCode).toBe(3);
  });
});
