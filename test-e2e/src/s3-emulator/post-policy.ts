/**
 * Browser-style POST uploads (`multipart/form-data`) with a SigV4-signed policy: the policy's
 * signature, its expiration and every condition (exact fields, `starts-with`,
 * `content-length-range`) are enforced, and every form field must be covered by a condition,
 * as S3 requires. This is what a remote agent holds instead of a long-lived key.
 */
import type { IncomingMessage } from "node:http";
import busboy from "busboy";
import { z } from "zod";
import type { CredentialBook } from "./auth.ts";
import type { EmulatorCredential } from "./credentials.ts";
import type { IngestedBody, ObjectStore } from "./object-store.ts";
import { S3Failure } from "./s3-failure.ts";
import { ALGORITHM, hexSignature, parseCredential, sameSignature, signingKey } from "./sigv4.ts";

const Condition = z.union([
  z.tuple([z.literal("content-length-range"), z.coerce.number(), z.coerce.number()]),
  z.tuple([z.enum(["eq", "starts-with"]), z.string().startsWith("$"), z.string()]),
  z.record(z.string(), z.union([z.string(), z.number()])),
]);

const Policy = z.object({ expiration: z.iso.datetime({ offset: true }), conditions: z.array(Condition) });
type Policy = z.infer<typeof Policy>;

/** Form fields the policy does not have to mention. */
const EXEMPT = new Set(["policy", "x-amz-signature", "file"]);

export interface PostResult {
  key: string;
  etag: string;
  successStatus: number;
}

export interface PostContext {
  store: ObjectStore;
  book: CredentialBook;
  checkAccess: (credential: EmulatorCredential, key: string) => void;
  now?: number;
}

function denied(message: string): S3Failure {
  return new S3Failure(403, "AccessDenied", message);
}

export async function handlePostObject(
  req: IncomingMessage,
  bucket: string,
  ctx: PostContext,
): Promise<PostResult> {
  ctx.store.requireBucket(bucket);
  const contentType = req.headers["content-type"] ?? "";
  if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
    throw new S3Failure(
      412,
      "PreconditionFailed",
      "Bucket POST must be of the enclosure-type multipart/form-data",
    );
  }
  const fields = new Map<string, string>();
  let accepted:
    | { key: string; policy: Policy; body: Promise<IngestedBody>; credential: EmulatorCredential }
    | undefined;
  let failure: unknown;
  await new Promise<void>((resolve, reject) => {
    const form = busboy({ headers: req.headers, limits: { files: 1, fields: 100, fieldSize: 64 * 1024 } });
    form.on("field", (name, value) => {
      // S3 ignores fields after the file.
      if (!accepted && failure === undefined) fields.set(name.toLowerCase(), value);
    });
    form.on("file", (_name, stream, info) => {
      if (failure !== undefined || accepted) {
        stream.resume();
        return;
      }
      try {
        const checked = checkPolicy(fields, bucket, info.filename ?? "", ctx);
        ctx.checkAccess(checked.credential, checked.key);
        accepted = { ...checked, body: ctx.store.ingest(stream) };
        // Ingestion errors are reported after the form ends.
        accepted.body.catch(() => undefined);
      } catch (error) {
        failure = error;
        stream.resume();
      }
    });
    form.on("error", reject);
    form.on("close", resolve);
    req.pipe(form);
  });
  if (failure !== undefined) throw failure;
  if (!accepted) {
    throw new S3Failure(400, "InvalidArgument", "POST requires exactly one file upload per request.", {
      ArgumentName: "file",
    });
  }
  const body = await accepted.body;
  try {
    for (const c of accepted.policy.conditions) {
      if (Array.isArray(c) && c[0] === "content-length-range") {
        const [, min, max] = c;
        if (body.size < min)
          throw new S3Failure(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
          );
        if (body.size > max)
          throw new S3Failure(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size");
      }
    }
  } catch (error) {
    await ctx.store.discard(body);
    throw error;
  }
  const metadata: Record<string, string> = {};
  for (const [name, value] of fields) {
    if (name.startsWith("x-amz-meta-")) metadata[name.slice("x-amz-meta-".length)] = value;
  }
  const record = await ctx.store.commit(bucket, accepted.key, body.path, {
    size: body.size,
    etag: `"${body.md5.toString("hex")}"`,
    contentType: fields.get("content-type") ?? "binary/octet-stream",
    metadata,
    checksums: {},
  });
  const status = Number(fields.get("success_action_status") ?? "204");
  return {
    key: record.key,
    etag: record.etag,
    successStatus: [200, 201, 204].includes(status) ? status : 204,
  };
}

function checkPolicy(fields: Map<string, string>, bucket: string, filename: string, ctx: PostContext) {
  const policyText = fields.get("policy");
  const signature = fields.get("x-amz-signature");
  const credentialText = fields.get("x-amz-credential");
  if (!policyText || !signature || !credentialText || fields.get("x-amz-algorithm") !== ALGORITHM) {
    throw new S3Failure(
      400,
      "InvalidArgument",
      "POST requires policy, x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-signature fields",
    );
  }
  const scope = parseCredential(credentialText);
  const now = ctx.now ?? Date.now();
  const credential = ctx.book.lookup(scope.accessKeyId, fields.get("x-amz-security-token"), now);
  const key = signingKey(credential.secretAccessKey, scope.date, scope.region, scope.service);
  if (!sameSignature(hexSignature(key, policyText), signature)) {
    throw new S3Failure(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided.",
    );
  }
  let policy: Policy;
  try {
    policy = Policy.parse(JSON.parse(Buffer.from(policyText, "base64").toString("utf8")));
  } catch {
    throw new S3Failure(
      400,
      "InvalidPolicyDocument",
      "Invalid Policy: the policy is not valid JSON of the documented shape.",
    );
  }
  if (Date.parse(policy.expiration) <= now) throw denied("Invalid according to Policy: Policy expired.");
  const rawKey = fields.get("key");
  if (rawKey === undefined) {
    throw new S3Failure(400, "InvalidArgument", "Bucket POST must contain a field named 'key'.", {
      ArgumentName: "key",
    });
  }
  // S3 substitutes the uploaded file name for the literal `${filename}` in the key field.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the placeholder is S3 syntax, not ours
  const objectKey = rawKey.replaceAll("${filename}", filename);
  const values = new Map(fields);
  values.set("bucket", bucket);
  values.set("key", objectKey);
  const covered = new Set<string>(["bucket"]);
  for (const c of policy.conditions) {
    if (!Array.isArray(c)) {
      for (const [name, expected] of Object.entries(c)) {
        const field = name.toLowerCase();
        covered.add(field);
        if (values.get(field) !== String(expected)) {
          throw denied(
            `Invalid according to Policy: Policy Condition failed: ["eq", "$${field}", "${expected}"]`,
          );
        }
      }
      continue;
    }
    if (c[0] === "content-length-range") continue;
    const field = c[1].slice(1).toLowerCase();
    covered.add(field);
    const actual = values.get(field);
    const ok = actual !== undefined && (c[0] === "eq" ? actual === c[2] : actual.startsWith(c[2]));
    if (!ok)
      throw denied(
        `Invalid according to Policy: Policy Condition failed: ["${c[0]}", "$${field}", "${c[2]}"]`,
      );
  }
  for (const name of fields.keys()) {
    if (EXEMPT.has(name) || name.startsWith("x-ignore-") || covered.has(name)) continue;
    throw denied(`Invalid according to Policy: Extra input fields: ${name}`);
  }
  return { key: objectKey, policy, credential };
}
