/**
 * What the emulated region offers: instance types (with an on-demand price the spot history is
 * derived from), Availability Zones, and a few public images with creation dates, among them
 * AWS Deep Learning AMIs under Amazon's real owner id, so image lookups are exercised for real.
 */

export interface InstanceTypeInfo {
  name: string;
  vcpus: number;
  gpus: number;
  onDemandUsd: number;
}

export const INSTANCE_TYPES: readonly InstanceTypeInfo[] = [
  { name: "t3.micro", vcpus: 2, gpus: 0, onDemandUsd: 0.0104 },
  { name: "t3.small", vcpus: 2, gpus: 0, onDemandUsd: 0.0208 },
  { name: "t3.medium", vcpus: 2, gpus: 0, onDemandUsd: 0.0416 },
  { name: "c5.large", vcpus: 2, gpus: 0, onDemandUsd: 0.085 },
  { name: "m5.large", vcpus: 2, gpus: 0, onDemandUsd: 0.096 },
  { name: "g4dn.xlarge", vcpus: 4, gpus: 1, onDemandUsd: 0.526 },
  { name: "g4dn.2xlarge", vcpus: 8, gpus: 1, onDemandUsd: 0.752 },
  { name: "g5.xlarge", vcpus: 4, gpus: 1, onDemandUsd: 1.006 },
  { name: "g5.2xlarge", vcpus: 8, gpus: 1, onDemandUsd: 1.212 },
  { name: "g5.12xlarge", vcpus: 48, gpus: 4, onDemandUsd: 5.672 },
  { name: "g6.xlarge", vcpus: 4, gpus: 1, onDemandUsd: 0.8048 },
  { name: "p3.2xlarge", vcpus: 8, gpus: 1, onDemandUsd: 3.06 },
];

export function instanceType(name: string): InstanceTypeInfo | undefined {
  return INSTANCE_TYPES.find((t) => t.name === name);
}

export const ZONE_LETTERS = ["a", "b", "c"] as const;

export function zonesOf(region: string): string[] {
  return ZONE_LETTERS.map((l) => `${region}${l}`);
}

/** Spot costs a zone-dependent fraction of on-demand, as it roughly does; zone `a` is cheapest. */
export function spotPrice(type: InstanceTypeInfo, zone: string): number {
  const index = ZONE_LETTERS.indexOf(zone.slice(-1) as (typeof ZONE_LETTERS)[number]);
  const fraction = 0.3 + 0.02 * Math.max(0, index);
  return Number((type.onDemandUsd * fraction).toFixed(4));
}

export interface ImageRecord {
  imageId: string;
  name: string;
  description: string;
  ownerId: string;
  ownerAlias?: string;
  creationDate: string;
  architecture: "x86_64" | "arm64";
  state: "available" | "pending" | "deprecated";
}

/** The owner id AWS publishes Deep Learning AMIs under. */
export const DLAMI_OWNER = "898082745236";
const CANONICAL_OWNER = "099720109477";

export const SEEDED_IMAGES: readonly ImageRecord[] = [
  {
    imageId: "ami-0a1b2c3d4e5f60701",
    name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20250602",
    description:
      "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4, P4de, P5, P5e, P5en, P6-B200. PyTorch-2.7",
    ownerId: DLAMI_OWNER,
    ownerAlias: "amazon",
    creationDate: "2025-06-03T09:12:44.000Z",
    architecture: "x86_64",
    state: "available",
  },
  {
    imageId: "ami-0a1b2c3d4e5f60702",
    name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20250917",
    description:
      "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4, P4de, P5, P5e, P5en, P6-B200. PyTorch-2.7",
    ownerId: DLAMI_OWNER,
    ownerAlias: "amazon",
    creationDate: "2025-09-18T07:40:02.000Z",
    architecture: "x86_64",
    state: "available",
  },
  {
    imageId: "ami-0a1b2c3d4e5f60703",
    name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20250812",
    description:
      "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4, P4de, P5, P5e, P5en, P6-B200. PyTorch-2.7",
    ownerId: DLAMI_OWNER,
    ownerAlias: "amazon",
    creationDate: "2025-08-13T11:03:19.000Z",
    architecture: "x86_64",
    state: "available",
  },
  {
    imageId: "ami-0a1b2c3d4e5f60704",
    name: "Deep Learning ARM64 OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20251001",
    description: "Supported EC2 instances: G5g, P6e-GB200. PyTorch-2.7",
    ownerId: DLAMI_OWNER,
    ownerAlias: "amazon",
    creationDate: "2025-10-02T08:00:00.000Z",
    architecture: "arm64",
    state: "available",
  },
  {
    imageId: "ami-0c0ffee0c0ffee001",
    name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251010",
    description: "Canonical, Ubuntu, 24.04, amd64 noble image",
    ownerId: CANONICAL_OWNER,
    creationDate: "2025-10-10T12:00:00.000Z",
    architecture: "x86_64",
    state: "available",
  },
  {
    imageId: "ami-0bad0bad0bad0bad1",
    name: "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20991231",
    description: "Not Amazon's: a look-alike under another account, which an owner-less lookup would pick",
    ownerId: "111122223333",
    creationDate: "2099-12-31T00:00:00.000Z",
    architecture: "x86_64",
    state: "available",
  },
];
