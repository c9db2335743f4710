import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "smol-toml";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { configSchemaWith, loadConfig, setConfigValue, starterConfig } from "../src/config/mod.ts";
import { ConfigError, UserError } from "../src/errors.ts";

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "runctl-config-set-"));
  file = join(dir, ".runctl.toml");
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe("setConfigValue", () => {
  it("replaces a value in place, keeping comments and layout", async () => {
    const before = [
      "# team settings",
      "[nats]",
      'url   =   "nats://old:4222"   # shared server',
      "",
      "# bundles",
      "[bundle]",
      "exclude = [ # big things",
      '  "data/",',
      "]",
      "warn_size_mb = 100",
      "",
    ].join("\n");
    await writeFile(file, before);
    const result = await setConfigValue({ file, key: "nats.url", value: "nats://new:4222" });
    expect(result).toMatchObject({ value: "nats://new:4222", previous: "nats://old:4222", created: false });
    await setConfigValue({ file, key: "bundle.exclude", value: '["a", "b"]' });
    await setConfigValue({ file, key: "bundle.warn_size_mb", value: "250" });
    expect(await readFile(file, "utf8")).toBe(
      [
        "# team settings",
        "[nats]",
        'url   =   "nats://new:4222"   # shared server',
        "",
        "# bundles",
        "[bundle]",
        'exclude = [ "a", "b" ]',
        "warn_size_mb = 250",
        "",
      ].join("\n"),
    );
  });

  it("inserts a missing key at the end of its section, before the next section's comments", async () => {
    await writeFile(file, '[nats]\nurl = "nats://h:4222"\n\n# output settings\n[output]\ncolor = true\n');
    await setConfigValue({ file, key: "nats.prefix", value: "team" });
    expect(await readFile(file, "utf8")).toBe(
      '[nats]\nurl = "nats://h:4222"\nprefix = "team"\n\n# output settings\n[output]\ncolor = true\n',
    );
  });

  it("appends a new section when the file has none for the key", async () => {
    await writeFile(file, "# mine\n[output]\ncolor = false");
    await setConfigValue({ file, key: "local.python", value: "/opt/py/bin/python" });
    expect(await readFile(file, "utf8")).toBe(
      '# mine\n[output]\ncolor = false\n\n[local]\npython = "/opt/py/bin/python"\n',
    );
  });

  it("creates a missing file and its directory", async () => {
    const user = join(dir, "xdg", "runctl", "config.toml");
    const result = await setConfigValue({ file: user, key: "output.color", value: "false" });
    expect(result.created).toBe(true);
    expect(parse(await readFile(user, "utf8"))).toEqual({ output: { color: false } });
  });

  it("rejects an invalid value and leaves the file byte-identical", async () => {
    const before = "# keep me\r\n[bundle]\r\nwarn_size_mb = 100 # MB\r\n";
    await writeFile(file, before);
    const error = await rejection(setConfigValue({ file, key: "bundle.warn_size_mb", value: "-5" }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("config_invalid");
    expect((error as ConfigError).message).toContain("bundle.warn_size_mb");
    expect((error as ConfigError).hint).toContain("was not changed");
    expect(await readFile(file, "utf8")).toBe(before);

    const wrongType = await rejection(setConfigValue({ file, key: "output.color", value: "maybe" }));
    expect(wrongType).toBeInstanceOf(ConfigError);
    expect(await readFile(file, "utf8")).toBe(before);
  });

  it("rejects an unknown key with a suggestion and does not create the file", async () => {
    const error = await rejection(setConfigValue({ file, key: "nats.ur", value: "nats://h" }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("nats.ur: unknown key (did you mean nats.url?)");
    await expect(stat(file)).rejects.toThrow();
  });

  it("refuses a bare section name", async () => {
    const error = await rejection(setConfigValue({ file, key: "nats", value: "x" }));
    expect(error).toBeInstanceOf(UserError);
  });

  it("keeps a string key a string even when the text looks like a number", async () => {
    await setConfigValue({ file, key: "nats.token", value: "000123" });
    expect(parse(await readFile(file, "utf8"))).toEqual({ nats: { token: "000123" } });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("validates provider keys with the given sections", async () => {
    const aws = z.strictObject({ region: z.string(), spot: z.boolean().optional() });
    await writeFile(file, '[aws]\nregion = "eu-west-1"\n');
    await setConfigValue({ file, key: "aws.spot", value: "true", sections: { aws } });
    expect(await readFile(file, "utf8")).toBe('[aws]\nregion = "eu-west-1"\nspot = true\n');
    const bad = await rejection(
      setConfigValue({ file, key: "aws.spot", value: "sometimes", sections: { aws } }),
    );
    expect(bad).toBeInstanceOf(ConfigError);
    const unknown = await rejection(setConfigValue({ file, key: "aws.spot", value: "true" }));
    expect((unknown as ConfigError).hint).toContain("provider-aws");
  });

  it("writes through a symlink instead of replacing it", async () => {
    const target = join(dir, "real.toml");
    await writeFile(target, "[output]\ncolor = true\n");
    const link = join(dir, "link.toml");
    await symlink(target, link);
    await setConfigValue({ file: link, key: "output.color", value: "false" });
    expect((await stat(link)).isFile()).toBe(true);
    expect(await readFile(target, "utf8")).toBe("[output]\ncolor = false\n");
  });
});

describe("starterConfig", () => {
  it("parses and validates as-is, with every core key documented", () => {
    const text = starterConfig();
    const parsed = parse(text);
    const result = configSchemaWith().safeParse(parsed);
    expect(result.success).toBe(true);
    for (const key of ["name", "user", "python", "runs_dir", "checkpoint_dir", "exclude", "warn_size_mb"]) {
      expect(text).toMatch(new RegExp(`^# ${key} = `, "m"));
    }
    for (const key of [
      "url",
      "token",
      "password",
      "creds",
      "context",
      "tls_ca",
      "tls_cert",
      "tls_key",
      "prefix",
      "account_seed",
      "account_seed_file",
    ]) {
      expect(text).toMatch(new RegExp(`^# ${key} = `, "m"));
    }
    expect(text).toMatch(/^# color = true$/m);
  });

  it("takes an account seed, and refuses anything else as one with the reason", () => {
    const nats = (account_seed: string) => configSchemaWith().safeParse({ nats: { account_seed } });
    expect(nats(" SAAB2345 ").data?.nats.account_seed).toBe("SAAB2345");
    for (const wrong of ["SUAB2345", "ABCDEFG", "", "SA ab"]) {
      const result = nats(wrong);
      expect(result.success, wrong).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain("must be a NATS account seed");
    }
  });

  it("loads as a project file and takes `set` under the commented example", async () => {
    await mkdir(join(dir, "home"));
    await writeFile(file, starterConfig());
    const { config } = await loadConfig({ cwd: dir, env: {}, homedir: join(dir, "home") });
    expect(config.local.runs_dir).toBe("runs");

    await setConfigValue({ file, key: "nats.url", value: "nats://127.0.0.1:4222" });
    const text = await readFile(file, "utf8");
    expect(text).toContain('# url = "nats://127.0.0.1:4222"\nurl = "nats://127.0.0.1:4222"\n# Token');
  });
});
