import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  defaultConfig,
  envNameToKeyPath,
  getConfigValue,
  locateKey,
  parseConfigValue,
  redactConfig,
  redactUrlCredentials,
} from "../src/config/mod.ts";
import { UserError } from "../src/errors.ts";

describe("getConfigValue", () => {
  const config = { ...defaultConfig(), aws: { region: "eu-west-1" } };

  it("reads keys and sections, and undefined for a known unset key", () => {
    expect(getConfigValue(config, "nats.prefix")).toBe("runctl");
    expect(getConfigValue(config, "bundle")).toEqual({ exclude: [], warn_size_mb: 100 });
    expect(getConfigValue(config, "nats.url")).toBeUndefined();
    expect(getConfigValue(config, "aws.region")).toBe("eu-west-1");
    const aws = z.strictObject({ region: z.string(), zone: z.string().optional() });
    expect(getConfigValue(config, "aws.zone", { aws })).toBeUndefined();
  });

  it("throws config_unknown_key with a suggestion", () => {
    let error: unknown;
    try {
      getConfigValue(config, "nats.prefx");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).code).toBe("config_unknown_key");
    expect((error as UserError).message).toContain("did you mean nats.prefix?");
    expect((error as UserError).hint).toContain("runctl config get nats.prefix");
    expect(() => getConfigValue(config, "nope.key")).toThrow(UserError);
  });
});

describe("redactConfig", () => {
  it("hides nats secrets and secret-looking provider keys, leaving the input intact", () => {
    const config = {
      ...defaultConfig(),
      nats: {
        ...defaultConfig().nats,
        token: "t0k",
        password: "pw",
        user: "me",
        creds: "/c.creds",
        account_seed: "SAEXAMPLE",
        account_seed_file: "/a.nk",
      },
      runpod: {
        api_key: "k",
        apiToken: "x",
        nested: { client_secret: "s" },
        region: "eu",
        api_url: "http://h/graphql",
      },
    };
    const shown = redactConfig(config);
    expect(shown.nats).toMatchObject({
      token: "***",
      password: "***",
      user: "me",
      creds: "/c.creds",
      account_seed: "***",
      account_seed_file: "/a.nk",
    });
    expect(shown.runpod).toEqual({
      api_key: "***",
      apiToken: "***",
      nested: { client_secret: "***" },
      region: "eu",
      api_url: "http://h/graphql",
    });
    expect(config.nats.token).toBe("t0k");
    expect(redactConfig(defaultConfig()).nats).not.toHaveProperty("token");
  });

  it("hides the password or token in NATS URLs, in a list of URLs too", () => {
    const url = "nats://alice:s3cret@a:4222, tls://t0ken@b:4222,nats://c:4222";
    const shown = redactConfig({ ...defaultConfig(), nats: { ...defaultConfig().nats, url } });
    expect(shown.nats.url).toBe("nats://alice:***@a:4222, tls://***@b:4222,nats://c:4222");
    expect(redactUrlCredentials("nats://h:4222")).toBe("nats://h:4222");
  });
});

describe("env mapping and values", () => {
  const known = new Set(["nats", "bundle", "aws"]);
  it("maps names to key paths", () => {
    expect(envNameToKeyPath("RUNCTL_NATS_URL", known)).toEqual(["nats", "url"]);
    expect(envNameToKeyPath("RUNCTL_BUNDLE_WARN_SIZE_MB", known)).toEqual(["bundle", "warn_size_mb"]);
    expect(envNameToKeyPath("RUNCTL_AWS__SPOT__MAX_PRICE", known)).toEqual(["aws", "spot", "max_price"]);
    expect(envNameToKeyPath("RUNCTL_AWS_SPOT__MAX_PRICE", known)).toEqual(["aws", "spot", "max_price"]);
    expect(envNameToKeyPath("RUNCTL_RUN_ID", new Set(["run"]))).toBeUndefined();
    expect(envNameToKeyPath("RUNCTL_GCP_ZONE", known)).toBeUndefined();
    expect(envNameToKeyPath("RUNCTL_NATS", known)).toBeUndefined();
    expect(() => envNameToKeyPath("RUNCTL_NATS__", known)).toThrow(/RUNCTL_NATS__/);
  });

  it("reads TOML values and falls back to text", () => {
    expect(parseConfigValue("42")).toBe(42);
    expect(parseConfigValue("true")).toBe(true);
    expect(parseConfigValue('["a", "b"]')).toEqual(["a", "b"]);
    expect(parseConfigValue('"quoted"')).toBe("quoted");
    expect(parseConfigValue("nats://h:4222")).toBe("nats://h:4222");
    expect(parseConfigValue("2024-01-01")).toBe("2024-01-01");
    expect(parseConfigValue("1\nother = 2")).toBe("1\nother = 2");
  });
});

describe("locateKey", () => {
  const source = [
    "# top", //                                 1
    'title = "x" # not a table', //             2
    "[nats] # comment", //                       3
    "url = 'nats://h'", //                       4
    'multi = """', //                            5
    "fake = 1", //                               6 (inside a string)
    '"""', //                                    7
    "list = [", //                               8
    '  "a", # [fake]', //                        9
    "]", //                                     10
    '[ "aws" . spot ]', //                      11
    '"max.price" = 1', //                       12
    "[deep]", //                                13
    "a.b.c = { d = 1 }", //                     14
    "[[jobs]]", //                              15
    "name = 'j'", //                            16
  ].join("\n");

  it("finds headers, keys, quoted and dotted keys", () => {
    expect(locateKey(source, ["title"])).toBe(2);
    expect(locateKey(source, ["nats"])).toBe(3);
    expect(locateKey(source, ["nats", "url"])).toBe(4);
    expect(locateKey(source, ["nats", "list", 0])).toBe(8);
    expect(locateKey(source, ["aws", "spot"])).toBe(11);
    expect(locateKey(source, ["aws", "spot", "max.price"])).toBe(12);
    expect(locateKey(source, ["deep", "a", "b", "c"])).toBe(14);
    expect(locateKey(source, ["jobs", 0, "name"])).toBe(16);
  });

  it("skips multi-line values and falls back to the nearest definition", () => {
    expect(locateKey(source, ["nats", "fake"])).toBe(3);
    expect(locateKey(source, ["fake"])).toBeUndefined();
    expect(locateKey(source, ["aws"])).toBe(11);
    expect(locateKey(source, ["deep", "a", "b", "c", "d"])).toBe(14);
    expect(locateKey(source, ["aws", "region"])).toBe(11);
  });
});
