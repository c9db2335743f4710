import { describe, expect, it } from "vitest";
import {
  canonicalPolicy,
  decodePolicy,
  escapePolicyText,
  type PolicyDocument,
  samePolicy,
  storeLocation,
  storePolicy,
  trustPolicy,
} from "../src/instance-policy.ts";

/** IAM's matching of a resource or StringLike pattern: `*` and `?` are wildcards, `${*}` `${?}` `${$}` literals. */
function iamMatches(pattern: string, text: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const literal = /^\$\{([*?$])\}/.exec(pattern.slice(i));
    if (literal) {
      re += `\\${literal[1]}`;
      i += literal[0].length - 1;
    } else if (pattern[i] === "*") re += ".*";
    else if (pattern[i] === "?") re += ".";
    else re += (pattern[i] as string).replace(/[.+^(){}|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s").test(text);
}

type Stmt = { Action: string | string[]; Resource: string | string[]; Condition?: unknown };
function statements(doc: PolicyDocument): Stmt[] {
  return (Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement]) as Stmt[];
}
const asList = (v: string | string[]) => (typeof v === "string" ? [v] : v);

/** Whether the policy lets `action` on object `key` of `bucket` (the object statements only). */
function allowsObject(doc: PolicyDocument, action: string, bucket: string, key: string): boolean {
  return statements(doc).some(
    (s) =>
      asList(s.Action).includes(action) &&
      asList(s.Resource).some((r) => iamMatches(r, `arn:aws:s3:::${bucket}/${key}`)),
  );
}

function listPrefixes(doc: PolicyDocument): string[] {
  const list = statements(doc).find((s) => asList(s.Action).includes("s3:ListBucket"));
  expect(list).toBeDefined();
  return (
    (list?.Condition as { StringLike: { "s3:prefix": string[] } } | undefined)?.StringLike["s3:prefix"] ?? []
  );
}

describe("the instance profile's store policy", () => {
  it("lets a machine read and write its runs/ and hosts/ keys and nothing else of the bucket", () => {
    const doc = storePolicy(storeLocation("s3://ml-bucket/team/runctl/"), "us-east-1");
    for (const action of ["s3:GetObject", "s3:PutObject"]) {
      expect(allowsObject(doc, action, "ml-bucket", "team/runctl/runs/r1/metrics.jsonl")).toBe(true);
      expect(allowsObject(doc, action, "ml-bucket", "team/runctl/hosts/h1/state.json")).toBe(true);
      expect(allowsObject(doc, action, "ml-bucket", "team/runctl/bundles/abc.tar.gz")).toBe(false);
      expect(allowsObject(doc, action, "ml-bucket", "team/runctl/runsx/r1")).toBe(false);
      expect(allowsObject(doc, action, "ml-bucket", "team/runctlx/runs/r1")).toBe(false);
      expect(allowsObject(doc, action, "ml-bucket", "other/team/runctl/runs/r1")).toBe(false);
      expect(allowsObject(doc, action, "other-bucket", "team/runctl/runs/r1")).toBe(false);
    }
    expect(allowsObject(doc, "s3:DeleteObject", "ml-bucket", "team/runctl/runs/r1/x")).toBe(false);
    // No wildcard anywhere but the end of a runs/ or hosts/ prefix; no action wildcard.
    for (const s of statements(doc)) {
      for (const a of asList(s.Action)) expect(a).not.toContain("*");
      for (const r of asList(s.Resource)) {
        expect(r).toMatch(/^arn:aws:s3:::ml-bucket(\/team\/runctl\/(runs|hosts)\/\*)?$/);
      }
    }
    // Listing is the bucket ARN with a prefix condition, never bucket-wide.
    expect(listPrefixes(doc)).toEqual(["team/runctl/runs/*", "team/runctl/hosts/*"]);
  });

  it("treats *, ? and $ in the prefix as literal characters", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM's escapes for literal * ? $, not a template
    expect(escapePolicyText("a*b?c$d")).toBe("a${*}b${?}c${$}d");
    const doc = storePolicy(storeLocation("s3://ml-bucket/we*rd?/p$x"), "us-east-1");
    expect(allowsObject(doc, "s3:PutObject", "ml-bucket", "we*rd?/p$x/runs/r1/output.log")).toBe(true);
    // A wildcard would have let these through.
    expect(allowsObject(doc, "s3:PutObject", "ml-bucket", "weXXrdZ/p$x/runs/r1/output.log")).toBe(false);
    expect(allowsObject(doc, "s3:PutObject", "ml-bucket", "we/anything/rd?/p$x/runs/r1")).toBe(false);
    for (const p of listPrefixes(doc)) expect(iamMatches(p, "weXrd?/p$x/runs/")).toBe(false);
  });

  it("covers the bucket root store and names the region's partition", () => {
    const root = storePolicy(storeLocation("s3://ml-bucket"), "us-east-1");
    expect(allowsObject(root, "s3:PutObject", "ml-bucket", "runs/r1/x")).toBe(true);
    expect(allowsObject(root, "s3:PutObject", "ml-bucket", "other/runs/r1/x")).toBe(false);
    expect(listPrefixes(root)).toEqual(["runs/*", "hosts/*"]);
    const cn = JSON.stringify(storePolicy(storeLocation("s3://ml-bucket/p"), "cn-north-1"));
    expect(cn).toContain("arn:aws-cn:s3:::ml-bucket/p/runs/*");
  });

  it("refuses URLs that are not a plain s3://bucket/prefix", () => {
    for (const bad of ["s3://UPPER/x", "https://b/x", "s3://ab", "s3://bucket/a//b", "s3://bucket/a/../b"]) {
      expect(() => storeLocation(bad), bad).toThrow(/store|prefix/);
    }
  });

  it("trusts EC2 only", () => {
    const doc = trustPolicy();
    expect(doc.Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
  });
});

describe("comparing policies with what IAM holds", () => {
  it("ignores spelling (encoding, whitespace, one-element lists, order) but not meaning", () => {
    const wanted = storePolicy(storeLocation("s3://ml-bucket/p"), "us-east-1");
    const s = statements(wanted);
    const respelled = {
      Statement: [
        { ...s[1], Action: ["s3:ListBucket"] },
        { ...s[0], Resource: [...asList((s[0] as Stmt).Resource)].reverse() },
      ],
      Version: "2012-10-17",
    };
    const fromIam = decodePolicy(encodeURIComponent(JSON.stringify(respelled, null, 4)));
    expect(fromIam).toBeDefined();
    expect(samePolicy(wanted, fromIam as PolicyDocument)).toBe(true);
    const wider = { ...respelled, Statement: [{ ...s[0], Resource: "arn:aws:s3:::ml-bucket/*" }, s[1]] };
    expect(samePolicy(wanted, wider as PolicyDocument)).toBe(false);
    expect(JSON.stringify(canonicalPolicy(trustPolicy()))).toContain('"Service":["ec2.amazonaws.com"]');
  });

  it("reads a document it cannot parse as undefined", () => {
    expect(decodePolicy("%7Bnot json")).toBeUndefined();
    expect(decodePolicy(encodeURIComponent('{"Statement": 3}'))).toBeUndefined();
  });
});
