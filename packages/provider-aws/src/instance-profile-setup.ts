/**
 * `runctl aws setup`: the instance profile a machine's credentials come from, made or checked
 * idempotently. Everything is read first (the role, its trust, its store policy and any other
 * policy it holds, the profile, the security group) and a plan made; only then is anything written, so a role runctl did not
 * make is refused before any call changes anything, and a second run that finds everything right
 * makes no write at all. An existing role whose trust or policy differs is shown as a diff and
 * changed only once confirmed.
 */
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  type IAMClientConfig,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { TAG_CREATED_BY, TAG_CREATED_BY_VALUE, UserError } from "@runctl/core";
import { diffLines } from "diff";
import { z } from "zod";
import { awsClientCredentials } from "./aws-credentials.ts";
import type { AwsConfig } from "./aws-options.ts";
import { withRetries } from "./backoff.ts";
import { IAM_RETRYABLE, iamCode, iamError } from "./iam-errors.ts";
import {
  canonicalPolicy,
  decodePolicy,
  type PolicyDocument,
  STORE_POLICY_NAME,
  samePolicy,
  storeLocation,
  storePolicy,
  trustPolicy,
} from "./instance-policy.ts";

export type SetupResource =
  | "role"
  | "trust-policy"
  | "store-policy"
  | "other-policies"
  | "instance-profile"
  | "security-group";
export type SetupStatus = "unchanged" | "created" | "updated" | "would-create" | "would-update";

export interface SetupStep {
  resource: SetupResource;
  name: string;
  status: SetupStatus;
  /** What it is or will be, in words: "holds role runctl-instance", "no inbound rule". */
  detail?: string;
  /** For an update: the current and wanted document, line by line (`- `, `+ `, `  `). */
  diff?: string[];
}

export interface InstanceProfileSetupResult {
  dryRun: boolean;
  region: string;
  store: string;
  roleName: string;
  instanceProfile: string;
  policyName: string;
  policy: PolicyDocument;
  trustPolicy: PolicyDocument;
  steps: SetupStep[];
}

/** What setup needs of the EC2 side: runctl's security group (AwsProvider has both). */
export interface SecurityGroupKeeper {
  findSecurityGroup(): Promise<{ groupId: string; inboundRules: number } | undefined>;
  ensureSecurityGroup(): Promise<string>;
}

export interface InstanceProfileSetupOptions {
  config: AwsConfig;
  env: Readonly<Record<string, string | undefined>>;
  region: string;
  /** The store machines write (s3://bucket/prefix); the policy is scoped to it. */
  store: string;
  /** The role's name, and its instance profile's. */
  roleName: string;
  dryRun: boolean;
  /**
   * Asked before an existing role's trust or policy is replaced (with the diff as `plan`);
   * resolves to go ahead, throws to stop. `--yes` passes one that always resolves.
   */
  confirm: (question: string, plan: readonly string[]) => Promise<void>;
  securityGroup: SecurityGroupKeeper;
  /** Extra IAM client settings (tests). */
  clientConfig?: Partial<IAMClientConfig>;
}

const Tags = z.array(z.object({ Key: z.string(), Value: z.string().optional() })).optional();
const RoleAnswer = z.object({
  Role: z.object({
    RoleName: z.string(),
    Arn: z.string(),
    AssumeRolePolicyDocument: z.string().optional(),
    Tags,
  }),
});
const RolePolicyAnswer = z.object({ PolicyDocument: z.string() });
const RolePoliciesPage = z.object({
  PolicyNames: z.array(z.string()).default([]),
  IsTruncated: z.boolean().optional(),
  Marker: z.string().optional(),
});
const AttachedPoliciesPage = z.object({
  AttachedPolicies: z.array(z.object({ PolicyArn: z.string() })).default([]),
  IsTruncated: z.boolean().optional(),
  Marker: z.string().optional(),
});
const InstanceProfileAnswer = z.object({
  InstanceProfile: z.object({
    InstanceProfileName: z.string(),
    Arn: z.string(),
    Roles: z.array(z.object({ RoleName: z.string() })).default([]),
    Tags,
  }),
});

const isRunctlTagged = (tags: z.output<typeof Tags>) =>
  (tags ?? []).some((t) => t.Key === TAG_CREATED_BY && t.Value === TAG_CREATED_BY_VALUE);

/** Current → wanted as lines, both in canonical form so only meaning shows. */
export function policyDiff(current: PolicyDocument | string, wanted: PolicyDocument): string[] {
  const text = (d: PolicyDocument | string) =>
    typeof d === "string" ? `${d}\n` : `${JSON.stringify(canonicalPolicy(d), null, 2)}\n`;
  const out: string[] = [];
  for (const part of diffLines(text(current), text(wanted))) {
    const mark = part.added ? "+ " : part.removed ? "- " : "  ";
    for (const line of part.value.replace(/\n$/, "").split("\n")) out.push(`${mark}${line}`);
  }
  return out;
}

interface Plan {
  role: "create" | "exists";
  trust: { action: "create" | "none" | "update"; diff?: string[] };
  policy: { action: "create" | "none" | "update"; diff?: string[] };
  /** Inline policies besides runctl's and attached managed policies: the role must hold none. */
  others: { inline: string[]; attached: string[] };
  profile: { action: "create" | "add-role" | "none"; arn?: string };
  group: { action: "create" | "none"; inboundRules: number };
}

export async function setupInstanceProfile(
  options: InstanceProfileSetupOptions,
): Promise<InstanceProfileSetupResult> {
  const location = storeLocation(options.store);
  const roleName = options.roleName;
  const wantedPolicy = storePolicy(location, options.region);
  const wantedTrust = trustPolicy();
  const env = options.env;
  const auth = awsClientCredentials(env, options.config.profile);
  const endpoint = env.AWS_ENDPOINT_URL_IAM ?? env.AWS_ENDPOINT_URL ?? options.config.iam_endpoint;
  const client = new IAMClient({
    region: options.region,
    maxAttempts: 1,
    ...(endpoint ? { endpoint } : {}),
    ...(auth.profile ? { profile: auth.profile } : {}),
    ...(auth.credentials ? { credentials: auth.credentials } : {}),
    ...options.clientConfig,
  });
  const policy = {
    attempts: options.config.retry_attempts,
    baseMs: options.config.retry_base_ms,
    capMs: options.config.retry_cap_ms,
  };
  /** One IAM call (retried when throttled); a missing entity is `undefined`, any other failure runctl's. */
  const send = async <T>(doing: string, call: () => Promise<T>, missingIsUndefined = false) => {
    try {
      return await withRetries(policy, call, (e) => IAM_RETRYABLE.has(iamCode(e) ?? ""));
    } catch (error) {
      if (missingIsUndefined && iamCode(error) === "NoSuchEntity") return undefined;
      throw iamError(error, { doing, credentialSource: auth.source });
    }
  };

  /** Every policy the role holds besides runctl's: anything more would widen what a machine may do. */
  const otherPolicies = async (): Promise<Plan["others"]> => {
    const inline: string[] = [];
    const attached: string[] = [];
    let marker: string | undefined;
    do {
      const page = RolePoliciesPage.parse(
        await send(`list the inline policies of role ${roleName}`, () =>
          client.send(
            new ListRolePoliciesCommand({ RoleName: roleName, ...(marker ? { Marker: marker } : {}) }),
          ),
        ),
      );
      inline.push(...page.PolicyNames.filter((n) => n !== STORE_POLICY_NAME));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    do {
      const page = AttachedPoliciesPage.parse(
        await send(`list the managed policies attached to role ${roleName}`, () =>
          client.send(
            new ListAttachedRolePoliciesCommand({
              RoleName: roleName,
              ...(marker ? { Marker: marker } : {}),
            }),
          ),
        ),
      );
      attached.push(...page.AttachedPolicies.map((p) => p.PolicyArn));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return { inline, attached };
  };

  try {
    // ---- read and plan ---------------------------------------------------------------------
    const roleRaw = await send(
      `read role ${roleName}`,
      () => client.send(new GetRoleCommand({ RoleName: roleName })),
      true,
    );
    const plan: Plan = {
      role: "create",
      trust: { action: "create" },
      policy: { action: "create" },
      others: { inline: [], attached: [] },
      profile: { action: "create" },
      group: { action: "create", inboundRules: 0 },
    };
    if (roleRaw !== undefined) {
      const role = RoleAnswer.parse(roleRaw).Role;
      if (!isRunctlTagged(role.Tags)) {
        throw new UserError(
          `Role ${roleName} exists and was not made by runctl (no tag ${TAG_CREATED_BY}=${TAG_CREATED_BY_VALUE}); runctl changes nothing of it`,
          {
            code: "role_not_runctl",
            hint: `Pick another name (--role-name runctl-instance-2), or, if the role is meant for runctl machines, tag it yourself: aws iam tag-role --role-name ${roleName} --tags Key=${TAG_CREATED_BY},Value=${TAG_CREATED_BY_VALUE}`,
            details: { role: role.Arn },
          },
        );
      }
      plan.role = "exists";
      const trust = decodePolicy(role.AssumeRolePolicyDocument ?? "");
      plan.trust =
        trust !== undefined && samePolicy(trust, wantedTrust)
          ? { action: "none" }
          : {
              action: "update",
              diff: policyDiff(trust ?? decodeText(role.AssumeRolePolicyDocument ?? ""), wantedTrust),
            };
      const current = await send(
        `read policy ${STORE_POLICY_NAME} of role ${roleName}`,
        () => client.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: STORE_POLICY_NAME })),
        true,
      );
      if (current !== undefined) {
        const encoded = RolePolicyAnswer.parse(current).PolicyDocument;
        const doc = decodePolicy(encoded);
        plan.policy =
          doc !== undefined && samePolicy(doc, wantedPolicy)
            ? { action: "none" }
            : { action: "update", diff: policyDiff(doc ?? decodeText(encoded), wantedPolicy) };
      }
    }
    if (plan.role === "exists") plan.others = await otherPolicies();
    const profileRaw = await send(
      `read instance profile ${roleName}`,
      () => client.send(new GetInstanceProfileCommand({ InstanceProfileName: roleName })),
      true,
    );
    if (profileRaw !== undefined) {
      const profile = InstanceProfileAnswer.parse(profileRaw).InstanceProfile;
      const roles = profile.Roles.map((r) => r.RoleName);
      if (roles.includes(roleName)) plan.profile = { action: "none", arn: profile.Arn };
      else if (roles.length > 0) {
        throw new UserError(
          `Instance profile ${roleName} holds role ${roles.join(", ")}, not ${roleName}; runctl changes nothing of it`,
          {
            code: "profile_conflict",
            hint: `Pick another name (--role-name), or remove that role from the profile yourself: aws iam remove-role-from-instance-profile --instance-profile-name ${roleName} --role-name ${roles[0]}`,
            details: { instanceProfile: profile.Arn, roles },
          },
        );
      } else if (!isRunctlTagged(profile.Tags)) {
        throw new UserError(
          `Instance profile ${roleName} exists, holds no role and was not made by runctl; runctl changes nothing of it`,
          {
            code: "profile_not_runctl",
            hint: `Pick another name (--role-name), or add the role yourself: aws iam add-role-to-instance-profile --instance-profile-name ${roleName} --role-name ${roleName}`,
            details: { instanceProfile: profile.Arn },
          },
        );
      } else plan.profile = { action: "add-role", arn: profile.Arn };
    }
    const group = await options.securityGroup.findSecurityGroup();
    if (group !== undefined) plan.group = { action: "none", inboundRules: group.inboundRules };

    const steps = describePlan(plan, roleName, options.config.security_group);
    const result: InstanceProfileSetupResult = {
      dryRun: options.dryRun,
      region: options.region,
      store: options.store,
      roleName,
      instanceProfile: roleName,
      policyName: STORE_POLICY_NAME,
      policy: wantedPolicy,
      trustPolicy: wantedTrust,
      steps,
    };
    if (options.dryRun) return result;

    // ---- confirm, then write --------------------------------------------------------------
    // Replacing what a runctl role may do needs a yes; completing a half-made profile does not.
    const updates = steps.filter((s) => s.status === "would-update" && s.resource !== "instance-profile");
    if (updates.length > 0) {
      await options.confirm(
        `change ${updates.map((s) => `the ${s.resource.replace("-", " ")} of role ${roleName}`).join(" and ")}`,
        updates.flatMap((s) => setupStepLines(s)),
      );
    }
    if (plan.role === "create") {
      await send(`create role ${roleName}`, () =>
        client.send(
          new CreateRoleCommand({
            RoleName: roleName,
            AssumeRolePolicyDocument: JSON.stringify(wantedTrust),
            Description: `runctl machines: read and write ${options.store} runs/ and hosts/ only (runctl aws setup)`,
            Tags: [{ Key: TAG_CREATED_BY, Value: TAG_CREATED_BY_VALUE }],
          }),
        ),
      );
    } else if (plan.trust.action === "update") {
      await send(`update the trust policy of role ${roleName}`, () =>
        client.send(
          new UpdateAssumeRolePolicyCommand({
            RoleName: roleName,
            PolicyDocument: JSON.stringify(wantedTrust),
          }),
        ),
      );
    }
    if (plan.policy.action !== "none") {
      await send(`put policy ${STORE_POLICY_NAME} on role ${roleName}`, () =>
        client.send(
          new PutRolePolicyCommand({
            RoleName: roleName,
            PolicyName: STORE_POLICY_NAME,
            PolicyDocument: JSON.stringify(wantedPolicy),
          }),
        ),
      );
    }
    for (const name of plan.others.inline) {
      await send(`delete policy ${name} of role ${roleName}`, () =>
        client.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: name })),
      );
    }
    for (const arn of plan.others.attached) {
      await send(`detach policy ${arn} from role ${roleName}`, () =>
        client.send(new DetachRolePolicyCommand({ RoleName: roleName, PolicyArn: arn })),
      );
    }
    if (plan.profile.action === "create") {
      await send(`create instance profile ${roleName}`, () =>
        client.send(
          new CreateInstanceProfileCommand({
            InstanceProfileName: roleName,
            Tags: [{ Key: TAG_CREATED_BY, Value: TAG_CREATED_BY_VALUE }],
          }),
        ),
      );
    }
    if (plan.profile.action !== "none") {
      await send(`add role ${roleName} to instance profile ${roleName}`, () =>
        client.send(
          new AddRoleToInstanceProfileCommand({ InstanceProfileName: roleName, RoleName: roleName }),
        ),
      );
    }
    if (plan.group.action === "create") await options.securityGroup.ensureSecurityGroup();
    result.steps = describePlan(plan, roleName, options.config.security_group, true);
    return result;
  } finally {
    client.destroy();
  }
}

function decodeText(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

function describePlan(plan: Plan, roleName: string, groupName: string, done = false): SetupStep[] {
  const status = (action: "create" | "update" | "none" | "add-role"): SetupStatus => {
    if (action === "none") return "unchanged";
    if (action === "update" || action === "add-role") return done ? "updated" : "would-update";
    return done ? "created" : "would-create";
  };
  const others = [
    ...plan.others.inline.map((n) => `inline policy ${n}`),
    ...plan.others.attached.map((a) => `attached policy ${a}`),
  ];
  const steps: SetupStep[] = [
    {
      resource: "role",
      name: roleName,
      status: status(plan.role === "create" ? "create" : "none"),
      detail: `tagged ${TAG_CREATED_BY}=${TAG_CREATED_BY_VALUE}`,
    },
    {
      resource: "trust-policy",
      name: roleName,
      status: status(plan.trust.action),
      detail: "only ec2.amazonaws.com may assume the role",
      ...(plan.trust.diff ? { diff: plan.trust.diff } : {}),
    },
    {
      resource: "store-policy",
      name: STORE_POLICY_NAME,
      status: status(plan.policy.action),
      detail: "read and write the store's runs/ and hosts/ only",
      ...(plan.policy.diff ? { diff: plan.policy.diff } : {}),
    },
    {
      resource: "other-policies",
      name: roleName,
      status: status(others.length > 0 ? "update" : "none"),
      detail: others.length > 0 ? "the role must hold no other policy: they are removed" : "none",
      ...(others.length > 0 ? { diff: others.map((o) => `- ${o}`) } : {}),
    },
    {
      resource: "instance-profile",
      name: roleName,
      status: status(plan.profile.action),
      detail: `holds role ${roleName}`,
    },
    {
      resource: "security-group",
      name: groupName,
      status: status(plan.group.action),
      // Rules someone added are theirs to remove; runctl says so rather than revoking them.
      detail:
        plan.group.inboundRules === 0
          ? "no inbound rule"
          : `has ${plan.group.inboundRules} inbound rule(s) runctl does not need; remove them with aws ec2 revoke-security-group-ingress`,
    },
  ];
  return steps;
}

/** One step as `aws setup` prints it: "role runctl-instance: created (tagged CreatedBy=runctl)". */
export function setupStepLines(step: SetupStep): string[] {
  const words: Record<SetupStatus, string> = {
    unchanged: "already right",
    created: "created",
    updated: "updated",
    "would-create": "would create",
    "would-update": "would change",
  };
  const head = `${step.resource.replace("-", " ")} ${step.name}: ${words[step.status]}${step.detail ? ` (${step.detail})` : ""}`;
  return [head, ...(step.diff ?? []).map((l) => `    ${l}`)];
}
