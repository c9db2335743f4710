/**
 * IAM's XML: `<ActionResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">` with an
 * `<ActionResult>` and `ResponseMetadata/RequestId`, lists as `<member>` elements, policy
 * documents URL-encoded, and `<ErrorResponse><Error><Type/><Code/><Message/></Error>`; built
 * with fast-xml-parser so escaping is never hand-written.
 */
import { XMLBuilder } from "fast-xml-parser";
import type { InstanceProfileRecord, RoleRecord } from "./iam-account.ts";

export const IAM_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/";

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, processEntities: true });

type Xml = string | number | boolean | XmlObject | XmlObject[];
export interface XmlObject {
  [key: string]: Xml | undefined;
}

export function members(list: readonly XmlObject[]): XmlObject | string {
  return list.length === 0 ? "" : { member: [...list] };
}

/** A response; `result` undefined for actions that answer only their request id. */
export function iamResponse(action: string, requestId: string, result: XmlObject | undefined): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    [`${action}Response`]: {
      "@_xmlns": IAM_NAMESPACE,
      ...(result !== undefined ? { [`${action}Result`]: result } : {}),
      ResponseMetadata: { RequestId: requestId },
    },
  })}`;
}

export function iamErrorDocument(type: string, code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    ErrorResponse: {
      "@_xmlns": IAM_NAMESPACE,
      Error: { Type: type, Code: code, Message: message },
      RequestId: requestId,
    },
  })}`;
}

/** Policy documents travel URL-encoded in IAM's answers (RFC 3986). */
export function encodePolicy(document: string): string {
  return encodeURIComponent(document).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export function tagMembers(tags: ReadonlyMap<string, string>): XmlObject | string {
  return members([...tags].map(([Key, Value]) => ({ Key, Value })));
}

export function roleXml(r: RoleRecord): XmlObject {
  return {
    Path: r.path,
    RoleName: r.roleName,
    RoleId: r.roleId,
    Arn: r.arn,
    CreateDate: r.createDate.toISOString(),
    AssumeRolePolicyDocument: encodePolicy(r.assumeRolePolicyDocument),
    ...(r.description !== undefined ? { Description: r.description } : {}),
    MaxSessionDuration: r.maxSessionDuration,
    ...(r.tags.size > 0 ? { Tags: tagMembers(r.tags) } : {}),
  };
}

export function instanceProfileXml(p: InstanceProfileRecord, role: (name: string) => RoleRecord): XmlObject {
  return {
    Path: p.path,
    InstanceProfileName: p.name,
    InstanceProfileId: p.id,
    Arn: p.arn,
    CreateDate: p.createDate.toISOString(),
    Roles: members(p.roles.map((name) => roleXml(role(name)))),
    ...(p.tags.size > 0 ? { Tags: tagMembers(p.tags) } : {}),
  };
}
