/**
 * EC2 emulator instances that really boot: the `machine` hook runs each instance's user-data
 * on a bare host (see bare-host.ts), with the instance's own IMDS endpoint in its environment.
 * Stopping or terminating the instance switches the host off; the host's own `shutdown -h now`
 * stops or terminates the instance per its InstanceInitiatedShutdownBehavior, as on EC2.
 *
 *   const machines = bareHostMachines({ tools: [...MINIMAL_HOST_TOOLS, "setpriv"] });
 *   const ec2 = await startEc2Emulator({ machine: machines.hook });
 *   machines.hosts.get(instanceId)          // the host an instance booted
 *   await machines.close();                 // after ec2.stop(): nothing of any host survives
 */
import { rm } from "node:fs/promises";
import { type BareHost, type BareHostOptions, startBareHost } from "./bare-host.ts";
import type { MachineHook } from "./ec2-emulator/cloud.ts";

export interface BareHostMachinesOptions extends Omit<BareHostOptions, "userData"> {
  /** Told when an instance's host has booted (tests keep it to read its logs). */
  onBoot?: (instanceId: string, host: BareHost) => void;
}

export interface BareHostMachines {
  hook: MachineHook;
  /** The living host of each running instance, by instance id. */
  hosts: ReadonlyMap<string, BareHost>;
  /** Every host booted so far, also those switched off (their logs stay readable until close()). */
  booted: readonly { instanceId: string; host: BareHost }[];
  /** Switches every host off. */
  close(): Promise<void>;
}

export function bareHostMachines(options: BareHostMachinesOptions = {}): BareHostMachines {
  const { onBoot, ...hostOptions } = options;
  const hosts = new Map<string, BareHost>();
  const booted: { instanceId: string; host: BareHost }[] = [];
  const hook: MachineHook = async (vm) => {
    // An instance without user-data boots an image that runs nothing: no host to start.
    if (vm.userData === undefined) return { stop: () => {} };
    const host = await startBareHost({
      ...hostOptions,
      // Its directories outlive the instance, so its logs stay readable; close() removes them.
      keep: true,
      userData: vm.userData,
      env: {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: vm.imdsEndpoint,
        AWS_REGION: vm.region,
        ...hostOptions.env,
      },
    });
    hosts.set(vm.instanceId, host);
    booted.push({ instanceId: vm.instanceId, host });
    onBoot?.(vm.instanceId, host);
    let off = false;
    // The host asked to shut down (and is gone already): the instance follows.
    void host.shutdownRequested.then(() => {
      if (!off) vm.shutdown();
    });
    return {
      // As cloud-init shows it on the serial console: the user-data's output, then what the
      // bootstrap and the agent log (the bootstrap sends its output to bootstrap.log).
      console: async () => {
        const logs = await host.logs();
        return `${logs.console}${logs.bootstrap}${logs.agent}`;
      },
      stop: async () => {
        off = true;
        hosts.delete(vm.instanceId);
        await host.kill();
      },
    };
  };
  return {
    hook,
    hosts,
    booted,
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
