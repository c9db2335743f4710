/**
 * IAM's Query parameters, per action: the form body unflattened as EC2's is (lists are
 * `Tags.member.N.Key`), then checked with zod so a malformed request is refused with IAM's
 * ValidationError, never half-applied.
 */
import { z } from "zod";
import { validationError } from "./iam-failure.ts";

export const IAM_VERSION = "2010-05-08";

const Common = { Action: z.string(), Version: z.literal(IAM_VERSION) };
const Tag = z.object({ Key: z.string(), Value: z.string().default("") });
/** A list member: `Tags.member.1.Key=…`, or `Tags=` for an empty list. */
const members = <T extends z.ZodType>(item: T) =>
  z.union([
    z.literal("").transform(() => [] as z.output<T>[]),
    z.object({ member: z.array(item) }).transform((v) => v.member),
  ]);
const int = z.string().regex(/^\d+$/).transform(Number);

export const RoleNameParams = z.strictObject({ ...Common, RoleName: z.string() });

export const CreateRoleParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  AssumeRolePolicyDocument: z.string(),
  Path: z.string().optional(),
  Description: z.string().max(1000).optional(),
  MaxSessionDuration: int.optional(),
  PermissionsBoundary: z.string().optional(),
  Tags: members(Tag).optional(),
});

export const UpdateAssumeRolePolicyParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  PolicyDocument: z.string(),
});

export const GetRolePolicyParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  PolicyName: z.string(),
});

export const PutRolePolicyParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  PolicyName: z.string(),
  PolicyDocument: z.string(),
});

export const TagRoleParams = z.strictObject({ ...Common, RoleName: z.string(), Tags: members(Tag) });

export const ListRoleTagsParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  Marker: z.string().optional(),
  MaxItems: int.optional(),
});

export const RolePagesParams = z.strictObject({
  ...Common,
  RoleName: z.string(),
  Marker: z.string().optional(),
  MaxItems: int.optional(),
});

export const RolePolicyArnParams = z.strictObject({ ...Common, RoleName: z.string(), PolicyArn: z.string() });

export const InstanceProfileNameParams = z.strictObject({ ...Common, InstanceProfileName: z.string() });

export const CreateInstanceProfileParams = z.strictObject({
  ...Common,
  InstanceProfileName: z.string(),
  Path: z.string().optional(),
  Tags: members(Tag).optional(),
});

export const AddRoleToInstanceProfileParams = z.strictObject({
  ...Common,
  InstanceProfileName: z.string(),
  RoleName: z.string(),
});

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

/** Parses an action's parameters; the first issue becomes IAM's ValidationError for it. */
export function parseIamAction<S extends z.ZodType>(schema: S, params: Record<string, unknown>): z.output<S> {
  const parsed = schema.safeParse(params);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = lowerFirst(String(issue?.path[0] ?? "request"));
  if (issue?.code === "invalid_type" && issue.input === undefined) {
    throw validationError(
      `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`,
    );
  }
  if (issue?.code === "unrecognized_keys") {
    throw validationError(`Parameter ${issue.keys.join(", ")} is not recognized`);
  }
  throw validationError(
    `1 validation error detected: Value at '${field}' failed to satisfy constraint: ${issue?.message}`,
  );
}
