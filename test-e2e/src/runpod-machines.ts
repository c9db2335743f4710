/**
 * RunPod emulator pods whose container really runs: the `machine` hook runs each pod's start
 * command (`dockerArgs`, runctl's `bash -c '<bootstrap>'`) on a bare host (see bare-host.ts) with
 * the pod's env, as the container's command line: `bash` is on the host's PATH, as it is in
 * RunPod's images. The container lives as long as that command: when it ends (the machine shut
 * itself down, or the command returned) the pod stops, EXITED. Stopping or terminating the pod
 * switches the host off.
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
}

export interface RunPodMachines {
  hook: PodMachineHook;
  /** The living host of each running pod, by pod id. */
  hosts: ReadonlyMap<string, BareHost>;
  /** Every host started so far, also those switched off (their logs stay readable until close()). */
  booted: readonly { podId: string; host: BareHost }[];
  /** The start command each container ran, by pod id (the last one). */
  commands: ReadonlyMap<string, string>;
  /** Switches every host off. */
  close(): Promise<void>;
}

export function runpodBareHostMachines(options: RunPodMachinesOptions = {}): RunPodMachines {
  const { onBoot, ...hostOptions } = options;
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
    const exited = () => {
      if (off) return;
      off = true;
      hosts.delete(pod.podId);
      pod.exited();
    };
    // The machine shut itself down (and is gone already), or the command ended: the pod stops.
    void host.shutdownRequested.then(exited);
    void host.exited.then(exited);
    return {
      stop: async () => {
        off = true;
        hosts.delete(pod.podId);
        await host.kill();
      },
    };
  };
  return {
    hook,
    hosts,
    booted,
    commands,
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
