/**
 * The ArtifactStore contract: what run sync, code bundles and checkpoints rely on, as named
 * async cases any store (`file://`, `s3://`, a plugin's) runs against itself. Runner-agnostic,
 * like the provider suite:
 *
 * ```ts
 * import { artifactStoreContractCases } from "@runctl/core/testing";
 * for (const c of artifactStoreContractCases(() => openMyStore())) it(c.name, c.run);
 * ```
 *
 * Each case writes under its own random prefix, so cases may share one store and run in any order.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { z } from "zod";
import { type ArtifactStore, StoredObject } from "../artifacts.ts";
import { isRunctlError } from "../errors.ts";
import { type ContractCase, type ContractResult, runContractCases } from "./cases.ts";

export interface ArtifactStoreContractOptions {
  /**
   * Objects written to prove listings are complete past one page. Default 1,001 (S3 pages at
   * 1,000); a store whose page size can be lowered may use fewer.
   */
  listingSize?: number;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

function hasCode(code: string) {
  return (error: unknown): boolean => {
    assert.ok(isRunctlError(error), `expected a runctl error with code ${code}, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

export function artifactStoreContractCases(
  makeStore: () => Promise<ArtifactStore>,
  options: ArtifactStoreContractOptions = {},
): ContractCase[] {
  const listingSize = options.listingSize ?? 1001;

  const withStore =
    (body: (store: ArtifactStore, prefix: string, scratch: string) => Promise<void>) =>
    async (): Promise<void> => {
      const store = await makeStore();
      const prefix = `contract-${randomBytes(6).toString("hex")}/`;
      const scratch = await mkdtemp(join(tmpdir(), "runctl-store-contract-"));
      try {
        await body(store, prefix, scratch);
      } finally {
        await rm(scratch, { recursive: true, force: true });
        for (const o of await store.list(prefix).catch(() => []))
          await store.delete(o.key).catch(() => undefined);
      }
    };

  return [
    {
      name: "putFile, then getFile, getStream and head agree on the bytes and size",
      run: withStore(async (store, prefix, scratch) => {
        const bytes = randomBytes(100_000);
        const source = join(scratch, "source.bin");
        await writeFile(source, bytes);
        const stored = StoredObject.parse(await store.putFile(`${prefix}a/b.bin`, source));
        assert.equal(stored.key, `${prefix}a/b.bin`);
        assert.equal(stored.size, bytes.length);
        const dest = join(scratch, "out", "copy.bin");
        await store.getFile(`${prefix}a/b.bin`, dest);
        assert.ok((await readFile(dest)).equals(bytes), "getFile returns the bytes put");
        assert.ok((await collect(await store.getStream(`${prefix}a/b.bin`))).equals(bytes), "getStream too");
        const head = StoredObject.parse(await store.head(`${prefix}a/b.bin`));
        assert.equal(head.size, bytes.length);
        assert.ok(!Number.isNaN(Date.parse(head.modified)), "modified is an ISO date");
      }),
    },
    {
      name: "putStream stores a stream, an empty one included",
      run: withStore(async (store, prefix) => {
        const parts = [randomBytes(10_000), randomBytes(1), randomBytes(70_000)];
        const stored = await store.putStream(`${prefix}s.bin`, Readable.from(parts));
        assert.equal(stored.size, 80_001);
        assert.ok((await collect(await store.getStream(`${prefix}s.bin`))).equals(Buffer.concat(parts)));
        const empty = await store.putStream(`${prefix}empty`, Readable.from([]));
        assert.equal(empty.size, 0);
        assert.equal((await collect(await store.getStream(`${prefix}empty`))).length, 0);
      }),
    },
    {
      name: "a missing key: head is null, reads fail with artifact_not_found",
      run: withStore(async (store, prefix, scratch) => {
        assert.equal(await store.head(`${prefix}missing`), null);
        await assert.rejects(store.getStream(`${prefix}missing`), hasCode("artifact_not_found"));
        await assert.rejects(
          store.getFile(`${prefix}missing`, join(scratch, "x")),
          hasCode("artifact_not_found"),
        );
      }),
    },
    {
      name: "a put replaces an existing object whole",
      run: withStore(async (store, prefix) => {
        await store.putStream(`${prefix}k`, Readable.from([Buffer.from("a much longer first version")]));
        await store.putStream(`${prefix}k`, Readable.from([Buffer.from("v2")]));
        assert.equal((await collect(await store.getStream(`${prefix}k`))).toString(), "v2");
        assert.equal((await store.head(`${prefix}k`))?.size, 2);
      }),
    },
    {
      name: "create-only writes (ifNoneMatch '*') refuse a taken key with artifact_exists and leave it as it was",
      run: withStore(async (store, prefix, scratch) => {
        await store.putStream(`${prefix}once`, Readable.from([Buffer.from("first")]), { ifNoneMatch: "*" });
        await assert.rejects(
          store.putStream(`${prefix}once`, Readable.from([Buffer.from("second")]), { ifNoneMatch: "*" }),
          hasCode("artifact_exists"),
        );
        const file = join(scratch, "third");
        await writeFile(file, "third");
        await assert.rejects(
          store.putFile(`${prefix}once`, file, { ifNoneMatch: "*" }),
          hasCode("artifact_exists"),
        );
        assert.equal((await collect(await store.getStream(`${prefix}once`))).toString(), "first");
        const results = await Promise.allSettled(
          ["x", "y", "z"].map((v) =>
            store.putStream(`${prefix}race`, Readable.from([Buffer.from(v)]), { ifNoneMatch: "*" }),
          ),
        );
        assert.equal(
          results.filter((r) => r.status === "fulfilled").length,
          1,
          "exactly one racing writer wins",
        );
      }),
    },
    {
      name: "list returns every object under a string prefix, sorted by key, with sizes",
      run: withStore(async (store, prefix) => {
        for (const key of ["a/2", "a/1", "ab/3", "b/1"]) {
          await store.putStream(`${prefix}${key}`, Readable.from([Buffer.from(key)]));
        }
        const under = await store.list(`${prefix}a/`);
        z.array(StoredObject).parse(under);
        assert.deepEqual(
          under.map((o) => o.key),
          [`${prefix}a/1`, `${prefix}a/2`],
        );
        assert.deepEqual(
          (await store.list(`${prefix}a`)).map((o) => o.key),
          [`${prefix}a/1`, `${prefix}a/2`, `${prefix}ab/3`],
          "a prefix is a string prefix, not a directory",
        );
        assert.deepEqual(
          (await store.list(prefix)).map((o) => o.size),
          [3, 3, 4, 3],
        );
        assert.deepEqual(await store.list(`${prefix}nothing/`), []);
      }),
    },
    {
      name: `list is complete past one page (${listingSize} objects)`,
      run: withStore(async (store, prefix) => {
        const keys = Array.from(
          { length: listingSize },
          (_, i) => `${prefix}many/${String(i).padStart(5, "0")}`,
        );
        let next = 0;
        const worker = async () => {
          while (next < keys.length) {
            const key = keys[next++] as string;
            await store.putStream(key, Readable.from([Buffer.from("x")]));
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        assert.deepEqual(
          (await store.list(`${prefix}many/`)).map((o) => o.key),
          keys,
        );
      }),
    },
    {
      name: "delete removes an object and deleting a missing key is not an error",
      run: withStore(async (store, prefix) => {
        await store.putStream(`${prefix}gone`, Readable.from([Buffer.from("x")]));
        await store.delete(`${prefix}gone`);
        assert.equal(await store.head(`${prefix}gone`), null);
        assert.deepEqual(await store.list(`${prefix}gone`), []);
        await store.delete(`${prefix}gone`);
      }),
    },
    {
      name: "readers never see a partial object while a put is in flight",
      run: withStore(async (store, prefix) => {
        const body = new PassThrough();
        const put = store.putStream(`${prefix}slow`, body);
        body.write(randomBytes(64 * 1024));
        // Let the store consume what it has been given, without finishing the stream.
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
        assert.equal(await store.head(`${prefix}slow`), null, "no object before the put completes");
        assert.ok(!(await store.list(prefix)).some((o) => o.key === `${prefix}slow`), "nor in a listing");
        body.end(randomBytes(1024));
        await put;
        assert.equal((await store.head(`${prefix}slow`))?.size, 65 * 1024);
      }),
    },
    {
      name: "keys that escape (.., a leading /, empty segments) are refused with artifact_bad_key",
      run: withStore(async (store) => {
        for (const key of ["../x", "/abs", "a//b", "a/../b", ""]) {
          await assert.rejects(
            store.putStream(key, Readable.from([Buffer.from("x")])),
            hasCode("artifact_bad_key"),
            key,
          );
          await assert.rejects(store.getStream(key), hasCode("artifact_bad_key"), key);
        }
      }),
    },
    {
      name: "presigned URLs, where the store offers them, read and write without credentials",
      run: withStore(async (store, prefix) => {
        if (store.presignGet) {
          await store.putStream(`${prefix}p`, Readable.from([Buffer.from("presigned")]));
          const res = await fetch(await store.presignGet(`${prefix}p`, { expiresInSeconds: 60 }));
          assert.equal(res.status, 200);
          assert.equal(await res.text(), "presigned");
        }
        if (store.presignPut) {
          const url = await store.presignPut(`${prefix}q`, { expiresInSeconds: 60 });
          const res = await fetch(url, { method: "PUT", body: "put" });
          assert.equal(res.status, 200);
          assert.equal((await store.head(`${prefix}q`))?.size, 3);
        }
        if (store.presignPost) {
          const post = await store.presignPost(`${prefix}run/`, { expiresInSeconds: 60, maxBytes: 1024 });
          const send = async (key: string) => {
            const form = new FormData();
            for (const [k, v] of Object.entries(post.fields)) form.append(k, v);
            form.set("key", key);
            form.append("file", new Blob(["posted"]), "f");
            return (await fetch(post.url, { method: "POST", body: form })).status;
          };
          // Form keys are object keys as the endpoint sees them: `keyPrefix` includes the store's root.
          assert.ok(post.keyPrefix.endsWith(`${prefix}run/`), "keyPrefix ends with the prefix asked for");
          assert.ok(
            (await send(`${post.keyPrefix}metrics.jsonl`)) < 300,
            "a key under the prefix is accepted",
          );
          assert.equal((await store.head(`${prefix}run/metrics.jsonl`))?.size, 6);
          const outside = `${post.keyPrefix.slice(0, -"run/".length)}other/x`;
          assert.equal(await send(outside), 403, "a key outside the prefix is refused");
        }
      }),
    },
  ];
}

/** Runs every case and reports, for a plugin's own script. */
export function runArtifactStoreContract(
  makeStore: () => Promise<ArtifactStore>,
  options: ArtifactStoreContractOptions = {},
): Promise<ContractResult[]> {
  return runContractCases(artifactStoreContractCases(makeStore, options));
}
