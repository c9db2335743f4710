/**
 * The EC2 emulator, for tests and benchmarks of anything that talks to EC2 (provider-aws,
 * `runctl aws`): in this process with `startEc2Emulator`, or as its own process (the built
 * `dist/ec2-emulator/main.js`). Virtual machines plug in through the `machine` hook; IAM (roles,
 * instance profiles) answers on the same endpoint.
 */
export {
  type CapacityFault,
  Ec2Cloud,
  type InstanceProfileLookup,
  type InstanceRecord,
  type MachineHook,
  noMachine,
  type ThrottleFault,
  type VirtualMachineContext,
  type VirtualMachineHandle,
} from "./ec2-emulator/cloud.ts";
export { type Ec2Emulator, type Ec2EmulatorOptions, startEc2Emulator } from "./ec2-emulator/server.ts";
export { IamAccount, type InstanceProfileRecord, type RoleRecord } from "./iam-emulator/iam-account.ts";
