import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { type LoadConfigOptions, loadConfig, userConfigPath } from "../src/config/mod.ts";
import { ConfigError } from "../src/errors.ts";

let root: string;
let home: string;
let project: string;
let nested: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-config-"));
  home = join(root, "home");
  project = join(root, "work", "proj");
  nested = join(project, "src", "deep");
  await mkdir(join(home, ".config", "runctl"), { recursive: true });
  await mkdir(nested, { recursive: true });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const userFile = () => join(home, ".config", "runctl", "config.toml");
const projectFile = () => join(project, ".runctl.toml");

function load(extra: Partial<LoadConfigOptions> = {}) {
  return loadConfig({ cwd: nested, env: {}, homedir: home, ...extra });
}

async function loadError(extra: Partial<LoadConfigOptions> = {}): Promise<ConfigError> {
  const error = await load(extra).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe("loadConfig precedence", () => {
  it("layers defaults < user < project < env < flags, each overriding one key", async () => {
    await writeFile(
      userFile(),
      '[nats]\nurl = "nats://user:4222"\nprefix = "from-user"\n[local]\nruns_dir = "user-runs"\n',
    );
    await writeFile(projectFile(), '[nats]\nprefix = "from-project"\n[bundle]\nwarn_size_mb = 5\n');
    const env = { RUNCTL_BUNDLE_WARN_SIZE_MB: "7", RUNCTL_OUTPUT_COLOR: "false" };
    const flags = { "output.color": true, "local.checkpoint_dir": "flag-ckpt" };
    const { config, sources, projectFile: found, userFile: user } = await load({ env, flags });

    expect(config.nats.url).toBe("nats://user:4222"); // user only
    expect(config.nats.prefix).toBe("from-project"); // project over user
    expect(config.local.runs_dir).toBe("user-runs"); // user over default
    expect(config.bundle.warn_size_mb).toBe(7); // env over project
    expect(config.output.color).toBe(true); // flag over env
    expect(config.local.checkpoint_dir).toBe("flag-ckpt"); // flag over default
    expect(config.bundle.exclude).toEqual([]); // default survives

    expect(found).toBe(projectFile());
    expect(user).toBe(userFile());
    expect(sources.map((s) => s.kind)).toEqual(["defaults", "user", "project", "env", "flags"]);
    expect(sources[1]).toEqual({
      kind: "user",
      path: userFile(),
      keys: ["nats.url", "nats.prefix", "local.runs_dir"],
    });
    expect(sources[3]?.keys).toEqual(["bundle.warn_size_mb", "output.color"]);
  });

  it("deep-merges a partial section over the defaults", async () => {
    await writeFile(projectFile(), '[local]\npython = "/usr/bin/python3"\n');
    const { config } = await load();
    expect(config.local).toEqual({
      python: "/usr/bin/python3",
      runs_dir: "runs",
      checkpoint_dir: "checkpoints",
    });
    expect(config.nats.prefix).toBe("runctl");
  });

  it("replaces arrays instead of concatenating them", async () => {
    await writeFile(userFile(), '[bundle]\nexclude = ["a", "b"]\n');
    await writeFile(projectFile(), '[bundle]\nexclude = ["c"]\n');
    const { config } = await load();
    expect(config.bundle.exclude).toEqual(["c"]);
  });

  it("finds the project file by walking up from a nested cwd", async () => {
    await writeFile(projectFile(), '[project]\nname = "walked"\n');
    const { config, projectFile: found } = await load();
    expect(found).toBe(projectFile());
    expect(config.project.name).toBe("walked");
  });

  it("takes the nearest project file when several are on the way up", async () => {
    await writeFile(join(root, "work", ".runctl.toml"), '[project]\nname = "outer"\n');
    await writeFile(projectFile(), '[project]\nname = "inner"\n');
    const { config } = await load();
    expect(config.project.name).toBe("inner");
  });

  it("uses XDG_CONFIG_HOME for the user file", async () => {
    const xdg = join(root, "xdg");
    await mkdir(join(xdg, "runctl"), { recursive: true });
    await writeFile(join(xdg, "runctl", "config.toml"), '[project]\nuser = "xdg-user"\n');
    const { config, userFile: user } = await load({ env: { XDG_CONFIG_HOME: xdg } });
    expect(user).toBe(join(xdg, "runctl", "config.toml"));
    expect(config.project.user).toBe("xdg-user");
    expect(userConfigPath({ XDG_CONFIG_HOME: "relative" }, home)).toBe(userFile());
  });
});

describe("loadConfig errors", () => {
  it("names the file, key and line of an unknown key and suggests the near one", async () => {
    await writeFile(
      projectFile(),
      '# comment\n[project]\nname = "x"\n\n[nats]\n# the server\nur = "nats://h:4222"\n',
    );
    const error = await loadError();
    expect(error.code).toBe("config_invalid");
    expect(error.exitCode).toBe(3);
    expect(error.message).toBe(`${projectFile()}:7: nats.ur: unknown key (did you mean nats.url?)`);
    expect(error.hint).toContain("nats.url");
    expect(error.details).toMatchObject({ file: projectFile(), key: "nats.ur", line: 7 });
  });

  it("gives the file and line of a TOML syntax error", async () => {
    await writeFile(userFile(), '[nats]\nurl = "nats://h"\nprefix = = "x"\n');
    const error = await loadError();
    expect(error.code).toBe("config_parse");
    expect(error.message).toContain(userFile());
    expect(error.message).toContain("line 3");
    expect(error.details).toMatchObject({ file: userFile(), line: 3 });
  });

  it("names the key and line of a wrong type", async () => {
    await writeFile(projectFile(), '[bundle]\nexclude = []\nwarn_size_mb = "big"\n[output]\ncolor = 1\n');
    const error = await loadError();
    expect(error.code).toBe("config_invalid");
    const lines = error.message.split("\n");
    expect(lines[0]).toMatch(
      new RegExp(`^${escapeRe(projectFile())}:3: bundle\\.warn_size_mb: .*expected number`),
    );
    expect(lines[1]).toMatch(new RegExp(`^${escapeRe(projectFile())}:5: output\\.color: .*expected boolean`));
    expect(error.details).toMatchObject({ key: "bundle.warn_size_mb", line: 3 });
  });

  it("reports a bad value in the user file even when the project file overrides it", async () => {
    await writeFile(userFile(), "[bundle]\nwarn_size_mb = -1\n");
    await writeFile(projectFile(), "[bundle]\nwarn_size_mb = 10\n");
    const error = await loadError();
    expect(error.message).toContain(`${userFile()}:2: bundle.warn_size_mb`);
  });

  it("says a provider plugin may be missing for an unknown section", async () => {
    await writeFile(projectFile(), '[project]\nname = "x"\n\n[gcp]\nzone = "europe-west4-a"\n');
    const error = await loadError();
    expect(error.message).toBe(`${projectFile()}:4: gcp: unknown section`);
    expect(error.hint).toContain("runctl plugins install provider-gcp");
  });

  it("suggests the closest section for a misspelt one", async () => {
    await writeFile(projectFile(), '[nat]\nurl = "nats://h"\n');
    const error = await loadError();
    expect(error.message).toContain("did you mean [nats]?");
    expect(error.hint).toContain("[nats]");
  });
});

describe("provider sections", () => {
  const aws = z.strictObject({
    region: z.string(),
    spot: z.strictObject({ max_price: z.number().positive().optional() }).optional(),
  });

  it("validates a present section with the provider's schema", async () => {
    await writeFile(projectFile(), '[aws]\nregion = "eu-west-1"\n[aws.spot]\nmax_price = 0.5\n');
    const { config } = await load({ sections: { aws } });
    expect(config.aws).toEqual({ region: "eu-west-1", spot: { max_price: 0.5 } });
  });

  it("leaves an absent provider section out", async () => {
    const { config } = await load({ sections: { aws } });
    expect(config.aws).toBeUndefined();
  });

  it("rejects a bad provider value with file, key and line", async () => {
    await writeFile(projectFile(), '[aws]\nregion = "eu-west-1"\n\n[aws.spot]\nmax_price = "cheap"\n');
    const error = await loadError({ sections: { aws } });
    expect(error.message).toMatch(new RegExp(`^${escapeRe(projectFile())}:5: aws\\.spot\\.max_price: `));
  });

  it("checks required provider keys across files, blaming the section's header", async () => {
    await writeFile(userFile(), '[aws]\nregion = "eu-west-1"\n');
    await writeFile(projectFile(), "[aws.spot]\nmax_price = 1\n");
    const { config } = await load({ sections: { aws } });
    expect(config.aws).toEqual({ region: "eu-west-1", spot: { max_price: 1 } });

    await rm(userFile());
    const error = await loadError({ sections: { aws } });
    expect(error.message).toMatch(new RegExp(`^${escapeRe(projectFile())}:1: aws\\.region: `));
  });
});

describe("environment variables", () => {
  it("maps sections, keys, `__` levels and typed values", async () => {
    const aws = z.strictObject({
      spot: z.strictObject({ max_price: z.number() }).optional(),
      tags: z.array(z.string()).optional(),
    });
    const env = {
      RUNCTL_NATS_URL: "nats://env:4222",
      RUNCTL_NATS_TOKEN: "123456",
      RUNCTL_BUNDLE_WARN_SIZE_MB: "12.5",
      RUNCTL_BUNDLE_EXCLUDE: '["data/", "*.pt"]',
      RUNCTL_OUTPUT_COLOR: "false",
      RUNCTL_AWS__SPOT__MAX_PRICE: "0.25",
      RUNCTL_AWS_TAGS: '["a","b"]',
      RUNCTL_RUN_ID: "r-1",
      RUNCTL_RUN_DIR: "/runs/r-1",
      RUNCTL_CHECKPOINT_DIR: "/ckpt",
      RUNCTL_RESUME_FROM: "/ckpt/3",
      RUNCTL_CONFIG: "/runs/r-1/config.json",
      RUNCTL_GCP_ZONE: "ignored: no such section",
      RUNCTL_PROJECT_NAME: "",
    };
    const { config } = await load({ env, sections: { aws } });
    expect(config.nats.url).toBe("nats://env:4222");
    expect(config.nats.token).toBe("123456"); // a string key keeps digits as text
    expect(config.bundle.warn_size_mb).toBe(12.5);
    expect(config.bundle.exclude).toEqual(["data/", "*.pt"]);
    expect(config.output.color).toBe(false);
    expect(config.aws).toEqual({ spot: { max_price: 0.25 }, tags: ["a", "b"] });
    expect(config.project.name).toBeUndefined();
    expect(config.local.checkpoint_dir).toBe("checkpoints");
  });

  it("names the variable of a bad value", async () => {
    const error = await loadError({ env: { RUNCTL_BUNDLE_WARN_SIZE_MB: "-3" } });
    expect(error.message).toMatch(/^environment variable RUNCTL_BUNDLE_WARN_SIZE_MB: bundle\.warn_size_mb: /);
    expect(error.details).toMatchObject({ variable: "RUNCTL_BUNDLE_WARN_SIZE_MB" });
    expect(error.hint).toContain("RUNCTL_BUNDLE_WARN_SIZE_MB");
  });

  it("names the variable of an unknown key and suggests the right one", async () => {
    const error = await loadError({ env: { RUNCTL_NATS_ULR: "nats://h" } });
    expect(error.message).toBe(
      "environment variable RUNCTL_NATS_ULR: nats.ulr: unknown key (did you mean nats.url?)",
    );
    expect(error.hint).toContain("RUNCTL_NATS_URL");
  });
});

describe("flags", () => {
  it("name the flag in errors", async () => {
    const error = await loadError({
      flags: { "bundle.warn_size_mb": "lots" },
      flagNames: { "bundle.warn_size_mb": "--warn-size" },
    });
    expect(error.message).toMatch(/^flag --warn-size: bundle\.warn_size_mb: /);
    expect(error.details).toMatchObject({ flag: "--warn-size" });
  });

  it("skip undefined values and read strings like env values", async () => {
    const { config, sources } = await load({
      flags: { "nats.url": undefined, "bundle.warn_size_mb": "50" },
    });
    expect(config.bundle.warn_size_mb).toBe(50);
    expect(sources.at(-1)).toEqual({ kind: "flags", keys: ["bundle.warn_size_mb"] });
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
