/**
 * The IAM documents of runctl's instance profile: the trust policy (EC2 may assume the role,
 * nobody else) and the inline policy that lets a machine read and write only its store's
 * `runs/` and `hosts/` prefixes. Both are built here, and compared here with what IAM holds,
 * so `runctl aws setup` and its tests agree on one definition.
 */
import { UserError } from "@runctl/core";
import { z } from "zod";

/** The inline policy's name on the role. */
export const STORE_POLICY_NAME = "runctl-store-access";
/** The role (and instance profile) `runctl aws setup` makes unless told another name. */
export const DEFAULT_ROLE_NAME = "runctl-instance";
/** The prefixes under the store a machine writes: its run's directory and its host state. */
export const MACHINE_PREFIXES = ["runs", "hosts"] as const;

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export interface StoreLocation {
  bucket: string;
  /** Key prefix without leading or trailing `/`; "" for the bucket root. */
  prefix: string;
}

/** `s3://bucket/prefix` as the policy needs it; the prefix's surrounding slashes do not count. */
export function storeLocation(url: string): StoreLocation {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  const bucket = m?.[1];
  if (!m || bucket === undefined || !BUCKET.test(bucket)) {
    throw new UserError(`Not an S3 store URL: ${url}`, {
      code: "invalid_flag",
      hint: "Write s3://BUCKET/optional/prefix; bucket names are 3-63 lower-case letters, digits, dots and hyphens.",
    });
  }
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (/\/\//.test(prefix) || prefix.split("/").some((p) => p === "." || p === "..")) {
    throw new UserError(`The store prefix "${prefix}" has an empty, "." or ".." segment`, {
      code: "invalid_flag",
      hint: "Name the store with plain segments, e.g. s3://bucket/team/runctl.",
    });
  }
  return { bucket, prefix };
}

/**
 * A key prefix as literal text in a policy: `*`, `?` and `$` mean something in IAM resource
 * strings and StringLike conditions, and `${*}`, `${?}`, `${$}` are IAM's escapes for them.
 */
export function escapePolicyText(text: string): string {
  return text.replace(/[*?$]/g, (c) => `\${${c}}`);
}

/** aws, aws-cn or aws-us-gov: ARNs name the partition of the region. */
export function partitionOf(region: string): string {
  if (region.startsWith("cn-")) return "aws-cn";
  if (region.startsWith("us-gov-")) return "aws-us-gov";
  return "aws";
}

const Strings = z.union([z.string(), z.array(z.string())]);
const Statement = z.looseObject({
  Sid: z.string().optional(),
  Effect: z.enum(["Allow", "Deny"]),
  Action: Strings.optional(),
  NotAction: Strings.optional(),
  Resource: Strings.optional(),
  NotResource: Strings.optional(),
  Principal: z.union([z.literal("*"), z.record(z.string(), Strings)]).optional(),
  Condition: z.record(z.string(), z.record(z.string(), Strings)).optional(),
});
/** An IAM policy document as runctl reads it back from IAM. */
export const PolicyDocument = z.looseObject({
  Version: z.string().optional(),
  Id: z.string().optional(),
  Statement: z.union([Statement, z.array(Statement)]),
});
export type PolicyDocument = z.output<typeof PolicyDocument>;

/** Trust: only EC2 may assume the role (for an instance that carries the profile). */
export function trustPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { Service: "ec2.amazonaws.com" },
        Action: "sts:AssumeRole",
      },
    ],
  };
}

/**
 * What a machine may do in the store: read, write and abort uploads of objects under
 * `<prefix>/runs/` and `<prefix>/hosts/`, and list only those prefixes (the sync engine lists
 * to resume). Nothing bucket-wide: no delete, no list without a prefix, no other key.
 */
export function storePolicy(store: StoreLocation, region: string): PolicyDocument {
  const partition = partitionOf(region);
  const base = store.prefix === "" ? "" : `${escapePolicyText(store.prefix)}/`;
  const bucket = escapePolicyText(store.bucket);
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "RunctlMachineObjects",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
        Resource: MACHINE_PREFIXES.map((p) => `arn:${partition}:s3:::${bucket}/${base}${p}/*`),
      },
      {
        Sid: "RunctlMachineList",
        Effect: "Allow",
        Action: "s3:ListBucket",
        Resource: `arn:${partition}:s3:::${bucket}`,
        Condition: { StringLike: { "s3:prefix": MACHINE_PREFIXES.map((p) => `${base}${p}/*`) } },
      },
    ],
  };
}

/**
 * A policy in one spelling: IAM gives back what it was given, give or take whitespace,
 * a string where a one-element list was, and the order of lists and keys; none of these
 * change what the policy allows, so none of them count as a difference.
 */
export function canonicalPolicy(document: PolicyDocument): unknown {
  const list = (v: string | string[]) => [...new Set(typeof v === "string" ? [v] : v)].sort();
  const sortKeys = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>)
          .filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, v]) => [k, sortKeys(v)]),
      );
    }
    return value;
  };
  const statements = (Array.isArray(document.Statement) ? document.Statement : [document.Statement]).map(
    (s) => {
      const out: Record<string, unknown> = { ...s };
      for (const key of ["Action", "NotAction", "Resource", "NotResource"] as const) {
        const v = s[key];
        if (v !== undefined) out[key] = list(v);
      }
      if (s.Principal !== undefined && s.Principal !== "*") {
        out.Principal = Object.fromEntries(Object.entries(s.Principal).map(([k, v]) => [k, list(v)]));
      }
      if (s.Condition !== undefined) {
        out.Condition = Object.fromEntries(
          Object.entries(s.Condition).map(([op, keys]) => [
            op,
            Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, list(v)])),
          ]),
        );
      }
      return sortKeys(out);
    },
  );
  return sortKeys({
    ...document,
    Version: document.Version ?? "2008-10-17",
    Statement: statements.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
  });
}

export function samePolicy(a: PolicyDocument, b: PolicyDocument): boolean {
  return JSON.stringify(canonicalPolicy(a)) === JSON.stringify(canonicalPolicy(b));
}

/**
 * A policy document as IAM returns it: URL-encoded JSON (GetRole, GetRolePolicy). Undefined
 * when it does not parse, which runctl then shows as a difference rather than guessing.
 */
export function decodePolicy(encoded: string): PolicyDocument | undefined {
  let text = encoded;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    // Not URL-encoded (some IAM-compatible services answer plain JSON).
  }
  try {
    const parsed = PolicyDocument.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The document as `aws setup` prints it and sends it. */
export function policyText(document: PolicyDocument): string {
  return JSON.stringify(document, null, 2);
}
