/**
 * RunPod emulator pods whose container really runs: the `machine` hook runs each pod's start
 * command (`dockerArgs`, runctl's `bash -c '<bootstrap>'`) on a bare host (see bare-host.ts) with
 * the pod's env (RUNPOD_POD_ID and the pod-scoped RUNPOD_API_KEY included), as the container's
 * command line: `bash` and `runpodctl` are on the host's PATH, as they are in RunPod's images,
 * and no `shutdown`. As on RunPod, a command that ends is started again (the container restarts);
 * a pod stops only through the API (`runpodctl stop pod $RUNPOD_POD_ID` from inside), or when
 * the market reclaims it. Stopping or terminating the pod stops its container as `docker stop`
 * does: SIGTERM to the command, SIGKILL to everything after `stopGraceMs`.
 *
 *   const machines = runpodBareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
 *   const rp = await startRunPodEmulator({ machine: machines.hook });
 *   machines.hosts.get(podId)               // the host a pod's container runs on
 *   await machines.close();                 // after rp.stop(): nothing of any host survives
 */
import { rm } from "node:fs/promises";
import { type BareHost, type BareHostOptions, MINIMAL_HOST_TOOLS, startBareHost } from "./bare-host.ts";
import type { PodMachineHook } from "./runpod-emulator/cloud.ts";

export interface RunPodMachinesOptions extends Omit<BareHostOptions, "userData"> {
  /** Told when a pod's container has started (tests keep the host to read its logs). */
  onBoot?: (podId: string, host: BareHost) => void;
  /** Between a stop's SIGTERM and SIGKILL; default 5 s (what RunPod gives an interrupted pod). */
  stopGraceMs?: number;
}

/** Pause before a container whose command ended is started again. */
const RESTART_DELAY_MS = 1_000;

/**
 * runpodctl as a pod has it, for what a pod does to itself: `stop pod ID` and `remove pod ID`
 * through the API with the pod's own key (RUNPOD_API_KEY), as the real runpodctl does.
 */
export function runpodctlScript(apiUrl: string): string {
  const script = String.raw`#!/bin/sh
case "$1 $2" in
  "stop pod") q='mutation($id: String!) { podStop(input: {podId: $id}) { id desiredStatus } }'; did=stopped ;;
  "remove pod") q='mutation($id: String!) { podTerminate(input: {podId: $id}) }'; did=removed ;;
  *) echo "runpodctl: unknown command \"$*\"" >&2; exit 1 ;;
esac
case "$3" in ""|*[!A-Za-z0-9]*) echo "runpodctl: which pod?" >&2; exit 1 ;; esac
out=$(curl -sS -X POST -H 'content-type: application/json' -H "Authorization: Bearer $RUNPOD_API_KEY" \
  --data "{\"query\": \"$q\", \"variables\": {\"id\": \"$3\"}}" "$RUNPOD_EMULATOR_API_URL") || exit 1
case "$out" in *'"errors"'*) echo "runpodctl: $out" >&2; exit 1 ;; esac
echo "pod \"$3\" $did"
`;
  return script.replace("#!/bin/sh\n", `#!/bin/sh\nRUNPOD_EMULATOR_API_URL='${apiUrl}'\n`);
}

export interface RunPodMachines {
  hook: PodMachineHook;
  /** The living host of each running pod, by pod id. */
  hosts: ReadonlyMap<string, BareHost>;
  /** Every host started so far, also those switched off (their logs stay readable until close()). */
  booted: readonly { podId: string; host: BareHost }[];
  /** The start command each container ran, by pod id (the last one). */
  commands: ReadonlyMap<string, string>;
  /** How often each pod's container was started again after its command ended. */
  restarts: ReadonlyMap<string, number>;
  /** Switches every host off. */
  close(): Promise<void>;
}

export function runpodBareHostMachines(options: RunPodMachinesOptions = {}): RunPodMachines {
  const { onBoot, stopGraceMs = 5_000, ...hostOptions } = options;
  const restarts = new Map<string, number>();
  const tools = hostOptions.tools ?? MINIMAL_HOST_TOOLS;
  const hosts = new Map<string, BareHost>();
  const commands = new Map<string, string>();
  const booted: { podId: string; host: BareHost }[] = [];
  const hook: PodMachineHook = async (pod) => {
    // A pod without a start command runs its image's default, which does nothing here.
    if (pod.dockerArgs.trim() === "") return { stop: () => {} };
    commands.set(pod.podId, pod.dockerArgs);
    const host = await startBareHost({
      ...hostOptions,
      tools: tools.includes("bash") ? tools : [...tools, "bash"],
      noShutdown: true,
      scripts: { ...(pod.apiUrl ? { runpodctl: runpodctlScript(pod.apiUrl) } : {}), ...hostOptions.scripts },
      // Its directories outlive the pod, so its logs stay readable; close() removes them.
      keep: true,
      // The host's sh runs the command line; exec: the container's process is the command.
      userData: `exec ${pod.dockerArgs}\n`,
      env: { ...pod.env, ...hostOptions.env },
    });
    hosts.set(pod.podId, host);
    booted.push({ podId: pod.podId, host });
    onBoot?.(pod.podId, host);
    let off = false;
    // The command ended by itself: RunPod starts the container again (its disk stays).
    const restart = async (): Promise<void> => {
      while (!off) {
        await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
        if (off) return;
        restarts.set(pod.podId, (restarts.get(pod.podId) ?? 0) + 1);
        await host.rerun().catch(() => undefined);
      }
    };
    void host.exited.then(restart, () => undefined);
    return {
      stop: async () => {
        off = true;
        await host.terminate(stopGraceMs);
        hosts.delete(pod.podId);
      },
    };
  };
  return {
    hook,
    hosts,
    booted,
    commands,
    restarts,
    close: async () => {
      await Promise.all(
        booted.map(async ({ host }) => {
          await host.close();
          if (!options.keep) await rm(host.root, { recursive: true, force: true });
        }),
      );
      hosts.clear();
    },
  };
}
