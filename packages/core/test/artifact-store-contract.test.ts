// The ArtifactStore contract against the file store, and against deliberately broken
// variants of it to prove the suite catches each violation.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArtifactStore, FileArtifactStore } from "../src/mod.ts";
import { artifactStoreContractCases, runArtifactStoreContract } from "../src/testing/mod.ts";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "runctl-file-store-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const make = async (): Promise<ArtifactStore> => new FileArtifactStore(root);

describe("ArtifactStore contract: FileArtifactStore", () => {
  for (const c of artifactStoreContractCases(make)) it(c.name, c.run);
});

describe("the ArtifactStore contract fails stores that break it", () => {
  const failing = async (patch: (s: FileArtifactStore) => Partial<ArtifactStore>) => {
    const results = await runArtifactStoreContract(
      async () => {
        const store = new FileArtifactStore(root);
        // Methods stay bound to the real store; the patch replaces one behaviour.
        const bound: ArtifactStore = {
          url: store.url,
          putFile: store.putFile.bind(store),
          putStream: store.putStream.bind(store),
          getFile: store.getFile.bind(store),
          getStream: store.getStream.bind(store),
          head: store.head.bind(store),
          list: store.list.bind(store),
          delete: store.delete.bind(store),
        };
        return { ...bound, ...patch(store) };
      },
      { listingSize: 20 },
    );
    return results.filter((r) => !r.ok).map((r) => r.name);
  };

  it("a listing that treats the prefix as a directory", async () => {
    const names = await failing((s) => ({
      list: (prefix = "") => s.list(prefix.endsWith("/") ? prefix : `${prefix}/`),
    }));
    expect(names).toEqual(["list returns every object under a string prefix, sorted by key, with sizes"]);
  });

  it("create-only writes that overwrite", async () => {
    const names = await failing((s) => ({
      putStream: (key, body) => s.putStream(key, body),
      putFile: (key, path) => s.putFile(key, path),
    }));
    expect(names).toEqual([
      "create-only writes (ifNoneMatch '*') refuse a taken key with artifact_exists and leave it as it was",
    ]);
  });
});
