// `runctl s3 …` as a user runs it (the built CLI in its own process) against the S3 emulator:
// sync both ways of a tree with thousands of files and one large multipart file, a kill -9
// in the middle of a multipart upload, wrong keys, and the housekeeping commands.
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runctl, runctlJson, startRunctl, type Workspace, workspace } from "../src/runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "../src/s3-emulator.ts";

const KEY = { accessKeyId: "AKIDCLI", secretAccessKey: "cli-secret" };
const BUCKET = "cli-bucket";
const MIB = 1024 * 1024;

let s3: S3Emulator;
let dataDir: string;
let ws: Workspace;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "runctl-s3-cli-"));
  s3 = await startS3Emulator({ dataDir, credentials: [KEY], buckets: [BUCKET] });
  ws = await workspace({
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    RUNCTL_S3_FORCE_PATH_STYLE: "true",
  });
});

afterAll(async () => {
  await s3?.stop();
  await rm(dataDir, { recursive: true, force: true });
  if (ws) await rm(ws.home, { recursive: true, force: true });
});

/** Distinct bytes per MiB, so a misplaced or missing part changes the hash. */
async function writePatterned(path: string, bytes: number): Promise<void> {
  const { open } = await import("node:fs/promises");
  const handle = await open(path, "w");
  const block = Buffer.alloc(MIB);
  try {
    for (let offset = 0; offset < bytes; offset += MIB) {
      randomFillSync(block);
      await handle.write(block, 0, Math.min(MIB, bytes - offset));
    }
  } finally {
    await handle.close();
  }
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** relative path → sha256 of every file under dir. */
async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else out.set(relative(dir, full).split(sep).join("/"), await sha256(full));
    }
  };
  await walk(dir);
  return out;
}

/** The success envelope's fields; a failure fails the test with the CLI's own message. */
function ok(r: {
  doc: { success: boolean } & Record<string, unknown>;
  stderr: string;
}): Record<string, unknown> {
  if (!r.doc.success) throw new Error(`runctl failed: ${JSON.stringify(r.doc)}\n${r.stderr}`);
  return r.doc;
}

function syncDoc(doc: Record<string, unknown>) {
  return doc.sync as {
    files: { sent: number; skipped: number; deleted: number };
    bytes: { sent: number };
    sent: string[];
    deleted: string[];
  };
}

describe("runctl s3 sync", () => {
  it("round-trips 2,000 files and a 200 MB file, then moves only what changed", async () => {
    const src = join(ws.home, "tree");
    for (let d = 0; d < 20; d++) {
      const dir = join(src, `dir-${d}`);
      await mkdir(dir, { recursive: true });
      await Promise.all(
        Array.from({ length: 100 }, (_, f) =>
          writeFile(join(dir, `f-${f}.txt`), `file ${d}/${f}\n`.repeat(1 + ((d * f) % 40))),
        ),
      );
    }
    await writePatterned(join(src, "model.bin"), 200 * MIB);
    const url = `s3://${BUCKET}/tree`;

    const up = await runctlJson(["s3", "sync", src, url, "--concurrency", "8"], ws);
    expect(up.code, up.stderr).toBe(0);
    expect(syncDoc(up.doc).files).toEqual({ sent: 2001, skipped: 0, deleted: 0 });
    expect(s3.store.head(BUCKET, "tree/model.bin")?.etag).toMatch(/-\d+"$/);

    const back = join(ws.home, "back");
    const down = await runctlJson(["s3", "sync", url, back], ws);
    expect(down.code, down.stderr).toBe(0);
    expect(syncDoc(down.doc).files.sent).toBe(2001);
    const original = await treeDigest(src);
    expect(await treeDigest(back)).toEqual(original);

    const again = await runctlJson(["s3", "sync", src, url], ws);
    expect(syncDoc(again.doc).files).toEqual({ sent: 0, skipped: 2001, deleted: 0 });
    const againDown = await runctlJson(["s3", "sync", url, back], ws);
    expect(syncDoc(againDown.doc).files).toEqual({ sent: 0, skipped: 2001, deleted: 0 });

    // Same size, different content: only a hash comparison can tell.
    await writeFile(join(src, "dir-3", "f-7.txt"), "FILE 3/7\n".repeat(1 + ((3 * 7) % 40)));
    await rm(join(src, "dir-5", "f-1.txt"));
    await rm(join(src, "dir-9", "f-2.txt"));
    const dry = await runctlJson(["s3", "sync", src, url, "--delete", "--dry-run"], ws);
    expect(syncDoc(dry.doc).sent).toEqual(["dir-3/f-7.txt"]);
    expect(syncDoc(dry.doc).deleted).toEqual(["dir-5/f-1.txt", "dir-9/f-2.txt"]);
    expect(s3.store.head(BUCKET, "tree/dir-5/f-1.txt")).toBeDefined();

    const changed = await runctlJson(["s3", "sync", src, url, "--delete"], ws);
    expect(syncDoc(changed.doc).sent).toEqual(["dir-3/f-7.txt"]);
    expect(syncDoc(changed.doc).deleted).toEqual(["dir-5/f-1.txt", "dir-9/f-2.txt"]);
    expect(s3.store.head(BUCKET, "tree/dir-5/f-1.txt")).toBeUndefined();
    expect(
      s3.store.list(BUCKET, { prefix: "tree/", delimiter: "", after: "", maxKeys: 5000 }).objects,
    ).toHaveLength(1999);

    const downChanged = await runctlJson(["s3", "sync", url, back, "--delete"], ws);
    expect(syncDoc(downChanged.doc).sent).toEqual(["dir-3/f-7.txt"]);
    expect(syncDoc(downChanged.doc).deleted).toEqual(["dir-5/f-1.txt", "dir-9/f-2.txt"]);
    expect(await treeDigest(back)).toEqual(await treeDigest(src));
  });

  it("include and exclude globs pick what is synced", async () => {
    const src = join(ws.home, "globs");
    await mkdir(join(src, "ckpt"), { recursive: true });
    await writeFile(join(src, "a.pt"), "a");
    await writeFile(join(src, "ckpt", "b.pt"), "b");
    await writeFile(join(src, "notes.txt"), "n");
    const r = await runctlJson(
      [
        "s3",
        "sync",
        src,
        `s3://${BUCKET}/globs`,
        "--include",
        "**/*.pt",
        "--exclude",
        "ckpt/**",
        "--progress",
      ],
      ws,
    );
    expect(syncDoc(r.doc).sent).toEqual(["a.pt"]);
    // --progress draws the bar on stderr even without a terminal; stdout stays one JSON document.
    expect(r.stderr).toMatch(/sync \[#+\] 1\/1 files .*\/s {2}ETA/);
    const quiet = await runctl(["s3", "sync", src, `s3://${BUCKET}/globs`, "--include", "**/*.pt"], ws);
    expect(quiet.stderr, "no bar when stderr is not a terminal").not.toContain("ETA");
    const typo = await runctlJson(
      ["s3", "sync", join(ws.home, "no-such-dir"), `s3://${BUCKET}/globs`, "--delete"],
      ws,
    );
    expect(typo.code, "a missing source is an error, not an empty tree to mirror").toBe(1);
    expect(s3.store.head(BUCKET, "globs/a.pt")).toBeDefined();
  });
});

describe("a killed upload", () => {
  const env = () => ({ ...ws.env, RUNCTL_S3_PART_SIZE_MB: "5" });
  const uploadArgs = (file: string, key: string) => [
    "s3",
    "upload",
    file,
    `s3://${BUCKET}/${key}`,
    "--concurrency",
    "2",
  ];

  /** Starts the upload and kills it with SIGKILL once the emulator holds two of its parts. */
  async function killMidUpload(file: string, key: string): Promise<void> {
    const first = startRunctl(uploadArgs(file, key), { ...ws, env: env() });
    let exited: { code: number | null; stderr: string } | undefined;
    void first.result.then((r) => {
      exited = r;
    });
    for (;;) {
      if (exited)
        throw new Error(`the upload ended before it could be killed (exit ${exited.code}): ${exited.stderr}`);
      const upload = s3.store.listUploads(BUCKET, key)[0];
      if (upload && s3.store.upload(BUCKET, key, upload.uploadId).parts.size >= 2) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    first.child.kill("SIGKILL");
    expect((await first.result).signal).toBe("SIGKILL");
    expect(s3.store.head(BUCKET, key), "nothing visible after the kill").toBeUndefined();
    expect(s3.store.listUploads(BUCKET, key)).toHaveLength(1);
  }

  it("kill -9 during a multipart upload: the object never shows half-written; the same command finishes the upload", async () => {
    const file = join(ws.home, "killed.bin");
    await writePatterned(file, 40 * MIB);
    const key = "killed/killed.bin";
    const glimpses: Array<number | undefined> = [];
    let watching = true;
    // Watches the key from the store's side the whole time, as another reader would.
    const watcher = (async () => {
      while (watching) {
        glimpses.push(s3.store.head(BUCKET, key)?.size);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await killMidUpload(file, key);
    const second = await runctlJson(uploadArgs(file, key), { ...ws, env: env() });
    expect(second.code, second.stderr).toBe(0);
    watching = false;
    await watcher;
    expect((ok(second).upload as { resumed: string[] }).resumed, "the parts already sent were kept").toEqual([
      "killed.bin",
    ]);
    expect(s3.store.listUploads(BUCKET, key), "no upload left behind").toHaveLength(0);
    const seen = glimpses.filter((g) => g !== undefined);
    expect(seen.length, "the watcher saw the finished object").toBeGreaterThan(0);
    expect(new Set(seen), "every glimpse was the whole object").toEqual(new Set([40 * MIB]));
    const out = join(ws.home, "killed-back.bin");
    const got = await runctl(["s3", "download", `s3://${BUCKET}/${key}`, out], ws);
    expect(got.code, got.stderr).toBe(0);
    expect(await sha256(out)).toBe(await sha256(file));
  });

  it("a file rewritten after the kill is sent afresh, even with its old mtime put back", async () => {
    const file = join(ws.home, "rewritten.bin");
    await writePatterned(file, 40 * MIB);
    const key = "killed/rewritten.bin";
    await killMidUpload(file, key);
    await writePatterned(file, 40 * MIB);
    // An mtime from before the upload began: only the parts' MD5s can tell the bytes changed.
    await utimes(file, new Date("2020-01-01T00:00:00Z"), new Date("2020-01-01T00:00:00Z"));
    const second = await runctlJson(uploadArgs(file, key), { ...ws, env: env() });
    expect(second.code, second.stderr).toBe(0);
    expect((ok(second).upload as { resumed: string[] }).resumed).toEqual([]);
    expect(s3.store.listUploads(BUCKET, key), "the stale upload was aborted").toHaveLength(0);
    const out = join(ws.home, "rewritten-back.bin");
    expect((await runctl(["s3", "download", `s3://${BUCKET}/${key}`, out], ws)).code).toBe(0);
    expect(await sha256(out)).toBe(await sha256(file));
  });
});

describe("errors and housekeeping", () => {
  it("a wrong secret key is exit 2 naming where the key came from", async () => {
    const r = await runctlJson(["s3", "ls", `s3://${BUCKET}/`], {
      ...ws,
      env: { ...ws.env, AWS_SECRET_ACCESS_KEY: "not-the-secret" },
    });
    expect(r.code).toBe(2);
    expect(r.doc.success).toBe(false);
    if (r.doc.success) return;
    expect(r.doc.error.code).toBe("auth");
    expect(r.doc.error.message).toMatch(/signature.*AKIDCLI from environment variables AWS_ACCESS_KEY_ID/);
    expect(r.doc.error.hint).toContain("AWS_SECRET_ACCESS_KEY");
    expect((r.doc.error as { details?: { s3Code?: string } }).details?.s3Code).toBe("SignatureDoesNotMatch");
  });

  it("names the profile when the key came from one", async () => {
    const profileWs = await workspace({
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_PROFILE: "training",
    });
    await mkdir(join(profileWs.home, ".aws"));
    await writeFile(
      join(profileWs.home, ".aws", "credentials"),
      `[training]\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = wrong\n`,
    );
    await writeFile(join(profileWs.home, ".aws", "config"), "[profile training]\nregion = us-east-1\n");
    const r = await runctlJson(["s3", "ls", `s3://${BUCKET}/`], profileWs);
    expect(r.code).toBe(2);
    if (r.doc.success) throw new Error("expected a failure");
    expect(r.doc.error.message).toContain('profile "training"');
    expect(r.doc.error.hint).toContain("aws configure --profile training");
    await rm(profileWs.home, { recursive: true, force: true });
  });

  it("a missing bucket is exit 2 and says so", async () => {
    const r = await runctlJson(["s3", "ls", "s3://no-such-bucket/"], ws);
    expect(r.code).toBe(2);
    if (r.doc.success) throw new Error("expected a failure");
    expect(r.doc.error.message).toContain('Bucket "no-such-bucket" does not exist');
  });

  it("ls, cleanup --keep-last-n, rm --recursive and presign --post", async () => {
    const dir = join(ws.home, "ckpts");
    await mkdir(join(dir, "checkpoint-500"), { recursive: true });
    for (const step of [100, 200, 300, 400]) await writeFile(join(dir, `step-${step}.pt`), `w${step}`);
    await writeFile(join(dir, "checkpoint-500", "model.safetensors"), "w500");
    await writeFile(join(dir, "config.json"), "{}");
    const url = `s3://${BUCKET}/ckpts/`;
    expect((await runctl(["s3", "sync", dir, url], ws)).code).toBe(0);

    const ls = await runctlJson(["s3", "ls", url], ws);
    expect((ok(ls) as { prefixes?: string[] }).prefixes).toEqual(["ckpts/checkpoint-500/"]);
    const human = await runctl(["s3", "ls", url], ws);
    expect(human.stdout).toMatch(/PRE\s+ckpts\/checkpoint-500\//);
    expect(human.stdout).toMatch(/4 B\s+ckpts\/step-100\.pt/);

    const refused = await runctl(["s3", "cleanup", url, "--keep-last-n", "2"], ws);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--yes");
    const dry = await runctlJson(["s3", "cleanup", url, "--keep-last-n", "2", "--dry-run"], ws);
    const plan = ok(dry).cleanup as { deleted: Array<{ name: string }>; kept: string[] };
    expect(plan.kept).toEqual(["checkpoint-500/", "step-400.pt"]);
    expect(plan.deleted.map((d) => d.name)).toEqual(["step-300.pt", "step-200.pt", "step-100.pt"]);
    expect(s3.store.head(BUCKET, "ckpts/step-100.pt")).toBeDefined();
    const done = await runctlJson(["s3", "cleanup", url, "--keep-last-n", "2", "--yes"], ws);
    expect(done.code).toBe(0);
    const left = await runctlJson(["s3", "ls", url, "--recursive"], ws);
    expect((ok(left).objects as Array<{ key: string }>).map((o) => o.key)).toEqual([
      "ckpts/checkpoint-500/model.safetensors",
      "ckpts/config.json",
      "ckpts/step-400.pt",
    ]);

    const post = await runctlJson(
      ["s3", "presign", `s3://${BUCKET}/runs/r1/`, "--post", "--max-bytes", "100"],
      ws,
    );
    const policy = ok(post).presign as { url: string; fields: Record<string, string>; keyPrefix: string };
    const send = async (key: string) => {
      const form = new FormData();
      for (const [k, v] of Object.entries(policy.fields)) form.append(k, v);
      form.set("key", key);
      form.append("file", new Blob(["metrics"]), "metrics.jsonl");
      return (await fetch(policy.url, { method: "POST", body: form })).status;
    };
    expect(await send("runs/r1/metrics.jsonl")).toBe(204);
    expect(await send("runs/r2/metrics.jsonl")).toBe(403);
    expect(s3.store.head(BUCKET, "runs/r2/metrics.jsonl")).toBeUndefined();

    const rmDry = await runctlJson(["s3", "rm", url, "--recursive", "--dry-run"], ws);
    expect((ok(rmDry).rm as { deleted: string[] }).deleted).toHaveLength(3);
    const rmAll = await runctlJson(["s3", "rm", url, "--recursive", "--yes"], ws);
    expect(rmAll.code).toBe(0);
    expect(
      s3.store.list(BUCKET, { prefix: "ckpts/", delimiter: "", after: "", maxKeys: 100 }).objects,
    ).toEqual([]);
    expect((await stat(dir)).isDirectory()).toBe(true);
  });
});
