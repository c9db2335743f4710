/**
 * The part of RunPod's GraphQL schema runctl calls, with RunPod's own type, field, input and
 * enum names (graphql-spec.runpod.io), so a document the real API would refuse for a misspelt
 * field is refused here too by graphql-js validation.
 */
export const RUNPOD_SDL = /* GraphQL */ `
  scalar Void

  enum CloudTypeEnum {
    SECURE
    COMMUNITY
    ALL
  }

  enum PodType {
    INTERRUPTABLE
    RESERVED
  }

  enum PodStatus {
    CREATED
    RUNNING
    RESTARTING
    EXITED
    PAUSED
    DEAD
    TERMINATED
  }

  input EnvironmentVariableInput {
    key: String!
    value: String
  }

  input PodFindAndDeployOnDemandInput {
    cloudType: CloudTypeEnum
    gpuCount: Int
    gpuTypeId: String
    name: String
    imageName: String
    dockerArgs: String
    containerDiskInGb: Int
    volumeInGb: Int
    volumeMountPath: String
    minVcpuCount: Int
    minMemoryInGb: Int
    ports: String
    env: [EnvironmentVariableInput]
    dataCenterId: String
    startSsh: Boolean
    supportPublicIp: Boolean
  }

  input PodRentInterruptableInput {
    bidPerGpu: Float!
    cloudType: CloudTypeEnum
    gpuCount: Int
    gpuTypeId: String
    name: String
    imageName: String
    dockerArgs: String
    containerDiskInGb: Int
    volumeInGb: Int
    volumeMountPath: String
    minVcpuCount: Int
    minMemoryInGb: Int
    ports: String
    env: [EnvironmentVariableInput]
    dataCenterId: String
    startSsh: Boolean
    supportPublicIp: Boolean
  }

  input PodFilter {
    podId: String!
  }

  input PodStopInput {
    podId: String!
    incrementVersion: Boolean
  }

  input PodResumeInput {
    podId: String!
    gpuCount: Int!
  }

  input PodBidResumeInput {
    podId: String!
    bidPerGpu: Float!
    gpuCount: Int!
  }

  input PodTerminateInput {
    podId: String!
  }

  input GpuTypeFilter {
    id: String
  }

  input GpuLowestPriceInput {
    gpuCount: Int
    secureCloud: Boolean
    minMemoryInGb: Int
    minVcpuCount: Int
    dataCenterId: String
  }

  type LowestPrice {
    gpuName: String
    gpuTypeId: String
    minimumBidPrice: Float
    uninterruptablePrice: Float
    stockStatus: String
  }

  type GpuType {
    id: String
    displayName: String
    memoryInGb: Int
    secureCloud: Boolean
    communityCloud: Boolean
    securePrice: Float
    communityPrice: Float
    secureSpotPrice: Float
    communitySpotPrice: Float
    lowestPrice(input: GpuLowestPriceInput): LowestPrice
  }

  type Port {
    ip: String
    isIpPublic: Boolean
    privatePort: Int
    publicPort: Int
    type: String
  }

  type PodRuntime {
    uptimeInSeconds: Int
    ports: [Port]
  }

  type PodMachineInfo {
    podHostId: String
    gpuDisplayName: String
  }

  type Pod {
    id: String
    name: String
    desiredStatus: PodStatus
    podType: PodType
    imageName: String
    dockerArgs: String
    env: [String]
    gpuCount: Int
    costPerHr: Float
    containerDiskInGb: Int
    volumeInGb: Int
    volumeMountPath: String
    machineId: String
    lastStatusChange: String
    uptimeSeconds: Int
    runtime: PodRuntime
    machine: PodMachineInfo
  }

  type User {
    id: String
    pods: [Pod]
  }

  type Query {
    myself: User
    pod(input: PodFilter): Pod
    gpuTypes(input: GpuTypeFilter): [GpuType]
  }

  type Mutation {
    podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
    podRentInterruptable(input: PodRentInterruptableInput!): Pod
    podStop(input: PodStopInput!): Pod
    podResume(input: PodResumeInput!): Pod
    podBidResume(input: PodBidResumeInput!): Pod
    podTerminate(input: PodTerminateInput): Void
  }
`;
