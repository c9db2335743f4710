/**
 * The emulated IAM of the emulated account: roles with their trust policy, tags and inline
 * policies, and instance profiles holding at most one role, with IAM's checks (names, policy
 * grammar, one role per profile) and its error codes. Policy documents are kept as sent and
 * answered URL-encoded, as IAM answers them. Every call is recorded, so a test can prove that
 * a second `runctl aws setup` reads and writes nothing.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { OWNER_ID } from "../ec2-emulator/cloud.ts";
import {
  entityAlreadyExists,
  IamFailure,
  limitExceeded,
  malformedPolicy,
  noSuchEntity,
  validationError,
} from "./iam-failure.ts";

export interface RoleRecord {
  roleName: string;
  roleId: string;
  arn: string;
  path: string;
  createDate: Date;
  description: string | undefined;
  maxSessionDuration: number;
  /** The trust policy as sent (IAM answers it URL-encoded). */
  assumeRolePolicyDocument: string;
  tags: Map<string, string>;
  /** Inline policies by name, as sent. */
  policies: Map<string, string>;
  /** Managed policies attached, by ARN (their documents are not modelled). */
  attached: Set<string>;
}

export interface InstanceProfileRecord {
  name: string;
  id: string;
  arn: string;
  path: string;
  createDate: Date;
  roles: string[];
  tags: Map<string, string>;
}

export interface IamCallRecord {
  action: string;
  accessKeyId: string;
  outcome: string;
}

const NAME = /^[\w+=,.@-]+$/;
const MAX_TRUST_CHARS = 2048;
const MAX_INLINE_CHARS = 10_240;
const READ_ACTION = /^(Get|List)/;

function iamId(prefix: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  return prefix + [...randomBytes(17)].map((b) => alphabet[b % alphabet.length]).join("");
}

function checkName(kind: string, name: string, max = 64): void {
  if (name.length < 1 || name.length > max || !NAME.test(name)) {
    throw validationError(
      `1 validation error detected: Value '${name}' at '${kind}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+`,
    );
  }
}

function checkPath(path: string): void {
  if (!/^\/(?:[\x21-\x7e]*\/)?$/.test(path) || path.length > 512) {
    throw validationError(
      `The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.`,
    );
  }
}

const Strings = z.union([z.string(), z.array(z.string()).min(1)]);
const Statement = z.looseObject({
  Sid: z.string().optional(),
  Effect: z.string(),
  Action: Strings.optional(),
  NotAction: Strings.optional(),
  Resource: Strings.optional(),
  NotResource: Strings.optional(),
  Principal: z.union([z.literal("*"), z.record(z.string(), Strings)]).optional(),
  NotPrincipal: z.unknown().optional(),
  Condition: z
    .record(z.string(), z.record(z.string(), z.union([Strings, z.boolean(), z.number()])))
    .optional(),
});
const Document = z.looseObject({
  Version: z.string().optional(),
  Id: z.string().optional(),
  Statement: z.union([Statement, z.array(Statement).min(1)]),
});

const asList = (v: string | string[]) => (typeof v === "string" ? [v] : v);

/** IAM's grammar checks, for a trust policy (`trust`) or an identity policy. */
export function checkPolicyDocument(text: string, kind: "trust" | "identity"): void {
  const max = kind === "trust" ? MAX_TRUST_CHARS : MAX_INLINE_CHARS;
  if (text.replace(/\s/g, "").length > max) {
    throw limitExceeded(
      `Cannot exceed quota for ${kind === "trust" ? "ACLSizePerRole" : "PolicySize"}: ${max}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw malformedPolicy("Syntax errors in policy.");
  }
  const parsed = Document.safeParse(json);
  if (!parsed.success) throw malformedPolicy("Syntax errors in policy.");
  const doc = parsed.data;
  if (doc.Version !== undefined && doc.Version !== "2012-10-17" && doc.Version !== "2008-10-17") {
    throw malformedPolicy("The policy failed legacy parsing");
  }
  for (const s of Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement]) {
    if (s.Effect !== "Allow" && s.Effect !== "Deny") throw malformedPolicy(`Invalid effect: ${s.Effect}`);
    const actions = s.Action ?? s.NotAction;
    if (actions === undefined) throw malformedPolicy("Policy statement must contain actions.");
    for (const a of asList(actions)) {
      if (a !== "*" && !/^[a-z0-9-]+:[\w*?-]+$/i.test(a)) {
        throw malformedPolicy("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.");
      }
    }
    if (kind === "identity") {
      if (s.Principal !== undefined || s.NotPrincipal !== undefined) {
        throw malformedPolicy("Policy document should not specify a principal.");
      }
      const resources = s.Resource ?? s.NotResource;
      if (resources === undefined) throw malformedPolicy("Policy statement must contain resources.");
      for (const r of asList(resources)) {
        if (r !== "*" && !r.startsWith("arn:")) {
          throw malformedPolicy(`Resource ${r} must be in ARN format or "*".`);
        }
      }
    } else {
      if (s.Principal === undefined && s.NotPrincipal === undefined) {
        throw malformedPolicy("AssumeRolepolicy contained an invalid principal: Missing Principal.");
      }
      if (s.Resource !== undefined || s.NotResource !== undefined) {
        throw malformedPolicy("Has prohibited field Resource");
      }
      for (const a of asList(actions)) {
        if (
          !/^sts:(AssumeRole|AssumeRoleWithSAML|AssumeRoleWithWebIdentity|TagSession|SetSourceIdentity|SetContext|\*)$/.test(
            a,
          ) &&
          a !== "*"
        ) {
          throw malformedPolicy("AssumeRole policy may only specify STS AssumeRole actions.");
        }
      }
    }
  }
}

export interface CreateRoleInput {
  RoleName: string;
  AssumeRolePolicyDocument: string;
  Path?: string | undefined;
  Description?: string | undefined;
  MaxSessionDuration?: number | undefined;
  Tags?: Array<{ Key: string; Value: string }> | undefined;
}

export class IamAccount {
  readonly roles = new Map<string, RoleRecord>();
  readonly instanceProfiles = new Map<string, InstanceProfileRecord>();
  readonly calls: IamCallRecord[] = [];
  private readonly denied = new Set<string>();

  // ---- bookkeeping ----------------------------------------------------------------------

  /** Denial applies before the action runs, with IAM's AccessDenied naming the permission. */
  admit(action: string, accessKeyId: string): IamCallRecord {
    const record: IamCallRecord = { action, accessKeyId, outcome: "ok" };
    this.calls.push(record);
    if (this.denied.has(action)) {
      record.outcome = "AccessDenied";
      throw new IamFailure(
        403,
        "AccessDenied",
        `User: arn:aws:iam::${OWNER_ID}:user/${accessKeyId} is not authorized to perform: iam:${action} because no identity-based policy allows the iam:${action} action`,
      );
    }
    return record;
  }

  deny(action: string): void {
    this.denied.add(action);
  }

  clearFaults(): void {
    this.denied.clear();
  }

  callCount(action?: string): number {
    return this.calls.filter((c) => action === undefined || c.action === action).length;
  }

  /** Calls that change something (not Get*, not List*), whether they succeeded or not. */
  writeCalls(): IamCallRecord[] {
    return this.calls.filter((c) => !READ_ACTION.test(c.action));
  }

  // ---- roles ----------------------------------------------------------------------------

  role(name: string): RoleRecord {
    const role = this.roles.get(name);
    if (!role) throw noSuchEntity(`The role with name ${name} cannot be found.`);
    return role;
  }

  createRole(input: CreateRoleInput): RoleRecord {
    checkName("roleName", input.RoleName);
    const path = input.Path ?? "/";
    checkPath(path);
    checkPolicyDocument(input.AssumeRolePolicyDocument, "trust");
    const tags = tagMap(input.Tags ?? []);
    const duration = input.MaxSessionDuration ?? 3600;
    if (duration < 3600 || duration > 43_200) {
      throw validationError(
        `1 validation error detected: Value '${duration}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200`,
      );
    }
    if (this.roles.has(input.RoleName))
      throw entityAlreadyExists(`Role with name ${input.RoleName} already exists.`);
    const role: RoleRecord = {
      roleName: input.RoleName,
      roleId: iamId("AROA"),
      arn: `arn:aws:iam::${OWNER_ID}:role${path}${input.RoleName}`,
      path,
      createDate: new Date(Math.floor(Date.now() / 1000) * 1000),
      description: input.Description,
      maxSessionDuration: duration,
      assumeRolePolicyDocument: input.AssumeRolePolicyDocument,
      tags,
      policies: new Map(),
      attached: new Set(),
    };
    this.roles.set(role.roleName, role);
    return role;
  }

  updateAssumeRolePolicy(roleName: string, document: string): void {
    const role = this.role(roleName);
    checkPolicyDocument(document, "trust");
    role.assumeRolePolicyDocument = document;
  }

  putRolePolicy(roleName: string, policyName: string, document: string): void {
    checkName("policyName", policyName, 128);
    const role = this.role(roleName);
    checkPolicyDocument(document, "identity");
    role.policies.set(policyName, document);
  }

  deleteRolePolicy(roleName: string, policyName: string): void {
    this.rolePolicy(roleName, policyName);
    this.role(roleName).policies.delete(policyName);
  }

  attachRolePolicy(roleName: string, policyArn: string): void {
    if (!/^arn:aws[\w-]*:iam::(aws|\d{12}):policy\/[\w+=,.@/-]+$/.test(policyArn)) {
      throw new IamFailure(400, "InvalidInput", `ARN ${policyArn} is not valid.`);
    }
    const role = this.role(roleName);
    if (!role.attached.has(policyArn) && role.attached.size >= 10) {
      throw limitExceeded("Cannot exceed quota for PoliciesPerRole: 10");
    }
    role.attached.add(policyArn);
  }

  detachRolePolicy(roleName: string, policyArn: string): void {
    const role = this.role(roleName);
    if (!role.attached.delete(policyArn)) throw noSuchEntity(`Policy ${policyArn} was not found.`);
  }

  rolePolicy(roleName: string, policyName: string): string {
    const role = this.role(roleName);
    const doc = role.policies.get(policyName);
    if (doc === undefined) {
      throw noSuchEntity(`The role policy with name ${policyName} cannot be found.`);
    }
    return doc;
  }

  tagRole(roleName: string, tags: Array<{ Key: string; Value: string }>): void {
    const role = this.role(roleName);
    const next = new Map([...role.tags, ...tagMap(tags)]);
    if (next.size > 50) throw limitExceeded("Cannot exceed quota for TagsPerRole: 50");
    role.tags = next;
  }

  // ---- instance profiles ---------------------------------------------------------------

  instanceProfile(name: string): InstanceProfileRecord {
    const profile = this.instanceProfiles.get(name);
    if (!profile) throw noSuchEntity(`Instance Profile ${name} cannot be found.`);
    return profile;
  }

  createInstanceProfile(input: {
    InstanceProfileName: string;
    Path?: string | undefined;
    Tags?: Array<{ Key: string; Value: string }> | undefined;
  }): InstanceProfileRecord {
    checkName("instanceProfileName", input.InstanceProfileName, 128);
    const path = input.Path ?? "/";
    checkPath(path);
    const tags = tagMap(input.Tags ?? []);
    if (this.instanceProfiles.has(input.InstanceProfileName)) {
      throw entityAlreadyExists(`Instance Profile ${input.InstanceProfileName} already exists.`);
    }
    const profile: InstanceProfileRecord = {
      name: input.InstanceProfileName,
      id: iamId("AIPA"),
      arn: `arn:aws:iam::${OWNER_ID}:instance-profile${path}${input.InstanceProfileName}`,
      path,
      createDate: new Date(Math.floor(Date.now() / 1000) * 1000),
      roles: [],
      tags,
    };
    this.instanceProfiles.set(profile.name, profile);
    return profile;
  }

  addRoleToInstanceProfile(profileName: string, roleName: string): void {
    const profile = this.instanceProfile(profileName);
    this.role(roleName);
    // One role per profile: adding even the same role again is over the quota.
    if (profile.roles.length >= 1) {
      throw limitExceeded("Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1");
    }
    profile.roles.push(roleName);
  }

  /**
   * What EC2's RunInstances makes of `IamInstanceProfile`: the profile by name or ARN, or EC2's
   * InvalidParameterValue as `{ field, value }` for the caller to raise in EC2's terms.
   */
  forLaunch(ref: {
    Name?: string | undefined;
    Arn?: string | undefined;
  }): { arn: string; id: string } | { invalid: "name" | "arn"; value: string } {
    if (ref.Arn !== undefined) {
      const found = [...this.instanceProfiles.values()].find((p) => p.arn === ref.Arn);
      return found ? { arn: found.arn, id: found.id } : { invalid: "arn", value: ref.Arn };
    }
    const found = this.instanceProfiles.get(ref.Name ?? "");
    return found ? { arn: found.arn, id: found.id } : { invalid: "name", value: ref.Name ?? "" };
  }

  /** Everything, as plain data (the admin endpoint; tests). */
  snapshot() {
    return {
      roles: [...this.roles.values()].map((r) => ({
        roleName: r.roleName,
        arn: r.arn,
        tags: Object.fromEntries(r.tags),
        assumeRolePolicyDocument: r.assumeRolePolicyDocument,
        policies: Object.fromEntries(r.policies),
        attachedPolicies: [...r.attached],
      })),
      instanceProfiles: [...this.instanceProfiles.values()].map((p) => ({
        name: p.name,
        arn: p.arn,
        roles: [...p.roles],
      })),
    };
  }
}

function tagMap(tags: ReadonlyArray<{ Key: string; Value: string }>): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of tags) {
    if (t.Key.length < 1 || t.Key.length > 128 || t.Value.length > 256) {
      throw validationError(
        `1 validation error detected: Value '${t.Key}' at 'tags.member.key' failed to satisfy constraint: Member must have length less than or equal to 128`,
      );
    }
    if (t.Key.toLowerCase().startsWith("aws:")) {
      throw validationError("User is not authorized to use tag keys starting with aws:");
    }
    out.set(t.Key, t.Value);
  }
  if (out.size > 50) throw limitExceeded("Cannot exceed quota for TagsPerRole: 50");
  return out;
}
