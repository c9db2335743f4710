import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  ConfigError,
  FileArtifactStore,
  isRunctlError,
  type Provider,
  type ProviderDefinition,
  ProviderError,
  ProviderRegistry,
  UserError,
} from "../src/mod.ts";

const capabilities = { spot: false, stopStart: false, gpuTypes: [], regions: [], interruptions: false };

function definition(name: string, create?: ProviderDefinition<{ zone?: string }>["create"]) {
  return {
    name,
    description: `${name} provider`,
    capabilities,
    configSchema: z.object({ zone: z.string().optional() }).strict(),
    create: create ?? (async () => ({}) as Provider),
  } satisfies ProviderDefinition<{ zone?: string }>;
}

describe("ProviderRegistry", () => {
  it("lists definitions sorted with the plugin that registered them", () => {
    const r = new ProviderRegistry();
    r.register(definition("zeta"), { plugin: "runctl-provider-zeta" });
    r.register(definition("alpha"));
    expect(r.list().map((p) => [p.name, p.plugin])).toEqual([
      ["alpha", undefined],
      ["zeta", "runctl-provider-zeta"],
    ]);
  });

  it("refuses bad names, bad capabilities and duplicates", () => {
    const r = new ProviderRegistry();
    expect(() => r.register(definition("Bad Name"))).toThrow(ProviderError);
    expect(() => r.register({ ...definition("ok"), capabilities: { spot: "yes" } as never })).toThrow(
      /capabilities of provider "ok".*spot/,
    );
    r.register(definition("dup"), { plugin: "a" });
    expect(() => r.register(definition("dup"), { plugin: "b" })).toThrow(
      /registered twice \(from b\) and by a/,
    );
  });

  it("names the install command for an unknown provider", () => {
    const r = new ProviderRegistry();
    r.register(definition("aws"));
    try {
      r.get("gcp");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).hint).toContain("runctl plugins install provider-gcp");
      expect((error as UserError).hint).toContain("aws");
    }
  });

  it("validates a provider's config section before creating it", async () => {
    const r = new ProviderRegistry();
    let created = 0;
    r.register(
      definition("p", async () => {
        created++;
        return {} as Provider;
      }),
    );
    await expect(r.create("p", { zoen: "x" }, { env: {}, dataDir: "/tmp" })).rejects.toThrow(ConfigError);
    await expect(r.create("p", { zoen: "x" }, { env: {}, dataDir: "/tmp" })).rejects.toThrow(
      /p\] configuration: zoen: unknown key/,
    );
    expect(created).toBe(0);
    await r.create("p", { zone: "a" }, { env: {}, dataDir: "/tmp" });
    expect(created).toBe(1);
  });

  it("turns errors of plugins with their own copy of core into ours, by shape", async () => {
    const r = new ProviderRegistry();
    r.register(
      definition(
        "p",
        async () =>
          ({
            name: "p",
            capabilities,
            status: async () => {
              throw Object.assign(new Error("no such box"), {
                code: "not_found",
                kind: "user",
                hint: "list them",
              });
            },
            list: async () => [{ id: 1 }],
          }) as unknown as Provider,
      ),
    );
    const p = await r.create("p", {}, { env: {}, dataDir: "/tmp" });
    const err = await p.status("x").catch((e: unknown) => e);
    expect(isRunctlError(err)).toBe(true);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe("not_found");
    expect((err as UserError).hint).toBe("list them");
    await expect(p.list()).rejects.toThrow(/answer of p.list\(\)/);
  });
});

describe("artifact stores", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "runctl-store-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips files through a file:// store opened by URL", async () => {
    const registry = new ProviderRegistry();
    const store = await registry.openArtifactStore(pathToFileURL(join(dir, "store")).href);
    expect(store).toBeInstanceOf(FileArtifactStore);
    const src = join(dir, "src.bin");
    await writeFile(src, "hello");
    const put = await store.putFile("bundles/abc.tar.gz", src);
    expect(put).toMatchObject({ key: "bundles/abc.tar.gz", size: 5 });
    expect((await store.list("bundles/")).map((o) => o.key)).toEqual(["bundles/abc.tar.gz"]);
    await store.getFile("bundles/abc.tar.gz", join(dir, "out.bin"));
    expect(await readFile(join(dir, "out.bin"), "utf8")).toBe("hello");
    expect(await store.head("missing")).toBeNull();
    await store.delete("bundles/abc.tar.gz");
    expect(await store.list()).toEqual([]);
  });

  it("refuses keys that escape the store and names unknown schemes", async () => {
    const store = new FileArtifactStore(join(dir, "store2"));
    for (const key of ["../x", "/etc/passwd", "a//b", "a/../../b", ""]) {
      await expect(store.head(key)).rejects.toMatchObject({ code: "artifact_bad_key" });
    }
    await expect(store.getFile("nope", join(dir, "x"))).rejects.toMatchObject({ code: "artifact_not_found" });
    await expect(new ProviderRegistry().openArtifactStore("gs://bucket/x")).rejects.toMatchObject({
      code: "artifact_unknown_scheme",
    });
  });
});
