/**
 * The EC2 emulator as a process:
 *
 *   node test-e2e/dist/ec2-emulator/main.js --port 0 [--credentials creds.json] [--transition-ms 500]
 *     [--machines bare-host]
 *
 * `--machines bare-host` boots every running instance's user-data on a bare host (see
 * ../bare-host.ts): the bootstrap really runs, and its `shutdown -h now` stops or terminates the
 * instance. The default, `none`, runs nothing.
 *
 * Prints `ec2-emulator listening on http://127.0.0.1:PORT` on stderr once it accepts requests,
 * and stops on SIGTERM or SIGINT. Without --credentials it accepts the one default key
 * (AKIDRUNCTLEMULATOR / runctl-emulator-secret), the S3 emulator's. Faults are injected over
 * HTTP under /__emulator/ (see test-e2e/README.md).
 *
 * IAM answers on the same port (requests signed for service `iam`): point AWS_ENDPOINT_URL_IAM
 * at the same URL and `runctl aws setup` creates its role and instance profile here; the state
 * is at GET /__emulator/iam, the calls at GET /__emulator/iam/calls.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import { MINIMAL_HOST_TOOLS } from "../bare-host.ts";
import { bareHostMachines } from "../ec2-machines.ts";
import { DEFAULT_CREDENTIAL, EmulatorCredentials } from "../s3-emulator/credentials.ts";
import { startEc2Emulator } from "./server.ts";

const Args = z.object({
  port: z.coerce.number().int().min(0).max(65_535).default(0),
  host: z.string().default("127.0.0.1"),
  credentials: z.string().optional(),
  "transition-ms": z.coerce.number().int().min(0).max(600_000).default(500),
  machines: z.enum(["none", "bare-host"]).default("none"),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      credentials: { type: "string" },
      "transition-ms": { type: "string" },
      machines: { type: "string" },
    },
  });
  const parsed = Args.safeParse(values);
  if (!parsed.success) {
    process.stderr.write(`ec2-emulator: ${parsed.error.issues.map((i) => i.message).join("; ")}\n`);
    process.exit(2);
  }
  const args = parsed.data;
  const credentials = args.credentials
    ? EmulatorCredentials.parse(JSON.parse(await readFile(args.credentials, "utf8")))
    : [DEFAULT_CREDENTIAL];
  // setpriv lets the agent tie training processes to its own life, as on a real image.
  const machines =
    args.machines === "bare-host"
      ? bareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] })
      : undefined;
  const emulator = await startEc2Emulator({
    port: args.port,
    host: args.host,
    credentials,
    transitionMs: args["transition-ms"],
    ...(machines ? { machine: machines.hook } : {}),
  });
  process.stderr.write(`ec2-emulator listening on ${emulator.endpoint}\n`);
  const stop = () => {
    void emulator
      .stop()
      .then(() => machines?.close())
      .then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`ec2-emulator: ${(error as Error)?.message ?? error}\n`);
  process.exit(1);
});
