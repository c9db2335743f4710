/**
 * EC2's XML: `<ActionResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with a
 * `requestId`, lists as `<item>` elements, and the `<Response><Errors><Error>` envelope with
 * `RequestID`, built with fast-xml-parser so escaping is never hand-written.
 */
import { XMLBuilder } from "fast-xml-parser";
import type { ImageRecord } from "./catalog.ts";
import { type InstanceRecord, OWNER_ID, type SecurityGroupRecord, STATE_CODES } from "./cloud.ts";

export const EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/";

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, processEntities: true });

type Xml = string | number | boolean | XmlObject | XmlObject[] | string[];
interface XmlObject {
  [key: string]: Xml | undefined;
}

export function items(list: readonly XmlObject[]): XmlObject | string {
  return list.length === 0 ? "" : { item: [...list] };
}

export function responseDocument(action: string, requestId: string, body: XmlObject): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    [`${action}Response`]: { "@_xmlns": EC2_NAMESPACE, requestId, ...body },
  })}`;
}

export function errorDocument(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    Response: { Errors: { Error: { Code: code, Message: message } }, RequestID: requestId },
  })}`;
}

export function tagSet(tags: ReadonlyMap<string, string>): XmlObject | string {
  return items([...tags].map(([key, value]) => ({ key, value })));
}

export function instanceState(state: InstanceRecord["state"]): XmlObject {
  return { code: STATE_CODES[state], name: state };
}

export function instanceXml(i: InstanceRecord): XmlObject {
  return {
    instanceId: i.instanceId,
    imageId: i.imageId,
    instanceState: instanceState(i.state),
    privateDnsName: `ip-${i.privateIp.replaceAll(".", "-")}.ec2.internal`,
    dnsName: "",
    reason: i.stateTransitionReason,
    ...(i.keyName ? { keyName: i.keyName } : {}),
    amiLaunchIndex: 0,
    productCodes: "",
    instanceType: i.instanceType,
    launchTime: i.launchTime.toISOString(),
    placement: { availabilityZone: i.zone, groupName: "", tenancy: "default" },
    monitoring: { state: "disabled" },
    subnetId: "subnet-0a1b2c3d4e5f60718",
    vpcId: "vpc-0e1a2b3c4d5e6f708",
    privateIpAddress: i.privateIp,
    sourceDestCheck: true,
    groupSet: items(i.securityGroupIds.map((groupId) => ({ groupId, groupName: groupId }))),
    ...(i.stateReason ? { stateReason: { code: i.stateReason.code, message: i.stateReason.message } } : {}),
    architecture: "x86_64",
    rootDeviceType: "ebs",
    rootDeviceName: i.rootDevice.deviceName,
    blockDeviceMapping: items([
      {
        deviceName: i.rootDevice.deviceName,
        ebs: {
          volumeId: i.rootDevice.volumeId,
          status: "attached",
          attachTime: i.launchTime.toISOString(),
          deleteOnTermination: true,
        },
      },
    ]),
    ...(i.spot ? { instanceLifecycle: "spot", spotInstanceRequestId: i.spot.requestId } : {}),
    virtualizationType: "hvm",
    ...(i.clientToken !== undefined ? { clientToken: i.clientToken } : {}),
    tagSet: tagSet(i.tags),
    hypervisor: "xen",
    ...(i.iamInstanceProfile
      ? { iamInstanceProfile: { arn: i.iamInstanceProfile.arn, id: i.iamInstanceProfile.id } }
      : {}),
    ebsOptimized: false,
    enaSupport: true,
    metadataOptions: {
      state: "applied",
      httpTokens: i.metadata.httpTokens,
      httpPutResponseHopLimit: i.metadata.hopLimit,
      httpEndpoint: "enabled",
      instanceMetadataTags: i.metadata.instanceMetadataTags ? "enabled" : "disabled",
    },
  };
}

export function reservationXml(reservationId: string, instances: readonly InstanceRecord[]): XmlObject {
  return {
    reservationId,
    ownerId: OWNER_ID,
    groupSet: "",
    instancesSet: items(instances.map(instanceXml)),
  };
}

export function imageXml(image: ImageRecord): XmlObject {
  return {
    imageId: image.imageId,
    imageLocation: `${image.ownerAlias ?? image.ownerId}/${image.name}`,
    imageState: image.state,
    imageOwnerId: image.ownerId,
    creationDate: image.creationDate,
    isPublic: true,
    architecture: image.architecture,
    imageType: "machine",
    ...(image.ownerAlias ? { imageOwnerAlias: image.ownerAlias } : {}),
    name: image.name,
    description: image.description,
    rootDeviceType: "ebs",
    rootDeviceName: "/dev/sda1",
    blockDeviceMapping: items([
      {
        deviceName: "/dev/sda1",
        ebs: {
          snapshotId: "snap-0123456789abcdef0",
          volumeSize: 8,
          deleteOnTermination: true,
          volumeType: "gp3",
          encrypted: false,
        },
      },
    ]),
    virtualizationType: "hvm",
    hypervisor: "xen",
    enaSupport: true,
    platformDetails: "Linux/UNIX",
    usageOperation: "RunInstances",
    bootMode: "uefi-preferred",
  };
}

export function securityGroupXml(g: SecurityGroupRecord): XmlObject {
  return {
    ownerId: OWNER_ID,
    groupId: g.groupId,
    groupName: g.groupName,
    groupDescription: g.description,
    vpcId: g.vpcId,
    ipPermissions: "",
    ipPermissionsEgress: items([
      {
        ipProtocol: "-1",
        groups: "",
        ipRanges: items([{ cidrIp: "0.0.0.0/0" }]),
        ipv6Ranges: "",
        prefixListIds: "",
      },
    ]),
    tagSet: tagSet(g.tags),
  };
}
