/**
 * `node agent.mjs host <host.json>`: the agent as a bootstrap starts it on a
 * machine runctl launched. Exits 0 once the machine went idle and was told to
 * shut down, or when it was stopped by a signal (a restart policy must not
 * start it again); any other exit is a crash the restart policy answers.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { HostSpec, PostPolicyRunSync, parseAt, postSyncStateFile, toRunctlError } from "@runctl/core";
import { HostAgent } from "./host-agent.ts";

export async function hostMain(file: string | undefined): Promise<number> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} runctl agent: ${line}\n`);
  let spec: HostSpec;
  try {
    if (file === undefined) throw new Error("usage: agent host <host.json>");
    spec = parseAt(HostSpec, JSON.parse(readFileSync(file, "utf8")), {
      what: `host spec ${file}`,
      kind: "user",
      code: "bad_host_spec",
    });
  } catch (error) {
    const err = toRunctlError(error);
    log(`${err.message}${err.hint ? ` (${err.hint})` : ""}`);
    // A spec that cannot be read will not become readable by restarting.
    return 0;
  }
  const home = resolve(process.env.RUNCTL_HOME ?? dirname(resolve(file)));
  const agent = new HostAgent(spec, {
    home,
    env: process.env,
    log,
    // The run's own POST policy: it may write under the run's prefix and nowhere else.
    storeTarget: (run, runDir) =>
      run.store
        ? new PostPolicyRunSync({ policy: run.store.post, stateFile: postSyncStateFile(runDir) })
        : undefined,
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => agent.stop(signal === "SIGHUP" ? "SIGTERM" : signal));
  }
  log(`host ${spec.hostId} (${spec.provider}) up, home ${home}, node ${process.version}`);
  const outcome = await agent.run();
  log(`stopping after ${outcome.runs} run(s): ${outcome.reason}`);
  return 0;
}
