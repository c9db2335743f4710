/**
 * The RunPod emulator as a process:
 *
 *   node test-e2e/dist/runpod-emulator/main.js --port 0 [--api-key KEY] [--transition-ms 500]
 *     [--machines bare-host]
 *
 * `--machines bare-host` runs every running pod's start command on a bare host (see
 * ../runpod-machines.ts): runctl's bootstrap really runs, restarted when it ends, and the pod
 * stops itself with the `runpodctl` on its PATH. The default, `none`, runs nothing.
 *
 * Prints `runpod-emulator listening on http://127.0.0.1:PORT/graphql` on stderr once it accepts
 * requests, and stops on SIGTERM or SIGINT. Without --api-key it accepts the one default key
 * (rpa_RUNCTLEMULATOR0000000000000000). Faults are injected over HTTP under /__emulator/ (see
 * test-e2e/README.md).
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { MINIMAL_HOST_TOOLS } from "../bare-host.ts";
import { runpodBareHostMachines } from "../runpod-machines.ts";
import { DEFAULT_RUNPOD_API_KEY, startRunPodEmulator } from "./server.ts";

const Args = z.object({
  port: z.coerce.number().int().min(0).max(65_535).default(0),
  host: z.string().default("127.0.0.1"),
  "api-key": z.array(z.string().min(1)).default([DEFAULT_RUNPOD_API_KEY]),
  "transition-ms": z.coerce.number().int().min(0).max(600_000).default(500),
  machines: z.enum(["none", "bare-host"]).default("none"),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string", multiple: true },
      "transition-ms": { type: "string" },
      machines: { type: "string" },
    },
  });
  const parsed = Args.safeParse(values);
  if (!parsed.success) {
    process.stderr.write(`runpod-emulator: ${parsed.error.issues.map((i) => i.message).join("; ")}\n`);
    process.exit(2);
  }
  const args = parsed.data;
  // setpriv lets the agent tie training processes to its own life, as on a real image.
  const machines =
    args.machines === "bare-host"
      ? runpodBareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] })
      : undefined;
  const emulator = await startRunPodEmulator({
    port: args.port,
    host: args.host,
    apiKeys: args["api-key"],
    transitionMs: args["transition-ms"],
    ...(machines ? { machine: machines.hook } : {}),
  });
  process.stderr.write(`runpod-emulator listening on ${emulator.url}\n`);
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
  process.stderr.write(`runpod-emulator: ${(error as Error)?.message ?? error}\n`);
  process.exit(1);
});
