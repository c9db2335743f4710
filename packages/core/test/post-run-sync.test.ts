// PostPolicyRunSync's parts that need no store: S3 error bodies, the policy it accepts, and its
// state file (what a restarted agent trusts). Sends against S3 are in test-e2e/test/post-run-sync.test.ts.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  PostPolicyRunSync,
  type PresignedPost,
  parseS3ErrorBody,
  postSyncStateFile,
  RunSyncGapError,
} from "../src/mod.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runctl-post-sync-unit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const POLICY: PresignedPost = {
  url: "http://127.0.0.1:9/artifacts",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's placeholder, as createPresignedPost writes it
  fields: { key: "store/runs/r1/${filename}", Policy: "e30=", "X-Amz-Signature": "00" },
  keyPrefix: "store/runs/r1/",
  maxBytes: 1024,
  expiresAt: "2030-01-01T00:00:00.000Z",
};

describe("parseS3ErrorBody", () => {
  it("reads S3's error document, entities decoded", async () => {
    const expired =
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy expired.</Message><RequestId>7R2</RequestId><HostId>abc=</HostId></Error>';
    expect(await parseS3ErrorBody(expired)).toEqual({
      code: "AccessDenied",
      message: "Invalid according to Policy: Policy expired.",
    });
    const condition =
      "<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy Condition failed: [&quot;starts-with&quot;, &quot;$key&quot;, &quot;runs/r1/&quot;]</Message></Error>";
    expect((await parseS3ErrorBody(condition))?.message).toBe(
      'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "runs/r1/"]',
    );
  });

  it("anything else is not an S3 error", async () => {
    expect(await parseS3ErrorBody("")).toBeUndefined();
    expect(await parseS3ErrorBody("<html><body>502 Bad Gateway</body></html>")).toBeUndefined();
    expect(await parseS3ErrorBody("<Error><Message>no code</Message></Error>")).toBeUndefined();
    expect(await parseS3ErrorBody("not xml <<")).toBeUndefined();
  });
});

describe("PostPolicyRunSync without sending", () => {
  it("refuses a malformed policy, and a renewal for another prefix", () => {
    const stateFile = join(dir, "a", ".sync", "post-state.json");
    expect(() => new PostPolicyRunSync({ policy: { ...POLICY, url: "not a url" }, stateFile })).toThrow();
    const sync = new PostPolicyRunSync({ policy: POLICY, stateFile });
    expect(() => sync.renew({ ...POLICY, keyPrefix: "store/runs/r2/" })).toThrow(ConfigError);
    sync.renew({ ...POLICY, expiresAt: "2031-01-01T00:00:00.000Z" });
    expect(sync.expiresAt).toBe("2031-01-01T00:00:00.000Z");
    expect(sync.location).toBe("http://127.0.0.1:9/artifacts/store/runs/r1");
  });

  it("continues from its state file; one for another prefix, or unreadable, counts as nothing held", async () => {
    const runDir = join(dir, "b");
    const stateFile = postSyncStateFile(runDir);
    expect(stateFile).toBe(join(runDir, ".sync", "post-state.json"));
    const fresh = new PostPolicyRunSync({ policy: POLICY, stateFile });
    expect(await fresh.heldBytes()).toEqual({});
    await mkdir(join(runDir, ".sync"), { recursive: true });
    const held = { "metrics.jsonl": 4213, "output.log": 9 };
    await writeFile(stateFile, JSON.stringify({ version: 1, keyPrefix: POLICY.keyPrefix, held }));
    const restarted = new PostPolicyRunSync({ policy: POLICY, stateFile });
    expect(await restarted.heldBytes()).toEqual(held);
    // Past what the store holds is a gap, reported with the length to resend from (no request made).
    const gap = await restarted.append("output.log", 20, Buffer.from("x")).catch((e: unknown) => e);
    expect(gap).toBeInstanceOf(RunSyncGapError);
    expect((gap as RunSyncGapError).held).toBe(9);

    await writeFile(stateFile, JSON.stringify({ version: 1, keyPrefix: "store/runs/r0/", held }));
    expect(await new PostPolicyRunSync({ policy: POLICY, stateFile }).heldBytes()).toEqual({});
    await writeFile(stateFile, '{"version":1,"keyPrefix":"store/runs/r1/","held":{"m');
    expect(await new PostPolicyRunSync({ policy: POLICY, stateFile }).heldBytes()).toEqual({});
  });

  it("refuses a whole file over the policy's size before sending it", async () => {
    const sync = new PostPolicyRunSync({ policy: POLICY, stateFile: join(dir, "c", "state.json") });
    const error = await sync
      .replace("artifacts/model.pt", 4096, async () => new Uint8Array(4096))
      .catch((e: unknown) => e);
    expect(sync.isTransient(error)).toBe(false);
    expect((error as Error).message).toContain("at most 1024 bytes");
    expect((error as { code?: string }).code).toBe("sync_too_large");
  });
});
