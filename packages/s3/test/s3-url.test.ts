import { ProviderRegistry } from "@runctl/core";
import { describe, expect, it } from "vitest";
import {
  directoryPrefix,
  keyUnder,
  parseS3Url,
  pathFilter,
  S3ArtifactStore,
  s3ArtifactStoreFactory,
  s3SettingsFromConfig,
} from "../src/mod.ts";

describe("s3:// URLs", () => {
  it("splits bucket and prefix", () => {
    expect(parseS3Url("s3://my-bucket")).toEqual({ bucket: "my-bucket", prefix: "" });
    expect(parseS3Url("s3://my-bucket/a/b/")).toEqual({ bucket: "my-bucket", prefix: "a/b/" });
    expect(() => parseS3Url("s3://Bad_Bucket/x")).toThrow(/Not an S3 URL/);
    expect(() => parseS3Url("/local/path")).toThrow(/Not an S3 URL/);
  });

  it("joins keys with exactly one slash", () => {
    expect(keyUnder("", "a")).toBe("a");
    expect(keyUnder("p", "a")).toBe("p/a");
    expect(keyUnder("p/", "a")).toBe("p/a");
    expect(directoryPrefix("p")).toBe("p/");
    expect(directoryPrefix("")).toBe("");
  });
});

describe("--include / --exclude", () => {
  it("includes everything by default, dotfiles too, and excludes win", () => {
    const f = pathFilter([], ["**/*.tmp", "cache/**"]);
    expect(f(".env")).toBe(true);
    expect(f("a/b.tmp")).toBe(false);
    expect(f("cache/x/y")).toBe(false);
    const g = pathFilter(["*.pt", "ckpt/**"], ["ckpt/old/**"]);
    expect(g("model.pt")).toBe(true);
    expect(g("sub/model.pt")).toBe(false);
    expect(g("ckpt/new/a")).toBe(true);
    expect(g("ckpt/old/a")).toBe(false);
  });
});

describe("settings from [s3]", () => {
  const config = {
    force_path_style: true,
    part_size_mb: 8,
    concurrency: 3,
    endpoint: "http://127.0.0.1:9000",
    profile: "p",
  };
  it("uses the config when the standard variables are unset", () => {
    expect(s3SettingsFromConfig(config, {})).toEqual({
      forcePathStyle: true,
      partSizeBytes: 8 * 1024 * 1024,
      concurrency: 3,
      endpoint: "http://127.0.0.1:9000",
      profile: "p",
    });
  });
  it("leaves endpoint and profile to AWS_ENDPOINT_URL_S3 and AWS_PROFILE when they are set", () => {
    const s = s3SettingsFromConfig(config, { AWS_ENDPOINT_URL_S3: "http://other", AWS_PROFILE: "q" });
    expect(s.endpoint).toBeUndefined();
    expect(s.profile).toBeUndefined();
  });
});

describe("the s3:// store factory", () => {
  it("opens s3:// URLs through a provider registry", async () => {
    const registry = new ProviderRegistry();
    registry.registerArtifactStore(
      "s3:",
      s3ArtifactStoreFactory({ forcePathStyle: true, partSizeBytes: 5 << 20, concurrency: 2 }),
    );
    const store = await registry.openArtifactStore("s3://my-bucket/runs");
    expect(store).toBeInstanceOf(S3ArtifactStore);
    expect(store.url).toBe("s3://my-bucket/runs/");
  });
});
