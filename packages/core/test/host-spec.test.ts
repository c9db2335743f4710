import { describe, expect, it } from "vitest";
import { HostInboxMessage, HostInboxReply, HostSpec, hostStateKey, hostStorePrefix } from "../src/mod.ts";

const post = {
  url: "https://bucket.s3.example/",
  fields: { policy: "p", "x-amz-signature": "s" },
  keyPrefix: "store/hosts/aws-1/",
  maxBytes: 1024,
  expiresAt: "2026-12-04T00:00:00.000Z",
};
const run = {
  spec: {
    v: 1,
    runId: "20261203-100000-aaaaaa",
    command: ["python3", "train.py"],
    cwd: ".",
    runsDir: "runs",
    checkpointDir: "checkpoints",
  },
};

describe("HostSpec", () => {
  it("parses a machine with no run: it waits on its inbox with its own grants, idle timer from boot", () => {
    const spec = HostSpec.parse({
      v: 1,
      hostId: "aws-20261203-100000-aaaaaa",
      provider: "aws",
      nats: { url: "nats://127.0.0.1:4222", creds: "-----BEGIN NATS USER JWT-----" },
      store: { post },
      idle: { minutes: 30, action: "terminate" },
    });
    expect(spec.run).toBeUndefined();
    expect(spec.inbox).toBe(true);
    expect(spec.nats?.prefix).toBe("runctl");
    expect(spec.store?.post.keyPrefix).toBe("store/hosts/aws-1/");
  });

  it("still parses a machine launched for a run, without host grants", () => {
    const spec = HostSpec.parse({ v: 1, hostId: "aws-1", provider: "aws", run });
    expect(spec.run?.spec.runId).toBe(run.spec.runId);
    expect(spec.nats).toBeUndefined();
  });

  it("refuses what it does not know (a typo in a grant is not ignored)", () => {
    expect(HostSpec.safeParse({ v: 1, hostId: "aws-1", provider: "aws", stores: { post } }).success).toBe(
      false,
    );
    expect(HostSpec.safeParse({ v: 1, hostId: "../x", provider: "aws" }).success).toBe(false);
  });
});

describe("the inbox", () => {
  it("takes a run with fresh host grants, and a reply is accepted or refused with a code", () => {
    const message = HostInboxMessage.parse({ v: 1, run, host: { store: { post } } });
    expect(message.host?.store?.post.keyPrefix).toBe(post.keyPrefix);
    expect(HostInboxReply.parse({ accepted: true, run: "r", queued: 0 })).toMatchObject({ accepted: true });
    expect(
      HostInboxReply.parse({ accepted: false, error: { code: "host_stopping", message: "shutting down" } }),
    ).toMatchObject({ accepted: false, error: { code: "host_stopping" } });
    expect(HostInboxReply.safeParse({ accepted: false }).success).toBe(false);
  });

  it("keeps a machine's record under its own prefix", () => {
    expect(hostStateKey("aws-1")).toBe("hosts/aws-1/state.json");
    expect(hostStateKey("aws-1").startsWith(hostStorePrefix("aws-1"))).toBe(true);
  });
});
